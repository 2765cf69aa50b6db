/* The tenant admin's small behaviours: copy ids, generate uuids, follow a command and the log
   live (Server-Sent Events from the API's streams, which read the admin's session). */
"use strict";

(function () {
  const FINAL = new Set(["processed", "failed"]);

  function uuid4() {
    // crypto.randomUUID() exists only in secure contexts; getRandomValues everywhere.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function copyIds() {
    document.addEventListener("click", (e) => {
      const el = e.target.closest("[data-copy]");
      if (!el || e.target.closest("a")) return;
      if (navigator.clipboard) navigator.clipboard.writeText(el.dataset.copy).catch(() => {});
      el.classList.add("copied");
      setTimeout(() => el.classList.remove("copied"), 800);
    });
  }

  function uuidButtons() {
    for (const button of document.querySelectorAll("[data-uuid-for]")) {
      button.addEventListener("click", () => {
        const input = document.getElementById(button.dataset.uuidFor);
        if (input) input.value = uuid4();
      });
    }
  }

  function badge(status) {
    const span = document.createElement("span");
    span.className = `intent-status intent-status-${status}`;
    span.textContent = status;
    return span;
  }

  function followCommand() {
    const el = document.querySelector("[data-command-stream]");
    if (!el || !window.EventSource) return;
    const source = new EventSource(el.dataset.commandStream);
    source.addEventListener("status", (e) => {
      const command = JSON.parse(e.data);
      for (const shown of document.querySelectorAll("[data-command-status]")) {
        shown.dataset.commandStatus = command.status;
        shown.replaceChildren(badge(command.status));
      }
      el.textContent = `Status: ${command.status}` + (FINAL.has(command.status) ? " (final)" : "…");
      if (FINAL.has(command.status)) {
        source.close();
        setTimeout(() => window.location.reload(), 400); // now with its events and flow
      }
    });
    source.addEventListener("error", (e) => {
      if (e.data) {
        source.close();
        el.textContent = `The live status stopped: ${JSON.parse(e.data).error?.message ?? "refused"}`;
      }
    });
  }

  function cell(row, content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.append(content);
    else td.textContent = content;
    row.append(td);
  }

  function liveEvents() {
    const table = document.getElementById("intent-live");
    if (!table || !window.EventSource) return;
    const body = table.querySelector("tbody");
    const state = document.getElementById("intent-live-state");
    const pageOf = table.dataset.eventUrl; // ".../event/0/change/"
    const keep = Number(table.dataset.keep || 200);
    const source = new EventSource(table.dataset.stream);
    source.onopen = () => { state.textContent = "live"; state.className = "intent-status intent-status-processed"; };
    source.addEventListener("event", (e) => {
      const event = JSON.parse(e.data);
      const row = document.createElement("tr");
      row.className = "fresh";
      row.dataset.position = event.position;
      const link = document.createElement("a");
      link.href = pageOf.replace("/0/", `/${event.position}/`);
      link.textContent = event.position;
      cell(row, link);
      cell(row, event.type);
      const aggregate = document.createElement("span");
      aggregate.append(`${event.aggregate_type} `);
      const id = document.createElement("span");
      id.className = "intent-id";
      id.title = id.dataset.copy = event.aggregate_id;
      id.textContent = String(event.aggregate_id).slice(0, 8);
      aggregate.append(id);
      cell(row, aggregate);
      cell(row, event.version);
      cell(row, String(event.recorded_at).replace("T", " ").slice(0, 19));
      body.prepend(row);
      while (body.rows.length > keep) body.deleteRow(-1);
      const empty = document.getElementById("intent-live-empty");
      if (empty) empty.remove();
    });
    source.addEventListener("error", (e) => {
      state.className = "intent-status intent-status-failed";
      state.textContent = e.data ? "stopped" : "reconnecting…";
      if (e.data) source.close();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    copyIds();
    uuidButtons();
    followCommand();
    liveEvents();
  });
})();

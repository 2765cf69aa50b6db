"""After a fault: nothing lost, nothing done twice, read models equal a fresh replay.

All checks read the cluster's database directly (SQL), so they judge what is stored, not
what the API chooses to show. Each returns a list of problems (empty = fine) so a test
can report every broken invariant at once instead of the first one.
"""

from __future__ import annotations

import collections
import json
from typing import Any

from tests.faults.cluster import TENANTS, Cluster
from tests.faults.workload import Planned

# Event types each projection of the system slice handles (projectors/system.py).
STATUS_EVENTS = ("messageLogged", "multiEventEmitted", "testExecuted", "retryableTestExecuted")
METRICS_EVENTS = ("messageLogged", "testExecuted")
MAX_LISTED = 10


def _schema(tenant: str) -> str:
    return f"t_{tenant}"


def saga_issued(cluster: Cluster, planned: list[Planned]) -> tuple[list[Planned], list[str]]:
    """The commands the system saga issued, checked against what it should have issued.

    For each emitMultipleEvents: one logMessage caused by the command (3 s later), and
    one caused by its multiEventEmitted with index 2 when it emitted 3 or more. Nothing
    else, and nothing twice. Returned as Planned items (1 event each) for the other checks.
    """
    problems: list[str] = []
    issued: list[Planned] = []
    emits = {item.id: item for item in planned if item.type == "emitMultipleEvents"}
    for tenant in TENANTS:
        schema = _schema(tenant)
        rows = cluster.sql(
            f"SELECT id::text, type, causation_id::text, payload FROM {schema}.commands_app_command"
            f" WHERE metadata->>'source' = 'saga'"
        )
        third = dict(
            cluster.sql(
                f"SELECT id::text, command_id::text FROM {schema}.events_app_event"
                f" WHERE type = 'multiEventEmitted' AND (payload->>'index')::int = 2"
            )
        )
        causes = collections.Counter(cause for _, _, cause, _ in rows)
        for command_id, ctype, cause, payload in rows:
            if ctype != "logMessage" or not (cause in emits or cause in third):
                problems.append(f"{tenant}: saga command {command_id} ({ctype}) caused by unknown {cause}")
            issued.append(Planned(command_id, tenant, ctype, payload, 1))
        wanted = [e.id for e in emits.values() if e.tenant == tenant] + list(third)
        missing = [cause for cause in wanted if causes[cause] == 0]
        doubled = [cause for cause, n in causes.items() if n > 1]
        if missing:
            problems.append(
                f"{tenant}: the saga never reacted to {len(missing)} triggers, e.g. {missing[:MAX_LISTED]}"
            )
        if doubled:
            problems.append(
                f"{tenant}: the saga reacted twice to {len(doubled)} triggers, e.g. {doubled[:MAX_LISTED]}"
            )
    return issued, problems


def check_commands(cluster: Cluster, planned: list[Planned], figures: dict[str, Any]) -> list[str]:
    """Every planned command exists, is final and `processed`; no command appeared from nowhere."""
    problems: list[str] = []
    by_tenant: dict[str, dict[str, Planned]] = collections.defaultdict(dict)
    for item in planned:
        by_tenant[item.tenant][item.id] = item
    statuses: collections.Counter[str] = collections.Counter()
    attempts: collections.Counter[int] = collections.Counter()
    for tenant in TENANTS:
        rows = cluster.sql(
            f"SELECT id::text, type, status, error, attempts FROM {_schema(tenant)}.commands_app_command"
        )
        stored = {r[0]: r for r in rows}
        wanted = by_tenant.get(tenant, {})
        missing = sorted(set(wanted) - set(stored))
        extra = sorted(set(stored) - set(wanted))
        if missing:
            problems.append(
                f"{tenant}: {len(missing)} submitted commands are missing, e.g. {missing[:MAX_LISTED]}"
            )
        if extra:
            problems.append(f"{tenant}: {len(extra)} commands nobody submitted, e.g. {extra[:MAX_LISTED]}")
        not_done = []
        failed = []
        for cid, (_, ctype, status, error, tries) in stored.items():
            statuses[status] += 1
            attempts[tries] += 1
            if status == "failed":
                failed.append((cid, ctype, error))
            elif status != "processed":
                not_done.append((cid, ctype, status, error))
            if cid in wanted and wanted[cid].type != ctype:
                problems.append(f"{tenant}: command {cid} stored as {ctype}, sent as {wanted[cid].type}")
        if not_done:
            problems.append(f"{tenant}: {len(not_done)} commands not final, e.g. {not_done[:MAX_LISTED]}")
        if failed:
            codes = collections.Counter((e or {}).get("code") for _, _, e in failed)
            problems.append(
                f"{tenant}: {len(failed)} commands failed (codes {dict(codes)}), e.g. "
                + json.dumps(failed[:5], default=str)
            )
    figures["command_statuses"] = dict(statuses)
    figures["attempts_histogram"] = dict(sorted(attempts.items()))
    return problems


def check_events(cluster: Cluster, planned: list[Planned], figures: dict[str, Any]) -> list[str]:
    """Exactly the expected events per command, versions 1..n per stream, and every
    testExecuted decided on fresh state (its numberExecutedTests counts the tests before it)."""
    problems: list[str] = []
    expected = {item.id: item for item in planned}
    total_events = 0
    total_streams = 0
    for tenant in TENANTS:
        schema = _schema(tenant)
        counts = dict(
            cluster.sql(
                f"SELECT coalesce(command_id::text, '-'), count(*) FROM {schema}.events_app_event GROUP BY 1"
            )
        )
        total_events += sum(counts.values())
        if "-" in counts:
            problems.append(f"{tenant}: {counts['-']} events without a command id")
        wrong = []
        for cid, item in expected.items():
            if item.tenant != tenant:
                continue
            got = counts.get(cid, 0)
            if got != item.expected_events:
                wrong.append((cid, item.type, f"expected {item.expected_events}", f"got {got}"))
        unknown = sorted(set(counts) - set(expected) - {"-"})
        if wrong:
            doubled = sum(1 for w in wrong if int(w[3].split()[1]) > int(w[2].split()[1]))
            problems.append(
                f"{tenant}: {len(wrong)} commands with the wrong number of events "
                f"({doubled} with too many), e.g. {wrong[:MAX_LISTED]}"
            )
        if unknown:
            problems.append(
                f"{tenant}: events from {len(unknown)} unknown commands, e.g. {unknown[:MAX_LISTED]}"
            )

        streams = cluster.sql(
            f"SELECT stream_type, stream_id::text, count(*), count(DISTINCT version), min(version), max(version) "
            f"FROM {schema}.events_app_event GROUP BY 1, 2"
        )
        total_streams += len(streams)
        broken = [s for s in streams if not (s[2] == s[3] == s[5] and s[4] == 1)]
        if broken:
            problems.append(
                f"{tenant}: {len(broken)} streams whose versions are not exactly 1..n "
                f"(type, id, events, distinct versions, min, max), e.g. {broken[:MAX_LISTED]}"
            )
        # Positions are unique (primary key); also check that each stream's versions
        # increase with position (an event appended later never gets a lower version).
        disordered = cluster.sql(
            f"SELECT stream_id::text, count(*) FROM ("
            f"  SELECT stream_id, version, lag(version) OVER (PARTITION BY stream_type, stream_id ORDER BY position)"
            f"    AS prev FROM {schema}.events_app_event) s "
            f"WHERE prev IS NOT NULL AND version <> prev + 1 GROUP BY 1"
        )
        if disordered:
            problems.append(
                f"{tenant}: streams whose versions do not follow position order: {disordered[:5]}"
            )

        tests = cluster.sql(
            f"SELECT stream_id::text, version, (payload->>'numberExecutedTests')::int "
            f"FROM {schema}.events_app_event WHERE type = 'testExecuted' ORDER BY stream_id, version"
        )
        seen: collections.Counter[str] = collections.Counter()
        stale = []
        for stream_id, version, number in tests:
            seen[stream_id] += 1
            if number != seen[stream_id]:
                stale.append(
                    (stream_id, version, f"numberExecutedTests={number}", f"expected {seen[stream_id]}")
                )
        if stale:
            problems.append(
                f"{tenant}: {len(stale)} testExecuted events decided on stale state, e.g. {stale[:MAX_LISTED]}"
            )
    figures["events"] = total_events
    figures["streams"] = total_streams
    return problems


def check_projection_state(cluster: Cluster, figures: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for tenant in TENANTS:
        schema = _schema(tenant)
        head = cluster.sql(f"SELECT coalesce(max(position), 0) FROM {schema}.events_app_event")[0][0]
        for name, status, position, last_error in cluster.sql(
            f"SELECT name, status, position, last_error FROM {schema}.projections_app_projectionstate"
        ):
            if status != "running" or position != head:
                problems.append(
                    f"{tenant}: projection {name} is {status} at {position}, head {head}, last error {last_error}"
                )
        figures[f"head_{tenant}"] = head
    return problems


def check_read_models_by_sql(cluster: Cluster) -> list[str]:
    """The read models recomputed from the event log in SQL (independent of the projector code)."""
    problems: list[str] = []
    for tenant in TENANTS:
        schema = _schema(tenant)
        expected_status = {
            row[0]: row[1:]
            for row in cluster.sql(
                f"SELECT stream_id::text,"
                f" count(*) FILTER (WHERE type = 'messageLogged'),"
                f" coalesce(max((payload->>'numberExecutedTests')::int) FILTER (WHERE type = 'testExecuted'), 0),"
                f" max(version)"
                f" FROM {schema}.events_app_event WHERE stream_type = 'system' AND type = ANY(%s) GROUP BY 1",
                (list(STATUS_EVENTS),),
            )
        }
        live_status = {
            row[0]: row[1:]
            for row in cluster.sql(
                f"SELECT system_id::text, messages_logged, number_executed_tests, last_event_version"
                f" FROM {schema}.projections_app_systemstatus"
            )
        }
        if expected_status != live_status:
            keys = sorted(set(expected_status) | set(live_status))
            diffs = [
                (k, "expected (messages, tests, version)", expected_status.get(k), "live", live_status.get(k))
                for k in keys
                if expected_status.get(k) != live_status.get(k)
            ]
            problems.append(f"{tenant}: system_status differs from the log in {len(diffs)} rows: {diffs[:5]}")

        tests, failed_tests, messages, last = cluster.sql(
            f"SELECT count(*) FILTER (WHERE type = 'testExecuted'),"
            f" count(*) FILTER (WHERE type = 'testExecuted' AND payload->>'result' = 'failure'),"
            f" count(*) FILTER (WHERE type = 'messageLogged'),"
            f" coalesce(max(position), 0)"
            f" FROM {schema}.events_app_event WHERE type = ANY(%s)",
            (list(METRICS_EVENTS),),
        )[0]
        live = cluster.sql(
            f"SELECT test_count, failed_test_count, message_count, last_position"
            f" FROM {schema}.projections_app_systemmetrics WHERE scope = 'tenant'"
        )
        want = (tests, failed_tests, messages, last) if (tests or messages) else None
        got = live[0] if live else None
        if want != got:
            problems.append(
                f"{tenant}: system_metrics (tests, failed, messages, last position) is {got}, the log says {want}"
            )
    return problems


def check_read_models_by_replay(cluster: Cluster, figures: dict[str, Any]) -> list[str]:
    """`manage.py verify_projections`: the projector code replayed in a rolled-back
    transaction and compared with the live rows (skipped while the command does not exist)."""
    args = ["verify_projections", "--json"]
    for tenant in TENANTS:
        args += ["--tenant", tenant]
    result = cluster.manage(*args, timeout=120)
    if result.returncode != 0 and "Unknown command" in result.stderr:
        figures["verify_projections"] = "not available"
        return []
    try:
        report = json.loads(result.stdout)
    except ValueError:
        report = None
    ok = (
        result.returncode == 0
        and isinstance(report, list)
        and len(report) > 0
        and all(r.get("ok") for r in report)
    )
    if isinstance(report, list):
        figures["verify_projections"] = ", ".join(
            f"{r.get('tenant')}/{r.get('projection')}: {'ok' if r.get('ok') else 'DIFF'} "
            f"({r.get('live_rows')} rows @ {r.get('checkpoint')})"
            for r in report
        )
    if ok:
        return []
    return [f"verify_projections exit {result.returncode}: {result.stdout[-4000:]} {result.stderr[-2000:]}"]


def verify_everything(cluster: Cluster, planned: list[Planned]) -> tuple[list[str], dict[str, Any]]:
    figures: dict[str, Any] = {}
    issued, problems = saga_issued(cluster, planned)
    figures["saga_commands"] = len(issued)
    planned = planned + issued
    problems += check_commands(cluster, planned, figures)
    problems += check_events(cluster, planned, figures)
    problems += check_projection_state(cluster, figures)
    problems += check_read_models_by_sql(cluster)
    problems += check_read_models_by_replay(cluster, figures)
    return problems, figures


def print_figures(title: str, figures: dict[str, Any]) -> None:
    """The numbers a reader wants from a fault run, in the `pytest -s` / `-rA` output."""
    width = max(len(k) for k in figures) if figures else 0
    lines = [f"=== {title}"] + [f"    {k:<{width}}  {v}" for k, v in figures.items()]
    print("\n".join(lines), flush=True)

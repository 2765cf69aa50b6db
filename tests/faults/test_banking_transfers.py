"""Many concurrent random transfers while Celery workers are killed: money is never
created or lost, no balance goes negative, every transfer settles (completed, refunded,
or declined before any money moved), and the read models equal the log and a replay."""

from __future__ import annotations

import collections
import random
import threading
import time
import uuid
from typing import Any

import pytest

from tests.faults.checks import check_read_models_by_replay, print_figures
from tests.faults.cluster import ApiClient, Cluster

pytestmark = pytest.mark.faults

TENANT = "acme"
SCHEMA = f"t_{TENANT}"
ACCOUNTS = 6  # a small set: transfers collide on the same streams all the time
OPENING_DEPOSIT = 10_000  # minor units
TRANSFERS = 400  # x FAULTS_SCALE
THREADS = 6
KILL_EVERY = (0.8, 2.0)

MOVEMENT_SIGN = {
    "moneyDeposited": 1,
    "moneyWithdrawn": -1,
    "accountDebitedForTransfer": -1,
    "accountCreditedForTransfer": 1,
    "accountRefundedForTransfer": 1,
}


def _send(client: ApiClient, body: dict[str, Any], wait: bool = False) -> dict[str, Any]:
    """POST with a client-supplied id, re-sent (same id and body) until an answer arrives."""
    for _ in range(60):
        got = client.request("POST", f"/t/{TENANT}/api/commands/", body)
        if got.status in (200, 202):
            if not wait:
                return dict(got.body)
            done = client.request("GET", f"/t/{TENANT}/api/commands/{body['id']}/?wait=30", timeout=40)
            if done.status == 200 and done.body["status"] in ("processed", "failed"):
                return dict(done.body)
        elif got.status not in (0, 502, 503):
            raise AssertionError(f"{body['type']} refused: {got.status} {got.body}")
        time.sleep(0.5)
    raise AssertionError(f"no answer for {body}")


def _command(type_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": type_name, "payload": payload}


def _open_accounts(cluster: Cluster) -> tuple[list[str], str, str]:
    """ACCOUNTS funded EUR accounts, one USD account (currency mismatch), one closed account."""
    client = cluster.new_client()
    eur = [str(uuid.uuid4()) for _ in range(ACCOUNTS)]
    usd, closed = str(uuid.uuid4()), str(uuid.uuid4())
    for account_id, currency in [*((a, "EUR") for a in eur), (usd, "USD"), (closed, "EUR")]:
        opened = _send(
            client,
            _command("openAccount", {"accountId": account_id, "owner": "fault", "currency": currency}),
            wait=True,
        )
        assert opened["status"] == "processed", opened
    for account_id in [*eur, usd]:
        paid = _send(
            client, _command("depositMoney", {"accountId": account_id, "amount": OPENING_DEPOSIT}), wait=True
        )
        assert paid["status"] == "processed", paid
    assert _send(client, _command("closeAccount", {"accountId": closed}), wait=True)["status"] == "processed"
    client.close()
    return eur, usd, closed


def _plan(rng: random.Random, n: int, eur: list[str], usd: str, closed: str) -> list[dict[str, Any]]:
    missing = str(uuid.uuid4())  # never opened: every credit to it is declined and refunded
    targets = [*eur, *eur, usd, closed, missing]
    plan = []
    for _ in range(n):
        source = rng.choice(eur)
        target = rng.choice([t for t in targets if t != source])
        # Mostly affordable; about one in eight overdraws and is declined.
        amount = rng.randint(1, 600) if rng.random() < 0.88 else rng.randint(5_000, 20_000)
        plan.append(
            _command(
                "transferMoney",
                {
                    "transferId": str(uuid.uuid4()),
                    "fromAccountId": source,
                    "toAccountId": target,
                    "amount": amount,
                },
            )
        )
    return plan


def test_random_transfers_under_worker_kills_keep_every_cent(
    make_cluster: Any, fault_scale: float, fault_rng: random.Random
) -> None:
    cluster = make_cluster(workers=3)
    eur, usd, closed = _open_accounts(cluster)
    plan = _plan(fault_rng, int(TRANSFERS * fault_scale), eur, usd, closed)

    work = collections.deque(plan)
    lock = threading.Lock()
    errors: list[str] = []

    def submitter() -> None:
        client = cluster.new_client()
        try:
            while True:
                with lock:
                    if not work:
                        return
                    body = work.popleft()
                _send(client, body)
        except AssertionError as exc:
            errors.append(str(exc))
        finally:
            client.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=submitter) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    kills = 0
    next_kill = time.monotonic() + fault_rng.uniform(*KILL_EVERY)
    # Keep killing until the flows are done or well past the submissions, so kills land
    # in the middle of saga steps (debits whose credit is not issued yet, and so on).
    while any(t.is_alive() for t in threads) or (cluster.open_commands() and time.monotonic() - t0 < 40):
        if time.monotonic() >= next_kill:
            cluster.kill_worker(fault_rng.randrange(len(cluster.workers)))
            kills += 1
            next_kill = time.monotonic() + fault_rng.uniform(*KILL_EVERY)
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    submitted_in = time.monotonic() - t0
    cluster.wait_workers_ready(60)
    settled_in = cluster.wait_all_final(timeout=180)

    problems: list[str] = list(errors)
    figures: dict[str, Any] = {}
    transfer_ids = {body["payload"]["transferId"] for body in plan}

    statuses = dict(cluster.sql(f"SELECT status, count(*) FROM {SCHEMA}.commands_app_command GROUP BY 1"))
    figures["command statuses"] = statuses
    failed = cluster.sql(f"SELECT type, error FROM {SCHEMA}.commands_app_command WHERE status = 'failed'")
    if failed:
        problems.append(f"{len(failed)} commands failed (none should), e.g. {failed[:5]}")

    # Balances recomputed from the log alone, independent of any projector code.
    replayed: collections.Counter[str] = collections.Counter()
    moves = cluster.sql(
        f"SELECT stream_id::text, type, (payload->>'amount')::bigint, payload->>'transferId'"
        f" FROM {SCHEMA}.events_app_event WHERE stream_type = 'account' AND type = ANY(%s)",
        (list(MOVEMENT_SIGN),),
    )
    per_transfer: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for account_id, kind, amount, transfer_id in moves:
        replayed[account_id] += MOVEMENT_SIGN[kind] * amount
        if transfer_id:
            per_transfer[transfer_id][kind] += 1
    deposited = OPENING_DEPOSIT * (ACCOUNTS + 1)
    if sum(replayed.values()) != deposited:
        problems.append(
            f"money created or lost: balances sum to {sum(replayed.values())}, {deposited} was paid in"
        )
    negative = {a: b for a, b in replayed.items() if b < 0}
    if negative:
        problems.append(f"negative balances: {negative}")

    live = dict(cluster.sql(f"SELECT account_id::text, balance FROM {SCHEMA}.projections_app_accountbalance"))
    drift = {a: (live.get(a), b) for a, b in replayed.items() if live.get(a) != b}
    if drift:
        problems.append(f"account_balances differs from the log (live, log): {drift}")

    settled = dict(
        cluster.sql(f"SELECT transfer_id::text, status FROM {SCHEMA}.projections_app_transferstatus")
    )
    outcome_counts = collections.Counter(settled.get(t) for t in transfer_ids)
    figures["transfer outcomes"] = dict(outcome_counts)
    unsettled = [t for t in transfer_ids if settled.get(t) not in ("completed", "refunded", "declined")]
    if unsettled:
        problems.append(
            f"{len(unsettled)} transfers not settled, e.g. {[(t, settled.get(t)) for t in unsettled[:5]]}"
        )
    # Each outcome moved money exactly as it says, once.
    expected_moves = {
        "completed": {"accountDebitedForTransfer": 1, "accountCreditedForTransfer": 1},
        "refunded": {"accountDebitedForTransfer": 1, "accountRefundedForTransfer": 1},
        "declined": {},
    }
    wrong = [
        (t, settled.get(t), dict(per_transfer[t]))
        for t in transfer_ids
        if settled.get(t) in expected_moves and dict(per_transfer[t]) != expected_moves[settled[t]]
    ]
    if wrong:
        problems.append(f"{len(wrong)} transfers moved money wrongly, e.g. {wrong[:5]}")

    totals = cluster.sql(
        f"SELECT currency, total_balance, in_flight FROM {SCHEMA}.projections_app_banktotals"
    )
    figures["bank totals (currency, total, in flight)"] = totals
    by_currency = {currency: (total, in_flight) for currency, total, in_flight in totals}
    eur_total = sum(balance for account, balance in replayed.items() if account != usd)
    if by_currency.get("EUR") != (eur_total, 0) or by_currency.get("USD") != (replayed[usd], 0):
        problems.append(
            f"bank_totals is {by_currency}; the log says EUR {eur_total}, USD {replayed[usd]}, 0 in flight"
        )

    problems += check_read_models_by_replay(cluster, figures)
    print_figures(
        "random transfers while workers are killed",
        {
            "accounts": f"{ACCOUNTS} EUR + 1 USD + 1 closed + 1 never opened",
            "transfers": len(plan),
            "worker kills": kills,
            "submitted and killed for (s)": round(submitted_in, 1),
            "settled after the last kill (s)": round(settled_in, 1),
            "balances": dict(sorted((a[:8], b) for a, b in replayed.items())),
            **figures,
        },
    )
    assert kills, "the test never killed a worker"
    assert not problems, "\n".join(problems)

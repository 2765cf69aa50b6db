"""Banking through the API: roles, payload validation, internal commands, read models, and a
transfer carried to its end in-process (commands processed, projections and the saga run)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django_tenants.utils import schema_context

from tests.api.helpers import (
    REGISTRY_URL,
    assert_error,
    assert_field_error,
    client_for,
    process,
    project,
    projections_url,
    read_model_url,
    send,
    stored_command,
    stores_no_command,
    submit_and_process,
)

BANKING_READ_MODELS = {"account_balances", "account_statement", "transfers", "bank_totals"}


def open_account(currency: str = "EUR", owner: str = "Ann") -> dict[str, Any]:
    return {"accountId": str(uuid.uuid4()), "owner": owner, "currency": currency}


def transfer_payload(source: Any = None, target: Any = None, amount: int = 100) -> dict[str, Any]:
    return {
        "transferId": str(uuid.uuid4()),
        "fromAccountId": str(source or uuid.uuid4()),
        "toAccountId": str(target or uuid.uuid4()),
        "amount": amount,
    }


def money(amount: Any = 100) -> dict[str, Any]:
    return {"accountId": str(uuid.uuid4()), "amount": amount}


PAYLOADS = {
    "openAccount": open_account,
    "depositMoney": money,
    "withdrawMoney": money,
    "closeAccount": lambda: {"accountId": str(uuid.uuid4())},
    "transferMoney": transfer_payload,
}

# persona -> the banking commands their role may send
MAY_SEND = {
    "bea": set(PAYLOADS),  # banker
    "tom": {"depositMoney", "withdrawMoney", "transferMoney"},  # teller
    "ada": set(PAYLOADS),  # tenant admin
    "dave": set(),  # developer
    "alice": set(),  # tester
    "vera": set(),  # viewer
}


# --- roles -----------------------------------------------------------------------------------
@pytest.mark.parametrize("persona", list(MAY_SEND))
@pytest.mark.parametrize("type_name", list(PAYLOADS))
def test_each_role_may_send_exactly_its_banking_commands(world, persona, type_name):
    client = client_for(world[persona])

    if type_name in MAY_SEND[persona]:
        response = send(client, type_name, PAYLOADS[type_name]())
        assert response.status_code == 202, response.json()
        assert response.json()["metadata"]["role"] == world[persona].user.memberships.get().role
    else:
        with stores_no_command(world.acme):
            response = send(client, type_name, PAYLOADS[type_name]())
        error = assert_error(response, 403, "forbidden")
        assert error["details"]["command"] == type_name
        assert "admin" in error["details"]["allowed_roles"]


def test_a_teller_is_told_who_may_open_accounts(world):
    response = send(client_for(world["tom"]), "openAccount", open_account())

    error = assert_error(response, 403, "forbidden")
    assert (error["details"]["role"], error["details"]["allowed_roles"]) == ("teller", ["admin", "banker"])


def test_a_banker_at_acme_is_nobody_at_globex(world):
    response = send(client_for(world["bea"]), "openAccount", open_account(), tenant="globex")

    assert response.status_code == 403, response.json()


INTERNAL = {
    "debitAccountForTransfer": {"accountId": str(uuid.uuid4()), "transferId": str(uuid.uuid4()), "amount": 1},
    "creditAccountForTransfer": {
        "accountId": str(uuid.uuid4()),
        "transferId": str(uuid.uuid4()),
        "amount": 1,
        "currency": "EUR",
    },
    "refundAccountForTransfer": {"accountId": str(uuid.uuid4()), "transferId": str(uuid.uuid4())},
    "markTransferCompleted": {"transferId": str(uuid.uuid4())},
    "markTransferRefunded": {"transferId": str(uuid.uuid4()), "reason": "account_closed"},
    "markTransferDeclined": {"transferId": str(uuid.uuid4()), "reason": "insufficient_funds"},
}


@pytest.mark.parametrize("persona", ["ada", "bea", "tom", "sam", "dave"])
@pytest.mark.parametrize("type_name", list(INTERNAL))
def test_internal_commands_are_refused_to_everyone_the_admin_included(world, persona, type_name):
    with stores_no_command(world.acme):
        response = send(client_for(world[persona]), type_name, INTERNAL[type_name])

    error = assert_error(response, 403, "internal_command")
    assert error["details"]["allowed_roles"] == []


def test_an_internal_command_is_answered_403(world):
    response = send(client_for(world["ada"]), "markTransferCompleted", INTERNAL["markTransferCompleted"])

    assert_error(response, 403, "internal_command")


def test_an_internal_command_is_refused_before_its_payload_is_looked_at(world):
    response = send(client_for(world["ada"]), "debitAccountForTransfer", {"amount": "lots"})

    assert response.json()["error"]["code"] == "internal_command"


# --- payloads --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("type_name", "payload", "field"),
    [
        ("depositMoney", money(0), "amount"),
        ("depositMoney", money(-5), "amount"),
        ("depositMoney", money(10.5), "amount"),
        ("depositMoney", money(10.0), "amount"),
        ("depositMoney", money("10"), "amount"),
        ("withdrawMoney", money(10**12 + 1), "amount"),
        ("withdrawMoney", {"accountId": "not-a-uuid", "amount": 1}, "accountId"),
        ("openAccount", {**open_account(), "currency": "eur"}, "currency"),
        ("openAccount", {**open_account(), "currency": "EURO"}, "currency"),
        ("openAccount", {**open_account(), "owner": ""}, "owner"),
        ("openAccount", {"accountId": str(uuid.uuid4()), "currency": "EUR"}, "owner"),
        ("closeAccount", {"accountId": str(uuid.uuid4()), "force": True}, "force"),
        ("transferMoney", transfer_payload(amount=0), "amount"),
        ("transferMoney", {**transfer_payload(), "currency": "usd"}, "currency"),
        ("transferMoney", {"transferId": str(uuid.uuid4()), "amount": 1}, "fromAccountId"),
    ],
)
def test_it_refuses_a_banking_payload_that_breaks_the_schema_and_names_the_field(
    world, type_name, payload, field
):
    with stores_no_command(world.acme):
        response = send(client_for(world["bea"]), type_name, payload)

    assert_field_error(response, 400, "invalid_payload", field)


def test_the_registry_publishes_the_banking_schemas(world):
    registry = client_for().get(REGISTRY_URL).json()
    commands = {c["type"]: c for c in registry["commands"]}

    amount = commands["transferMoney"]["schema"]["properties"]["amount"]
    assert (amount["type"], amount["exclusiveMinimum"], amount["maximum"]) == ("integer", 0, 10**12)
    assert commands["debitAccountForTransfer"]["internal"] is True
    assert commands["debitAccountForTransfer"]["roles"] == []
    assert commands["depositMoney"]["roles"] == ["admin", "banker", "teller"]
    assert {"banker", "teller"} <= {r["role"] for r in registry["tenant_roles"]}


# --- read models -----------------------------------------------------------------------------
def test_the_banking_read_models_are_served_and_listed(world):
    vera = client_for(world["bea"])  # a banker reads every banking read model

    for name in BANKING_READ_MODELS:
        response = vera.get(read_model_url(name))
        assert response.status_code == 200, (name, response.json())
        assert "X-Projection-Checkpoint" in response
    known = assert_error(vera.get(read_model_url("no_such_model")), 404, "unknown_read_model")["details"][
        "known"
    ]
    assert set(known) >= BANKING_READ_MODELS
    projections = {p["name"]: p["read_models"] for p in vera.get(projections_url()).json()}
    assert {name: projections.get(name) for name in BANKING_READ_MODELS} == {
        n: [n] for n in BANKING_READ_MODELS
    }


def test_read_model_filters_are_checked(world):
    response = client_for(world["tom"]).get(read_model_url("account_balances") + "?balance=5")

    assert_field_error(response, 400, "validation_error", "balance")


# --- a transfer to its end -------------------------------------------------------------------
def settle(tenant: Any, correlation_id: Any) -> None:
    """Run projections and the saga, and process what the saga issued, until the flow rests."""
    from commands_app.models import Command

    for _ in range(20):
        project(tenant)
        with schema_context(tenant.schema_name):
            pending = list(
                Command.objects.filter(correlation_id=correlation_id, status="pending").values_list(
                    "id", flat=True
                )
            )
        if not pending:
            return
        for command_id in pending:
            process(tenant, command_id)
    raise AssertionError("the transfer did not settle")


def test_a_transfer_sent_by_a_teller_completes_and_shows_in_every_read_model(world):
    bea, tom = client_for(world["bea"]), client_for(world["tom"])
    ann, ben = open_account(owner="Ann"), open_account(owner="Ben")
    for account in (ann, ben):
        submit_and_process(bea, "openAccount", account, world.acme)
    submit_and_process(tom, "depositMoney", {"accountId": ann["accountId"], "amount": 10_000}, world.acme)
    payload = transfer_payload(ann["accountId"], ben["accountId"], 2_500)

    command = submit_and_process(tom, "transferMoney", payload, world.acme)
    settle(world.acme, command["id"])

    assert stored_command(world.acme, command["id"]).status == "processed"
    row = tom.get(read_model_url("transfers", payload["transferId"])).json()
    assert (row["status"], row["amount"], row["currency"], row["reason"]) == ("completed", 2_500, "EUR", "")
    balances = {
        key: tom.get(read_model_url("account_balances", account["accountId"])).json()["balance"]
        for key, account in (("ann", ann), ("ben", ben))
    }
    assert balances == {"ann": 7_500, "ben": 2_500}
    lines = tom.get(read_model_url("account_statement") + f"?transfer_id={payload['transferId']}").json()[
        "results"
    ]
    assert sorted((line["kind"], line["amount"]) for line in lines) == [
        ("transfer_in", 2_500),
        ("transfer_out", -2_500),
    ]
    totals = bea.get(read_model_url("bank_totals", "EUR")).json()  # the totals are for bankers
    assert totals["in_flight"] == 0


@pytest.mark.parametrize(
    ("source_currency", "named", "shown"),
    [
        (None, None, None),  # from an account that was never opened, no currency named
        (None, "USD", "USD"),  # ... with the currency the request named
        ("EUR", None, "EUR"),  # from an existing account that cannot pay: its currency
    ],
    ids=["missing-source", "missing-source-named", "insufficient-funds"],
)
def test_a_declined_transfer_shows_a_real_currency_or_null(world, source_currency, named, shown):
    bea = client_for(world["bea"])
    target = open_account()
    submit_and_process(bea, "openAccount", target, world.acme)
    source = None
    if source_currency is not None:
        account = open_account(currency=source_currency)
        submit_and_process(bea, "openAccount", account, world.acme)
        source = account["accountId"]
    payload = {**transfer_payload(source, target["accountId"], 500), **({"currency": named} if named else {})}

    command = submit_and_process(bea, "transferMoney", payload, world.acme)
    settle(world.acme, command["id"])

    row = bea.get(read_model_url("transfers", payload["transferId"])).json()
    assert row["status"] == "declined"
    assert row["currency"] == shown


def test_a_tellers_typo_is_answered_with_its_own_commands_and_a_suggestion(world):
    with stores_no_command(world.acme):
        response = send(client_for(world["tom"]), "depositMoni", money())

    error = assert_error(response, 400, "unknown_command_type")
    assert error["details"] == {
        "known": ["depositMoney", "transferMoney", "withdrawMoney"],
        "did_you_mean": "depositMoney",
    }
    assert "Did you mean 'depositMoney'?" in error["message"]


def test_a_withdrawal_past_the_balance_fails_with_insufficient_funds(world):
    bea = client_for(world["bea"])
    account = open_account()
    submit_and_process(bea, "openAccount", account, world.acme)
    submit_and_process(bea, "depositMoney", {"accountId": account["accountId"], "amount": 100}, world.acme)

    command = submit_and_process(
        bea, "withdrawMoney", {"accountId": account["accountId"], "amount": 101}, world.acme
    )

    response = bea.get(f"/t/acme/api/commands/{command['id']}/")
    body = response.json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "insufficient_funds"
    assert body["attempts"] == 1  # a domain error is never retried


def test_the_transfer_sagas_state_and_the_flow_show_in_the_tenant_admin(world):
    from django.test import Client

    bea, tom = client_for(world["bea"]), client_for(world["tom"])
    ann, ben = open_account(owner="Ann"), open_account(owner="Ben")
    for account in (ann, ben):
        submit_and_process(bea, "openAccount", account, world.acme)
    submit_and_process(tom, "depositMoney", {"accountId": ann["accountId"], "amount": 900}, world.acme)
    payload = transfer_payload(ann["accountId"], ben["accountId"], 400)
    command = submit_and_process(tom, "transferMoney", payload, world.acme)
    settle(world.acme, command["id"])

    admin = Client(raise_request_exception=False)
    admin.force_login(world["ada"].user)
    listing = admin.get(f"/t/acme/admin/projections_app/sagainstance/?q={payload['transferId']}")
    assert listing.status_code == 200 and payload["transferId"] in listing.content.decode()
    with schema_context(world.acme.schema_name):
        from projections_app.models import SagaInstance

        instance = SagaInstance.objects.get(saga="transfer_saga", key=payload["transferId"])
    assert instance.finished
    page = admin.get(f"/t/acme/admin/projections_app/sagainstance/{instance.pk}/change/").content.decode()
    for step in ("transferMoney", "debitAccountForTransfer", "creditAccountForTransfer", "transferCompleted"):
        assert step in page, step

"""The published OpenAPI document is valid and carries every command's payload schema."""

from __future__ import annotations

from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from commands_app.registry import get_registry


def test_the_openapi_document_is_valid_and_lists_every_command_payload():
    schema = SchemaGenerator(urlconf="intent_project.urls_docs").get_schema(request=None, public=True)
    validate_schema(schema)
    body = schema["paths"]["/t/{tenant}/api/commands/"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert body == {"$ref": "#/components/schemas/CommandSubmission"}
    union = schema["components"]["schemas"]["CommandSubmission"]
    public = {t for t, cls in get_registry().commands.items() if not cls.INTERNAL}
    assert set(union["discriminator"]["mapping"]) == public
    assert "debitAccountForTransfer" not in union["discriminator"]["mapping"]
    transfer = schema["components"]["schemas"]["TransferMoneyCommand"]["properties"]["type"]
    assert transfer == {"type": "string", "const": "transferMoney"}
    currency = schema["components"]["schemas"]["TransferMoneyPayload"]["properties"]["currency"]
    assert "default" not in currency and "title" not in currency
    count = schema["components"]["schemas"]["EmitMultipleEventsPayload"]["properties"]["count"]
    assert (count["minimum"], count["maximum"]) == (1, 100)


def _query_parameters(schema, path, method="get"):
    operation = schema["paths"][path][method]
    return {p["name"]: p["schema"] for p in operation.get("parameters", []) if p["in"] == "query"}


def test_each_views_query_parameters_are_documented_from_the_declaration_that_parses_them():
    from commands_app.api import CommandListParams, CommandReadParams, SubmitParams
    from events_app.api import EventListParams
    from projections_app.api import ReadModelListParams, ReadYourWritesParams

    schema = SchemaGenerator(urlconf="intent_project.urls_docs").get_schema(request=None, public=True)
    declared = {
        ("/t/{tenant}/api/commands/", "get"): CommandListParams,
        ("/t/{tenant}/api/commands/", "post"): SubmitParams,
        ("/t/{tenant}/api/commands/{command_id}/", "get"): CommandReadParams,
        ("/t/{tenant}/api/events/", "get"): EventListParams,
        ("/t/{tenant}/api/read-models/account_balances/", "get"): ReadModelListParams,
        ("/t/{tenant}/api/read-models/account_balances/{key}/", "get"): ReadYourWritesParams,
    }
    for (path, method), params in declared.items():
        documented = set(_query_parameters(schema, path, method))
        assert documented >= set(params().fields), (path, method)
        assert documented - set(params().fields) <= {"owner", "currency", "status"}, (path, method)

    events = _query_parameters(schema, "/t/{tenant}/api/events/")
    assert (events["after"]["type"], events["after"]["minimum"], events["after"]["maximum"]) == (
        "integer",
        0,
        2**63 - 1,
    )
    assert (events["limit"]["minimum"], events["limit"]["maximum"], events["limit"]["default"]) == (
        1,
        1000,
        100,
    )
    assert events["aggregate_id"]["format"] == "uuid"
    wait = _query_parameters(schema, "/t/{tenant}/api/read-models/system_status/")["wait"]
    assert (wait["type"], wait["maximum"], wait["default"]) == ("number", 30, 5.0)
    status = _query_parameters(schema, "/t/{tenant}/api/commands/")["status"]
    assert status["enum"] == ["pending", "consumed", "processed", "failed"]


def test_each_read_model_is_listed_with_its_own_row_type_filters_and_key():
    from projections_app.api import list_params
    from projections_app.registry import get_read_models

    schema = SchemaGenerator(urlconf="intent_project.urls_docs").get_schema(request=None, public=True)
    for name, read_model in get_read_models().items():
        listing = schema["paths"][f"/t/{{tenant}}/api/read-models/{name}/"]["get"]
        page = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        row = schema["components"]["schemas"][page]["properties"]["results"]["items"]["$ref"]
        assert row == f"#/components/schemas/{read_model.model.__name__}"
        queried = {p["name"] for p in listing["parameters"] if p["in"] == "query"}
        assert queried == set(list_params(name)().fields)
        detail = schema["paths"][f"/t/{{tenant}}/api/read-models/{name}/{{key}}/"]["get"]
        assert detail["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] == row
        assert "X-Projection-Checkpoint" in detail["responses"]["200"]["headers"]

    detail = schema["paths"]["/t/{tenant}/api/read-models/account_balances/{key}/"]["get"]
    (key,) = [p for p in detail["parameters"] if p["name"] == "key"]
    assert key["schema"]["format"] == "uuid"
    status = schema["components"]["schemas"]["SystemStatus"]["properties"]
    # viewers read these two as null (commands_app/slices/system/access.py)
    assert status["last_message"]["type"] == ["string", "null"]

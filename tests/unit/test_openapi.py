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
    assert set(body["discriminator"]["mapping"]) == set(get_registry().commands)
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
        ("/t/{tenant}/api/read-models/{name}/", "get"): ReadModelListParams,
        ("/t/{tenant}/api/read-models/{name}/{key}/", "get"): ReadYourWritesParams,
    }
    for (path, method), params in declared.items():
        assert set(_query_parameters(schema, path, method)) == set(params().fields), (path, method)

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
    wait = _query_parameters(schema, "/t/{tenant}/api/read-models/{name}/")["wait"]
    assert (wait["type"], wait["maximum"], wait["default"]) == ("number", 30, 5.0)
    status = _query_parameters(schema, "/t/{tenant}/api/commands/")["status"]
    assert status["enum"] == ["pending", "consumed", "processed", "failed"]


def test_the_read_model_list_documents_each_read_models_filters():
    from projections_app.registry import get_read_models

    schema = SchemaGenerator(urlconf="intent_project.urls_docs").get_schema(request=None, public=True)
    operation = schema["paths"]["/t/{tenant}/api/read-models/{name}/"]["get"]
    (name,) = [p for p in operation["parameters"] if p["name"] == "name"]
    assert name["schema"]["enum"] == sorted(get_read_models())
    assert (
        "- `system_status`: `last_result` (string), `last_tester_id` (string), `last_test_id` (uuid)"
        in (operation["description"])
    )
    assert "`status` (one of open, closed)" in operation["description"]

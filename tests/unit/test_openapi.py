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

"""OpenAPI post-processing: publish each command's payload schema from the registry.

The request body of POST /t/{tenant}/api/commands/ becomes `CommandSubmission`, a `oneOf`
over one envelope per public command type, discriminated by `type` (a `const`), each with
the payload schema that pydantic generates from the same class that validates the request.
One source, no drift. Internal commands (a saga's steps, refused to every role) stay in
GET /api/registry/, marked `internal`, and out of the request union.

pydantic's schemas are made plain for generators: no `title` (names come from the
component names), and no `default: null` (an optional field is simply not required).
"""

from __future__ import annotations

import inspect
from typing import Any

from commands_app.registry import get_registry

COMMANDS_PATH = "/t/{tenant}/api/commands/"


def _component_name(type_name: str) -> str:
    return type_name[0].upper() + type_name[1:]


def _plain(schema: Any) -> Any:
    """`schema` without pydantic's titles and `default: null`, at every depth."""
    if isinstance(schema, list):
        return [_plain(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    plain = {}
    for key, value in schema.items():
        if key == "title" or (key == "default" and value is None):
            continue
        # `properties` maps names to schemas: a property may well be called "title".
        plain[key] = {k: _plain(v) for k, v in value.items()} if key == "properties" else _plain(value)
    return plain


def add_command_payload_schemas(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    envelope = schemas.pop("CommandInRequest", None) or schemas.pop("CommandIn", None) or {}
    if "CommandMetadataInRequest" in schemas:  # commands_app.api.CommandMetadataIn refuses other keys
        schemas["CommandMetadataInRequest"]["additionalProperties"] = False
    variants = []
    mapping = {}
    for type_name, cls in sorted(get_registry().commands.items()):
        if cls.INTERNAL:
            continue
        payload_schema = cls.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        for def_name, definition in payload_schema.pop("$defs", {}).items():
            schemas.setdefault(def_name, _plain(definition))
        payload_name = f"{_component_name(type_name)}Payload"
        schemas[payload_name] = _plain(payload_schema)
        command_name = f"{_component_name(type_name)}Command"
        properties = dict(envelope.get("properties", {}))
        properties["type"] = {"type": "string", "const": type_name}
        properties["payload"] = {"$ref": f"#/components/schemas/{payload_name}"}
        schemas[command_name] = {
            "type": "object",
            "description": inspect.cleandoc(cls.__doc__ or ""),
            "properties": properties,
            "required": ["type", "payload"],
        }
        variants.append({"$ref": f"#/components/schemas/{command_name}"})
        mapping[type_name] = f"#/components/schemas/{command_name}"
    operation = result.get("paths", {}).get(COMMANDS_PATH, {}).get("post")
    if operation and variants:
        schemas["CommandSubmission"] = {
            "description": "A command to submit: one envelope per public command type.",
            "oneOf": variants,
            "discriminator": {"propertyName": "type", "mapping": mapping},
        }
        for media in operation.get("requestBody", {}).get("content", {}).values():
            media["schema"] = {"$ref": "#/components/schemas/CommandSubmission"}
    return result


TAGS = [
    {"name": "entry-points", "description": "Where to go from here: links, never data."},
    {"name": "auth", "description": "Tokens: log in for one, send it as `Authorization: Bearer <token>`."},
    {"name": "users", "description": "Platform users."},
    {"name": "tenants", "description": "Tenants and their members' roles."},
    {"name": "registry", "description": "Command and event types, their schemas, and who may do what."},
    {"name": "commands", "description": "Submit commands and follow them to their outcome."},
    {"name": "events", "description": "The tenant's event log, paged or live."},
    {"name": "traces", "description": "One flow's commands and events as a causation tree."},
    {"name": "projections", "description": "Projections and sagas: status, lag, and operator actions."},
    {"name": "read-models", "description": "Read-model rows, typed per read model, cursor-paginated."},
    {"name": "operations", "description": "For the platform's operators: the Prometheus metrics scrape."},
]


def add_tags(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Top-level tags with their descriptions, in the order a reader meets them."""
    result["tags"] = TAGS
    return result

"""OpenAPI post-processing: publish each command's payload schema from the registry.

The request body of POST /t/{tenant}/api/commands/ becomes a `oneOf` over one envelope
per command type, discriminated by `type`, each with the payload schema that pydantic
generates from the same class that validates the request. One source, no drift.
"""

from __future__ import annotations

from typing import Any

from commands_app.registry import get_registry

COMMANDS_PATH = "/t/{tenant}/api/commands/"


def _component_name(type_name: str) -> str:
    return type_name[0].upper() + type_name[1:]


def add_command_payload_schemas(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    envelope = schemas.get("CommandIn") or schemas.get("CommandInRequest")
    variants = []
    mapping = {}
    for type_name, cls in sorted(get_registry().commands.items()):
        payload_schema = cls.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        for def_name, definition in payload_schema.pop("$defs", {}).items():
            schemas.setdefault(def_name, definition)
        payload_name = f"{_component_name(type_name)}Payload"
        schemas[payload_name] = payload_schema
        command_name = f"{_component_name(type_name)}Command"
        properties = dict((envelope or {}).get("properties", {}))
        properties["type"] = {"type": "string", "enum": [type_name]}
        properties["payload"] = {"$ref": f"#/components/schemas/{payload_name}"}
        schemas[command_name] = {
            "type": "object",
            "description": (cls.__doc__ or "").strip(),
            "properties": properties,
            "required": ["type", "payload"],
        }
        variants.append({"$ref": f"#/components/schemas/{command_name}"})
        mapping[type_name] = f"#/components/schemas/{command_name}"
    operation = result.get("paths", {}).get(COMMANDS_PATH, {}).get("post")
    if operation and variants:
        body = {"oneOf": variants, "discriminator": {"propertyName": "type", "mapping": mapping}}
        for media in operation.get("requestBody", {}).get("content", {}).values():
            media["schema"] = body
    return result

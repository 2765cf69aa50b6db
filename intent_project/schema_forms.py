"""A Django form generated from a command payload's JSON Schema (pydantic's), for the admin.

The form only shapes the input (types, required fields, enums, bounds, patterns, help text);
what is valid is decided where the API decides it, by the bus (commands_app.bus.submit), and
its field errors are put back on the form's fields.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.utils.html import format_html
from django.utils.safestring import SafeString


class UuidInput(forms.TextInput):
    """A text input with a button that fills in a new random uuid (intent/admin.js)."""

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        html = super().render(name, value, attrs, renderer)
        input_id = (attrs or {}).get("id") or f"id_{name}"
        return format_html(
            '{}<button type="button" class="button uuid-button" data-uuid-for="{}">New uuid</button>',
            html,
            input_id,
        )


def _unwrap(prop: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """`anyOf: [X, {type: null}]` (an optional field) as X, and whether null was allowed."""
    options = prop.get("anyOf")
    if not options:
        return prop, False
    kept = [option for option in options if option.get("type") != "null"]
    if len(kept) != 1:
        return {"description": prop.get("description", "")}, len(kept) < len(options)
    merged = {**kept[0], **{k: v for k, v in prop.items() if k not in ("anyOf", "default", "title")}}
    return merged, True


def _field(prop: dict[str, Any], required: bool) -> forms.Field:
    shape, _ = _unwrap(prop)
    kind, help_text = shape.get("type"), shape.get("description", "")
    common: dict[str, Any] = {"required": required, "help_text": help_text}
    if "enum" in shape:
        choices = [("", "—")] * (not required) + [(str(v), str(v)) for v in shape["enum"]]
        return forms.ChoiceField(choices=choices, **common)
    if kind == "string" and shape.get("format") == "uuid":
        common["help_text"] = help_text or "A uuid."
        return forms.UUIDField(widget=UuidInput(attrs={"size": 38, "autocomplete": "off"}), **common)
    if kind == "string":
        bounds: dict[str, Any] = {"min_length": shape.get("minLength"), "max_length": shape.get("maxLength")}
        if "pattern" in shape:
            common["help_text"] = " ".join(filter(None, [help_text, f"Pattern: {shape['pattern']}"]))
            return forms.RegexField(regex=shape["pattern"], **bounds, **common)
        return forms.CharField(**bounds, **common)
    if kind == "integer":
        low = shape.get("minimum", shape["exclusiveMinimum"] + 1 if "exclusiveMinimum" in shape else None)
        high = shape.get("maximum", shape["exclusiveMaximum"] - 1 if "exclusiveMaximum" in shape else None)
        return forms.IntegerField(min_value=low, max_value=high, **common)
    if kind == "number":
        return forms.FloatField(min_value=shape.get("minimum"), max_value=shape.get("maximum"), **common)
    if kind == "boolean":
        if required:
            return forms.TypedChoiceField(
                choices=[("true", "true"), ("false", "false")], coerce=lambda v: v == "true", **common
            )
        return forms.NullBooleanField(**common)
    common["help_text"] = " ".join(filter(None, [help_text, "JSON."]))
    return forms.JSONField(widget=forms.Textarea(attrs={"rows": 3}), **common)


def payload_form(schema: dict[str, Any]) -> type[forms.Form]:
    """A form class with one field per payload property, named as on the wire."""
    required = set(schema.get("required", ()))
    fields = {name: _field(prop, name in required) for name, prop in schema.get("properties", {}).items()}
    return type("PayloadForm", (forms.Form,), fields)


def payload_of(form: forms.Form) -> dict[str, Any]:
    """The cleaned form as a payload: empty optional fields left out, uuids as text."""
    payload: dict[str, Any] = {}
    for name, value in form.cleaned_data.items():
        if value is None or value == "":
            continue
        payload[name] = str(value) if isinstance(value, uuid.UUID) else value
    return payload


def put_errors(form: forms.Form, fields: dict[str, list[str]]) -> None:
    """The bus's field errors (`{"amount": ["..."], "payload": [...]}`) on the form's fields."""
    for name, problems in fields.items():
        top = name.split(".")[0]
        for problem in problems:
            form.add_error(
                top if top in form.fields else None, f"{name}: {problem}" if top != name else problem
            )

"""JSON parsing that refuses what PostgreSQL cannot store.

PostgreSQL text and jsonb reject the NUL character; letting "\\u0000" through would turn a
bad request into a database error (a 500) instead of a clear 400.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    return False


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if contains_nul(data):
            raise ParseError("JSON strings must not contain the NUL character (\\u0000).")
        return data

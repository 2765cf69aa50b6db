"""JSON parsing that refuses what the database and validators cannot take.

PostgreSQL text and jsonb reject NUL, UTF-8 has no lone surrogates, and very deep nesting
exhausts recursion in json, pydantic and psycopg: each would become a 500 later, so each
is a clear 400 here instead.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64


def _problem(value: Any) -> str | None:
    """Why PostgreSQL or our validators could not take this JSON value, if they could not.

    Iterative on purpose: a recursive walk would itself overflow on hostile nesting.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"JSON is nested deeper than {MAX_DEPTH} levels."
        if isinstance(item, str):
            if "\x00" in item:
                return "JSON strings must not contain the NUL character (\\u0000)."
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "JSON strings must be valid Unicode (no lone surrogates)."
        elif isinstance(item, dict):
            stack.extend((k, depth) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return None


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON is nested deeper than {MAX_DEPTH} levels.") from None
        problem = _problem(data)
        if problem:
            raise ParseError(problem)
        return data

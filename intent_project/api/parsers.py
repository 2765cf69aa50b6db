"""JSON parsing that refuses what the database and validators cannot take.

PostgreSQL text and jsonb reject NUL, UTF-8 has no lone surrogates, and very deep nesting
exhausts recursion in json, pydantic and psycopg: each would become a 500 later, so each
is a clear 400 here instead. So is an object with the same key twice.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding  # type: ignore[attr-defined]
from rest_framework.utils.json import strict_constant

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


class DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object hook that refuses a key seen twice in one object.

    JSON leaves duplicates undefined and parsers disagree (Python keeps the last, others
    the first), so a proxy or signature check upstream could see a different body than we
    act on: `{"type": "logMessage", "type": "withdrawMoney"}`.
    """
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return result


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = get_encoding(parser_context or {})
        constant = strict_constant if self.strict else None
        try:
            data = json.load(
                codecs.getreader(encoding)(stream), parse_constant=constant, object_pairs_hook=_unique_keys
            )
        except DuplicateKey as exc:
            raise ParseError(f"JSON object has the key {exc.key[:80]!r} more than once.") from None
        except RecursionError:
            raise ParseError(f"JSON is nested deeper than {MAX_DEPTH} levels.") from None
        except ValueError as exc:  # what DRF's JSONParser answers, in our error shape
            raise ParseError(f"JSON parse error - {exc}") from None
        problem = _problem(data)
        if problem:
            raise ParseError(problem)
        return data

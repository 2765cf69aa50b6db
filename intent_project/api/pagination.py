"""Cursor pagination that treats the cursor as the client input it is.

DRF's cursor is base64 of ``o=<offset>&r=<reverse>&p=<position>``, and the position goes
straight into ``WHERE <ordering field> > <position>``. A forged position that does not fit
the field (``p=notanumber`` for an integer, a number beyond bigint, a NUL byte) would
fail inside the ORM or PostgreSQL as a 500; here it is checked against the ordering
field first and answered 400 in the error shape.

Every page is ``{next, next_cursor, previous, previous_cursor, results}``: the links as DRF
gives them, and their ``cursor`` parameter on its own, for a client that builds its own
requests (a generated client passes it as ``cursor=``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from intent_project.api.errors import ApiError


class StrictCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        self._model: type[models.Model] = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data: Any) -> Response:
        next_link, previous_link = self.get_next_link(), self.get_previous_link()
        return Response(
            {
                "next": next_link,
                "next_cursor": _cursor_in(next_link),
                "previous": previous_link,
                "previous_cursor": _cursor_in(previous_link),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        def nullable(kind: dict[str, Any], description: str) -> dict[str, Any]:
            return {**kind, "type": ["string", "null"], "description": description}

        link = {"format": "uri"}
        return {
            "type": "object",
            "required": ["next", "next_cursor", "previous", "previous_cursor", "results"],
            "properties": {
                "next": nullable(link, "The next page's URL; null on the last page."),
                "next_cursor": nullable({}, "The next page's `cursor`; null on the last page."),
                "previous": nullable(link, "The previous page's URL; null on the first page."),
                "previous_cursor": nullable({}, "The previous page's `cursor`; null on the first page."),
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return []  # each view declares `cursor` and `limit` (params.CursorPageParams)

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            self._check_position(str(cursor.position))
        return cursor

    def _check_position(self, position: str) -> None:
        """Refuse a position the first ordering field (the one DRF filters on) cannot hold."""
        ordering = self.ordering if isinstance(self.ordering, (list, tuple)) else (self.ordering,)
        name = str(ordering[0]).lstrip("-")
        try:
            field = self._model._meta.get_field(name)
        except FieldDoesNotExist:
            field = None  # an annotation or a lookup path: only the generic checks below
        try:
            if "\x00" in position:
                raise DjangoValidationError("contains the NUL character")
            if isinstance(field, models.Field):
                value = field.to_python(position)
                # Integer fields carry the database's range as validators (bigint here).
                field.run_validators(value)
        except (DjangoValidationError, ValueError, TypeError, OverflowError) as exc:
            reasons = exc.messages if isinstance(exc, DjangoValidationError) else [str(exc)]
            raise ApiError(
                400,
                "validation_error",
                "The cursor does not fit this list; use the `next`/`previous` links as given.",
                {"fields": {"cursor": reasons}},
            ) from None


def _cursor_in(link: str | None) -> str | None:
    if link is None:
        return None
    return parse_qs(urlsplit(link).query).get("cursor", [None])[0]

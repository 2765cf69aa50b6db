"""Cursor pagination that treats the cursor as the client input it is.

DRF's cursor is base64 of ``o=<offset>&r=<reverse>&p=<position>``, and the position goes
straight into ``WHERE <ordering field> > <position>``. A forged position that does not fit
the field (``p=notanumber`` for an integer, a number beyond bigint, a NUL byte) would
fail inside the ORM or PostgreSQL as a 500; here it is checked against the ordering
field first and answered 400 in the error shape.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from intent_project.api.errors import ApiError


class StrictCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        self._model: type[models.Model] = queryset.model
        return super().paginate_queryset(queryset, request, view)

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

"""Query parameters, declared once per view.

Each view declares its parameters as a `QueryParams` serializer and reads them with
`parse(request, TheParams)`; the same class goes into `extend_schema(parameters=[TheParams])`,
so drf-spectacular documents exactly what is parsed, with its types and bounds. A bad value
answers 400 `validation_error` in the one error shape, naming each bad parameter under
`details.fields`. An empty value (`?wait=`) means the parameter was not given.
"""

from __future__ import annotations

import functools
import types
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from rest_framework import serializers
from rest_framework.request import Request

from intent_project.api.errors import ApiError
from intent_project.api.pagination import StrictCursorPagination

# Positions are bigserial: a larger number cannot name one.
POSITION_MAX = 2**63 - 1


class QueryParams(serializers.Serializer):
    """The query parameters of one view. Unknown ones are ignored, unless `unknown` says
    why they are refused (e.g. "Filterable: owner, currency.")."""

    unknown: ClassVar[str | None] = None
    # DRF's own ?format= (the browsable API) is known to every view.
    always_known: ClassVar[frozenset[str]] = frozenset({"format"})
    # The parsed values depend on the query string alone (no clock, no database, no
    # request): parse() may then answer a query string it parsed before from memory. The
    # hot paths' parameters (a command's ?wait=) opt in; building a DRF serializer per
    # request cost more than the rest of their parsing.
    pure: ClassVar[bool] = False

    def get_fields(self) -> dict[str, serializers.Field]:
        fields: dict[str, serializers.Field] = super().get_fields()
        for field in fields.values():
            # A value is matched as sent: `? x=` must not become a blank the document allows.
            if isinstance(field, serializers.CharField):
                field.trim_whitespace = False
        return fields

    def to_internal_value(self, data: Any) -> Any:
        if self.unknown is not None:
            extra = sorted(set(data) - set(self.fields) - self.always_known)
            if extra:
                raise serializers.ValidationError({key[:80]: [self.unknown] for key in extra})
        return super().to_internal_value(data)


def parse(request: Request, params: type[QueryParams]) -> dict[str, Any]:
    """The request's query parameters as `params` declares them (defaults filled in)."""
    # A plain dict, not the QueryDict: the last value of a repeated parameter counts, and
    # HTML-form rules (a missing boolean reads as false) do not apply to a query string.
    given = tuple(
        (key, value)
        for key in request.query_params
        if (value := request.query_params.get(key)) != ""  # type: ignore[union-attr]
    )
    if params.pure:
        return dict(_parsed(params, given))
    return _parse(params, given)


@functools.lru_cache(maxsize=256)
def _parsed(params: type[QueryParams], given: tuple[tuple[str, Any], ...]) -> Any:
    """_parse's answers for pure parameters, by query string (a refusal raises, so it is
    never kept). Read-only: parse() hands out copies."""
    return types.MappingProxyType(_parse(params, given))


def _parse(params: type[QueryParams], given: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    declared = params(data=dict(given))
    if not declared.is_valid():
        names = sorted(declared.errors)
        raise ApiError(
            400,
            "validation_error",
            f"Bad query parameter{'s' if len(names) > 1 else ''}: {', '.join(names)}.",
            {"fields": declared.errors},
        )
    return dict(declared.validated_data)


class WaitSeconds(serializers.FloatField):
    """`?wait=<seconds>`: how long a read may be held, 0..COMMAND_WAIT_MAX_SECONDS."""

    def __init__(self, *, default: float = 0.0, help_text: str) -> None:
        super().__init__(
            default=default, min_value=0, max_value=settings.COMMAND_WAIT_MAX_SECONDS, help_text=help_text
        )


class CursorPageParams(QueryParams):
    """A cursor-paginated list (intent_project/api/pagination.py reads and checks the cursor)."""

    cursor = serializers.CharField(
        required=False, help_text="Where the page starts: a page's `next_cursor` or `previous_cursor`."
    )
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=StrictCursorPagination.max_page_size,
        help_text=f"Page size (default {StrictCursorPagination.page_size}).",
    )


def model_field_params(model: type[models.Model], names: list[str]) -> dict[str, serializers.Field]:
    """Exact-match filters on model fields, typed as a ModelSerializer types those fields
    (a uuid, an integer in range, one of the choices ...), all optional."""
    builder: serializers.ModelSerializer[Any] = serializers.ModelSerializer()
    params: dict[str, serializers.Field] = {}
    for name in names:
        model_field = model._meta.get_field(name)
        if not isinstance(model_field, models.Field):
            raise TypeError(f"{model.__name__}.{name} is a relation, not a column to filter on.")
        field_class, kwargs = builder.build_standard_field(name, model_field)
        # Input rules for stored rows (read-only keys, uniqueness, defaults, lengths) are no
        # filter's: a value longer than the column simply matches nothing.
        for key in (
            "read_only",
            "required",
            "default",
            "allow_null",
            "allow_blank",
            "validators",
            "max_length",
        ):
            kwargs.pop(key, None)
        params[name] = field_class(required=False, help_text=f"Only rows whose `{name}` is this.", **kwargs)
    return params

"""List filters for big tables: an exact value typed into a box, never a list of every
distinct value (Django's default for a field without choices runs SELECT DISTINCT over
the whole table on each page view)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG, PAGE_VAR
from django.core.exceptions import ValidationError
from django.db.models import Field, Model, QuerySet
from django.http import HttpRequest


class ExactValueFilter(admin.FieldListFilter):
    """`?<field>=<value>`: rows whose field equals the value typed in (the API's filter)."""

    template = "admin/filters/exact_value.html"

    def __init__(
        self,
        field: Field[Any, Any],
        request: HttpRequest,
        params: dict[str, Any],
        model: type[Model],
        model_admin: admin.ModelAdmin[Any],
        field_path: str,
    ) -> None:
        self.lookup_kwarg = field_path
        super().__init__(field, request, params, model, model_admin, field_path)
        given = self.used_parameters.get(self.lookup_kwarg)
        self.value = str((given[-1] if isinstance(given, list) else given) or "")
        # The other parameters of the list (search, other filters, ordering), kept as the
        # form's hidden fields so typing a value narrows the list instead of resetting it.
        self.kept = [
            (name, value)
            for name, values in request.GET.lists()
            if name not in (self.lookup_kwarg, PAGE_VAR, ERROR_FLAG)
            for value in values
        ]

    def expected_parameters(self) -> list[str | None]:
        return [self.lookup_kwarg]

    def has_output(self) -> bool:
        return True

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value:
            return queryset
        try:
            value = self.field.to_python(self.value)
        except ValidationError as exc:
            raise IncorrectLookupParameters(exc) from exc
        return queryset.filter(**{self.lookup_kwarg: value})

    def get_facet_counts(self, pk_attname: str, filtered_qs: QuerySet[Any]) -> dict[str, Any]:
        return {}  # no counts: each would be a COUNT over the table

    def choices(self, changelist: Any) -> Iterator[Any]:
        yield {
            "selected": bool(self.value),
            "query_string": changelist.get_query_string(remove=[self.lookup_kwarg]),
            "display": "All",
        }

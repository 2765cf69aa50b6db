"""Serializer fields stricter than DRF's about what JSON they take, and the page of stored
commands or events that opens their personal data."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from events_app.personal import Keyring, Kind


class UUIDStringField(serializers.UUIDField):
    """A uuid written as a JSON string, nothing else.

    DRF's UUIDField also turns a JSON integer into ``uuid.UUID(int=n)`` (so ``12345`` and
    ``true`` became ids nobody sent) and passes uuid objects through.
    """

    def to_internal_value(self, data: Any) -> uuid.UUID:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        result: uuid.UUID = super().to_internal_value(data)
        return result


@extend_schema_field({"type": "string", "format": "date-time", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}"})
class DateTimeInField(serializers.DateTimeField):
    """An ISO 8601 date-time taken from a client; the document says its shape as a pattern
    too, since a `format` alone is only a hint to JSON Schema validators."""


class PersonalDataPage(serializers.ListSerializer):
    """A page of stored commands or events (`kind`) opens its personal data with one
    keyring, fetched in one query; each item's serializer finds it as `context["keys"]`."""

    kind: ClassVar[Kind]

    def to_representation(self, data: Any) -> list[Any]:
        rows = list(data.all() if hasattr(data, "all") else data)
        self.context.setdefault(
            "keys", Keyring().prefetch(self.kind, ((row.type, row.payload) for row in rows))
        )
        return super().to_representation(rows)

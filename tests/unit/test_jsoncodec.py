"""jsoncodec.dumps (orjson) writes what json.dumps with ExactJSONEncoder wrote, value for value."""

from __future__ import annotations

import datetime
import json
import uuid
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy

from intent_project.jsoncodec import ExactJSONEncoder, FastJSONField, dumps, loads

UTC = datetime.UTC
VALUES = [
    {"id": uuid.UUID("c203fdaf-b854-4368-bae5-94984eb403a8"), "n": 1, "none": None, "ok": True},
    datetime.datetime(2026, 12, 7, 23, 4, 38, 123456, tzinfo=UTC),
    datetime.datetime(2026, 12, 7, 23, 4, 38, tzinfo=UTC),  # no microseconds
    datetime.datetime(2026, 12, 7, 23, 4, 38, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=-5))),
    datetime.datetime(2026, 12, 7, 23, 4, 38, 1),  # naive
    datetime.date(2026, 12, 7),
    datetime.time(23, 4, 38, 999999),
    datetime.time(23, 4, tzinfo=UTC),  # orjson refuses an aware time: the fallback writes it
    Decimal("12.3400"),
    2**70,  # past 64 bits: the fallback
    -(2**63),
    1.5,
    gettext_lazy("lazy"),
    datetime.timedelta(days=1, seconds=3, microseconds=7),
    {1: "int key", "nested": [{"a": [1, "é", "\u2028"]}]},
    [("tuple", 1)],
    "",
]


@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ for v in VALUES])
def test_dumps_writes_the_value_json_dumps_wrote(value):
    assert json.loads(dumps(value)) == json.loads(json.dumps(value, cls=ExactJSONEncoder))


def test_what_neither_can_encode_is_still_refused():
    with pytest.raises(TypeError):
        dumps({"raw": b"bytes"})


@pytest.mark.parametrize(
    "text", ['{"a": [1, 2.5, "é", null, true]}', str(2**70), "-9223372036854775808", '"x"', "1e400"]
)
def test_loads_reads_what_json_loads_reads(text):
    assert loads(text) == json.loads(text)


def test_the_event_log_reads_with_loads_and_migrations_see_a_plain_json_field():
    from events_app.models import Event

    field = Event._meta.get_field("payload")
    assert isinstance(field, FastJSONField)
    assert field.deconstruct()[1] == "django.db.models.JSONField"
    assert field.from_db_value('{"amount": 5}', None, None) == {"amount": 5}
    assert field.from_db_value("not json", None, None) == "not json"
    assert field.from_db_value(None, None, None) is None

"""The projection upsert reads plain fields straight from the instance and still asks the
fields whose pre_save does more (auto_now dates) for their value."""

from __future__ import annotations

from projections_app.models.banking import StatementLine
from projections_app.models.sagas import SagaInstance
from projections_app.projectors.base import _columns


def test_plain_fields_are_read_and_auto_dates_still_set_by_pre_save():
    plain, special = _columns(StatementLine)
    assert [column for column, _ in plain] == [f.column for f in StatementLine._meta.concrete_fields]
    assert special == ()

    plain, special = _columns(SagaInstance)
    assert {f.name for f in special} == {"created_at", "updated_at"}
    assert {column for column, _ in plain} | {f.column for f in special} == {
        f.column for f in SagaInstance._meta.concrete_fields
    }

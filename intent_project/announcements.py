"""What a write in a tenant schema announces outside it, in one statement that names no
tenant table: notifications for the listeners (intent_project/notifications.py) and the
schema's mark for the sweep (intent_project/sweep_marks.py).

Both used to come from triggers on the tenant tables. Under Citus schema-based sharding a
tenant schema lives on a worker node, where its triggers run: their NOTIFY reaches only
that node's listeners (the web processes listen on the coordinator), and their write to
`public.tenants_sweepmark`, a coordinator table, is refused (docs/scaling.md, "Audit").
A statement that names no tenant table runs on the node the session is connected to, the
coordinator; sent in the writer's transaction, it commits (and a NOTIFY is delivered) with
the write. The hot paths send it in the same round trip as a statement they make anyway
(`followed`): a multi-statement string is one round trip, and in autocommit one
transaction. The rarer writes made through the ORM (an operator's retry, a stall, a
rewind, a rebuild's swap, a dead letter) mark from the models instead (`SweepWork`), one
statement more on paths that are not hot, so that no ORM path can forget the mark.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.db import connection, models

from intent_project.notifications import CHANNEL
from intent_project.tenancy import current_schema
from intent_project.tenants.models import SweepMark

# The advisory lock a writer holds (shared) until it commits and the sweep takes
# (exclusive) before removing a mark: sweep_marks.release says why no work is lost.
LOCK_KEY = "hashtext('intent_sweep_mark'), hashtext(%s)"


def _marks_table() -> str:
    q = connection.ops.quote_name
    return f"{q(settings.PUBLIC_SCHEMA_NAME)}.{q(SweepMark._meta.db_table)}"


def statement(schema_name: str, keys: Iterable[str] = (), *, mark: bool = False) -> tuple[str, list[Any]]:
    """One statement that queues a notification per key of `schema_name` (delivered at
    commit) and, with `mark`, marks the schema for the sweep under the mark's shared lock.

    The mark is inserted with ON CONFLICT DO NOTHING: on a busy tenant it already exists
    and nothing is written. Its time is the write's (clock_timestamp()), which
    sweep_marks.release compares with the mark a pass read.
    """
    notify = "SELECT count(pg_notify(%s, %s || ':' || key)) FROM jsonb_array_elements_text(%s::jsonb) AS key"
    params: list[Any] = [CHANNEL, schema_name, json.dumps(list(keys))]
    if not mark:
        return notify, params
    marking = (
        f"WITH locked AS (SELECT pg_advisory_xact_lock_shared({LOCK_KEY})),"
        f" marked AS (INSERT INTO {_marks_table()} (schema_name, marked_at)"
        " SELECT %s, clock_timestamp() FROM locked ON CONFLICT (schema_name) DO NOTHING) "
    )
    return marking + notify, [schema_name, schema_name, *params]


def followed(
    sql: str, params: list[Any], schema_name: str, keys: Iterable[str] = (), *, mark: bool = False
) -> tuple[str, list[Any]]:
    """`sql` and then the announcement, as one multi-statement string (one round trip);
    the cursor's first result stays `sql`'s."""
    extra, extra_params = statement(schema_name, keys, mark=mark)
    return f"{sql}; {extra}", [*params, *extra_params]


def announce(schema_name: str, keys: Iterable[str] = (), *, mark: bool = False) -> None:
    """Send the announcement on its own (paths with no statement to fold it into)."""
    keys = list(keys)
    if not keys and not mark:
        return
    with connection.cursor() as cursor:
        cursor.execute(*statement(schema_name, keys, mark=mark))


class SweepWorkQuerySet(models.QuerySet[Any]):
    """update() marks the schema when the model says the change creates sweep work."""

    def update(self, **kwargs: Any) -> int:
        updated = super().update(**kwargs)
        if updated and self.model.update_creates_sweep_work(kwargs):
            announce(current_schema(), mark=True)
        return updated


SweepWorkManager = models.Manager.from_queryset(SweepWorkQuerySet)


class SweepWork(models.Model):
    """A tenant model some of whose writes create work the sweep watches: saving it (or
    updating it through its queryset) marks the schema when the model's rule says so,
    in the same transaction, as the triggers of projections_app 0007 did.

    The rule compares the row as saved with the row as it was read (`_loaded`), like a
    trigger's OLD and NEW, so that the hot saves (a checkpoint moving forward) send nothing.
    """

    _loaded: dict[str, Any] | None = None

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        marks = self.creates_sweep_work(None if self._state.adding else self._loaded)
        super().save(*args, **kwargs)
        if marks:
            announce(current_schema(), mark=True)
        self.remember_saved()

    def remember_saved(self) -> None:
        """The row as now saved becomes the row as read (for the next save's comparison)."""
        self._loaded = {f.attname: getattr(self, f.attname) for f in self._meta.concrete_fields}

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any) -> Any:
        instance = super().from_db(db, field_names, values)
        instance._loaded = dict(zip(field_names, values, strict=True))
        return instance

    def creates_sweep_work(self, loaded: Mapping[str, Any] | None) -> bool:
        """Whether saving creates work; `loaded` is the row as read (None: a new row)."""
        return True

    @classmethod
    def update_creates_sweep_work(cls, changes: Mapping[str, Any]) -> bool:
        """Whether a queryset update setting `changes` creates work."""
        return True

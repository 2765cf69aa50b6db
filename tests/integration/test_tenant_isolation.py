"""Tenant isolation outside HTTP: tasks refuse the wrong schema; data stays in its schema."""

from __future__ import annotations

import uuid

import pytest
from django_tenants.utils import schema_context

from commands_app.tasks import process_command
from events_app.models import Event
from intent_project.tenancy import WrongSchema
from projections_app.tasks import run_projections


@pytest.mark.parametrize("schema", ["public", "", "information_schema", "pg_catalog"])
def test_a_tenant_task_refuses_to_run_outside_a_tenant_schema(schema):
    with pytest.raises(WrongSchema):
        process_command(schema, str(uuid.uuid4()))
    with pytest.raises(WrongSchema):
        run_projections(schema)


def test_a_tenants_events_are_invisible_from_another_tenant(world, db):
    from commands_app.registry import get_registry
    from commands_app.slices.system.aggregate import System
    from commands_app.slices.system.payloads import MessageLogged
    from events_app.store import PostgresEventStore

    system_id = uuid.uuid4()
    with schema_context(world.acme.schema_name):
        store = PostgresEventStore(get_registry())
        store.append(store.load(System, system_id), [MessageLogged(text="acme only")], {})
        assert Event.objects.filter(stream_id=system_id).count() == 1
    with schema_context(world.globex.schema_name):
        assert Event.objects.filter(stream_id=system_id).count() == 0

"""The app connects as a PostgreSQL role that is not a superuser, and that role cannot
change, delete or truncate events (the triggers hold because it cannot switch them off
with `session_replication_role`, as a superuser could)."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django_tenants.utils import schema_context

from commands_app import processing
from tests.integration.helpers import submit


def _refused(statement: str) -> str:
    """Run `statement` in a savepoint; return the database's refusal (fail if it ran)."""
    with pytest.raises(DatabaseError) as refused:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    return str(refused.value)


@pytest.fixture
def tenant_with_events(fresh_tenant):
    command = submit(fresh_tenant, "logMessage", {"message": "a fact"})
    with schema_context(fresh_tenant.schema_name):
        assert processing.process(command.id) == "consumed"
    return fresh_tenant


def test_the_app_role_is_not_a_superuser(live_db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        user, superuser, bypass_rls = cursor.fetchone()
    assert (superuser, bypass_rls) == (False, False), (
        f"the tests connect as {user}, a superuser or BYPASSRLS role: point DATABASE_URL at a role "
        "that is not (README, Running in production), or leave it unset for the embedded one"
    )


def test_the_app_role_cannot_update_delete_or_truncate_events(tenant_with_events):
    with schema_context(tenant_with_events.schema_name):
        assert "events are immutable: UPDATE" in _refused("UPDATE events_app_event SET type = 'forged'")
        assert "events are immutable: DELETE" in _refused("DELETE FROM events_app_event")
        assert "events are immutable: TRUNCATE" in _refused("TRUNCATE events_app_event")
        assert "events are immutable: TRUNCATE" in _refused("TRUNCATE events_app_event CASCADE")
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), min(type) FROM events_app_event")
            assert cursor.fetchone() == (1, "messageLogged")


def test_the_app_role_cannot_switch_the_triggers_off_with_replication_role(live_db):
    assert "permission denied" in _refused("SET session_replication_role = replica")
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone() == ("origin",)


@pytest.mark.parametrize(
    "escape",
    [
        "SET ROLE postgres",
        "ALTER ROLE CURRENT_USER SUPERUSER",
        "ALTER ROLE CURRENT_USER BYPASSRLS",
        "ALTER ROLE CURRENT_USER SET session_replication_role = replica",
        "COPY (SELECT 1) TO PROGRAM 'true'",
        "ALTER SYSTEM SET fsync = off",
        "CREATE ROLE intruder SUPERUSER LOGIN",
    ],
)
def test_the_app_role_cannot_make_itself_a_superuser_or_act_as_one(live_db, escape):
    _refused(escape)
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False, False)
        cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'intruder'")
        assert cursor.fetchone() == (0,)

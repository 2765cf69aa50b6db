"""The `eventsourcing` library's side of the comparison (imported only when it is installed).

Module-level classes: the library names stored events by topic (module:qualname) and must
resolve them again on read.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier
from psycopg.types.json import Jsonb


class EsSystem(Aggregate):
    """Same state and events as commands_app.slices.system.aggregate.System."""

    @staticmethod
    def create_id(system_id: uuid.UUID) -> uuid.UUID:
        return system_id

    def __init__(self, system_id: uuid.UUID) -> None:
        self.number_executed_tests = 0
        self.messages_logged = 0
        self.messages_by_level: dict[str, int] = {}
        self.events_emitted = 0
        self.last_test_id: str | None = None

    @event("MessageLogged")
    def log_message(self, text: str, level: str, system_id: uuid.UUID) -> None:
        self.messages_logged += 1
        self.messages_by_level[level] = self.messages_by_level.get(level, 0) + 1

    @event("TestExecuted")
    def execute_test(
        self,
        test_id: uuid.UUID,
        test_name: str,
        tester_id: str,
        result: str,
        executed_at: datetime,
        number_executed_tests: int,
        system_id: uuid.UUID,
        parameters: dict[str, Any] | None,
    ) -> None:
        self.number_executed_tests = number_executed_tests
        self.last_test_id = str(test_id)


class BenchSystems(Application[uuid.UUID]):
    # Snapshots every 100 events, as ours (SNAPSHOT_EVERY's default).
    snapshotting_intervals = {EsSystem: 100}  # noqa: RUF012


_STATUS_COLUMNS = (
    "system_id uuid PRIMARY KEY, last_test_id uuid, last_test_name varchar(200) NOT NULL, "
    "last_tester_id varchar(64) NOT NULL, last_result varchar(16) NOT NULL, last_parameters jsonb, "
    "last_executed_at timestamptz, number_executed_tests integer NOT NULL, "
    "messages_logged integer NOT NULL, last_message text NOT NULL, "
    "last_message_level varchar(16) NOT NULL, last_event_id uuid NOT NULL, "
    "last_event_version integer NOT NULL, updated_at timestamptz NOT NULL"
)


class EsStatusView(PostgresTrackingRecorder):
    """A `system_status`-shaped table kept by upserts, with the tracking record in the same
    transaction (the library's pattern for a materialised view in PostgreSQL)."""

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.status_table = Identifier(f"{self.tracking_table_name}_status")
        schema = Identifier(self.datastore.schema)
        self.sql_create_statements.append(
            SQL("CREATE TABLE IF NOT EXISTS {0}.{1} (" + _STATUS_COLUMNS + ")").format(
                schema, self.status_table
            )
        )
        guard = " WHERE s.last_event_version < EXCLUDED.last_event_version"
        self.upsert_message = SQL(
            "INSERT INTO {0}.{1} AS s VALUES (%(sid)s, NULL, '', '', '', NULL, NULL, 0, 1, "
            "%(text)s, %(level)s, %(eid)s, %(version)s, %(at)s) "
            "ON CONFLICT (system_id) DO UPDATE SET messages_logged = s.messages_logged + 1, "
            "last_message = EXCLUDED.last_message, last_message_level = EXCLUDED.last_message_level, "
            "last_event_id = EXCLUDED.last_event_id, last_event_version = EXCLUDED.last_event_version, "
            "updated_at = EXCLUDED.updated_at" + guard
        ).format(schema, self.status_table)
        self.upsert_test = SQL(
            "INSERT INTO {0}.{1} AS s VALUES (%(sid)s, %(test_id)s, %(name)s, %(tester)s, %(result)s, "
            "%(params)s, %(executed_at)s, %(n)s, 0, '', '', %(eid)s, %(version)s, %(at)s) "
            "ON CONFLICT (system_id) DO UPDATE SET last_test_id = EXCLUDED.last_test_id, "
            "last_test_name = EXCLUDED.last_test_name, last_tester_id = EXCLUDED.last_tester_id, "
            "last_result = EXCLUDED.last_result, last_parameters = EXCLUDED.last_parameters, "
            "last_executed_at = EXCLUDED.last_executed_at, "
            "number_executed_tests = EXCLUDED.number_executed_tests, "
            "last_event_id = EXCLUDED.last_event_id, last_event_version = EXCLUDED.last_event_version, "
            "updated_at = EXCLUDED.updated_at" + guard
        ).format(schema, self.status_table)

    def apply(self, statement: Any, params: dict[str, Any], tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            self._insert_tracking(curs, tracking)
            curs.execute(statement, params, prepare=True)

    def count_rows(self) -> int:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT count(*) AS n FROM {0}.{1}").format(
                    Identifier(self.datastore.schema), self.status_table
                )
            )
            row = curs.fetchone()
            return int(row["n"]) if row else 0


class EsStatusProjection(Projection[EsStatusView]):
    name = "bx_status"
    topics = (get_topic(EsSystem.MessageLogged), get_topic(EsSystem.TestExecuted))  # type: ignore[attr-defined]

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:  # type: ignore[override]
        common = {
            "sid": domain_event.originator_id,
            "eid": uuid.uuid5(domain_event.originator_id, str(domain_event.originator_version)),
            "version": domain_event.originator_version,
            "at": domain_event.timestamp,
        }
        if isinstance(domain_event, EsSystem.MessageLogged):  # type: ignore[attr-defined]
            params = {**common, "text": domain_event.text, "level": domain_event.level}
            self.view.apply(self.view.upsert_message, params, tracking)
        elif isinstance(domain_event, EsSystem.TestExecuted):  # type: ignore[attr-defined]
            params = {
                **common,
                "test_id": domain_event.test_id,
                "name": domain_event.test_name,
                "tester": domain_event.tester_id,
                "result": domain_event.result,
                "params": Jsonb(domain_event.parameters) if domain_event.parameters else None,
                "executed_at": domain_event.executed_at,
                "n": domain_event.number_executed_tests,
            }
            self.view.apply(self.view.upsert_test, params, tracking)
        else:
            self.view.insert_tracking(tracking)

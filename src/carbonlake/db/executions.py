"""Executions, their completed states (checkpoints) and their event history."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import lake, ledger, results
from .base import Part, table, utc_now
from .engine import Engine

if TYPE_CHECKING:
    from .engine import AnyRow
    from .lake import LakeFile

EXECUTION_LIST_FIELDS = (
    "execution_id",
    "name",
    "status",
    "root_id",
    "object_key",
    "started_at",
    "stopped_at",
    "owner",
    "error",
)
"""The fields of an execution that listings show (CLI and service)."""

EVENT_COLUMNS = ("execution_id", "event_type", "state", "details_json", "at")
STATE_COLUMNS = ("execution_id", "state", "output_json", "completed_at")
EVENTS = table("execution_events", EVENT_COLUMNS)
STATES = table("execution_states", STATE_COLUMNS)


def _brief(output: dict[str, Any]) -> dict[str, Any]:
    """An output small enough for the event history (long lists become counts)."""
    return {
        key: (f"{len(value)} items" if isinstance(value, list) and len(value) > 20 else value)
        for key, value in output.items()
    }


def _execution_dict(row: AnyRow) -> dict[str, Any]:
    found = dict(row._mapping)
    found["input"] = json.loads(found.pop("input_json"))
    output_json = found.pop("output_json")
    found["output"] = json.loads(output_json) if output_json else None
    return found


def _duplicate_node(what: str) -> Any:
    return lambda reason: (
        f"{what}: a lineage node already exists ({reason}). Record ids "
        "(activity_event_id) must be unique within a file."
    )


class Executions(Part):
    """Executions, checkpoints and events."""

    def _add_events(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        Engine.executemany(conn, sa.insert(EVENTS), EVENT_COLUMNS, rows)

    def _upsert_states(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        insert = self._engine.insert(STATES)
        Engine.executemany(
            conn,
            insert.on_conflict_do_update(
                index_elements=["execution_id", "state"],
                set_={
                    "output_json": insert.excluded.output_json,
                    "completed_at": insert.excluded.completed_at,
                },
            ),
            STATE_COLUMNS,
            rows,
        )

    def insert_execution(
        self,
        execution_id: str,
        name: str,
        input_document: dict[str, Any],
        *,
        root_id: str | None = None,
        object_key: str | None = None,
        object_sha256: str | None = None,
        owner: str | None = None,
    ) -> None:
        """Record a new RUNNING execution (with its ExecutionStarted event)."""
        now = utc_now()
        with self._engine.transaction() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO executions (execution_id, name, root_id, status, input_json, "
                    "started_at, object_key, object_sha256, owner) VALUES (:execution_id, "
                    ":name, :root_id, 'RUNNING', :input_json, :now, :object_key, "
                    ":object_sha256, :owner)"
                ),
                {
                    "execution_id": execution_id,
                    "name": name,
                    "root_id": root_id,
                    "input_json": json.dumps(input_document),
                    "now": now,
                    "object_key": object_key,
                    "object_sha256": object_sha256,
                    "owner": owner,
                },
            )
            details = json.dumps({"input": input_document, "owner": owner})
            self._add_events(conn, [(execution_id, "ExecutionStarted", None, details, now)])

    def claim_execution(self, execution_id: str, owner: str, redrive: bool = False) -> None:
        """Mark an execution RUNNING again under a new owner (resume or redrive)."""
        with self._engine.transaction() as conn:
            conn.execute(
                sa.text(
                    "UPDATE executions SET status = 'RUNNING', owner = :owner, "
                    "stopped_at = NULL, error = NULL, redrive_count = redrive_count + :redrive "
                    "WHERE execution_id = :execution_id"
                ),
                {"owner": owner, "redrive": int(redrive), "execution_id": execution_id},
            )

    def finish_execution(
        self,
        execution_id: str,
        status: str,
        output: dict[str, Any] | None,
        error: str | None = None,
    ) -> None:
        """Record an execution's final status and output (with its closing event)."""
        now = utc_now()
        event = {
            "SUCCEEDED": "ExecutionSucceeded",
            "FAILED": "ExecutionFailed",
            "ABORTED": "ExecutionAborted",
        }.get(status, "ExecutionStopped")
        with self._engine.transaction() as conn:
            conn.execute(
                sa.text(
                    "UPDATE executions SET status = :status, output_json = :output, "
                    "error = :error, stopped_at = :now WHERE execution_id = :execution_id"
                ),
                {
                    "status": status,
                    "output": json.dumps(output),
                    "error": error,
                    "now": now,
                    "execution_id": execution_id,
                },
            )
            details = json.dumps({"error": error} if error else {})
            self._add_events(conn, [(execution_id, event, None, details, now)])

    def get_execution(self, execution_id: str) -> dict[str, Any] | None:
        """One execution as a dict, or None."""
        rows = self._engine.rows(
            "SELECT * FROM executions WHERE execution_id = :id", {"id": execution_id}
        )
        return _execution_dict(rows[0]) if rows else None

    def executions(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Executions, newest first, optionally of one status."""
        if status:
            rows = self._engine.rows(
                "SELECT * FROM executions WHERE status = :status "
                "ORDER BY started_at DESC LIMIT :limit",
                {"status": status, "limit": limit},
            )
        else:
            rows = self._engine.rows(
                "SELECT * FROM executions ORDER BY started_at DESC LIMIT :limit",
                {"limit": limit},
            )
        return [_execution_dict(row) for row in rows]

    def executions_named(self, name: str) -> list[dict[str, Any]]:
        """Executions started with this name (start-by-name semantics)."""
        rows = self._engine.rows(
            "SELECT * FROM executions WHERE name = :name ORDER BY started_at", {"name": name}
        )
        return [_execution_dict(row) for row in rows]

    def executions_of_object(self, object_key: str, object_sha256: str) -> list[dict[str, Any]]:
        """Executions of the same object (same key and same content hash), oldest first."""
        rows = self._engine.rows(
            "SELECT * FROM executions WHERE object_key = :key AND object_sha256 = :sha "
            "ORDER BY started_at",
            {"key": object_key, "sha": object_sha256},
        )
        return [_execution_dict(row) for row in rows]

    def executions_of_root(self, root_id: str) -> list[dict[str, Any]]:
        """The executions that processed one root, oldest first."""
        rows = self._engine.rows(
            "SELECT * FROM executions WHERE root_id = :root_id ORDER BY started_at",
            {"root_id": root_id},
        )
        return [_execution_dict(row) for row in rows]

    def add_event(
        self,
        execution_id: str,
        event_type: str,
        state: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one event to an execution's history."""
        with self._engine.transaction() as conn:
            self._add_events(
                conn, [(execution_id, event_type, state, json.dumps(details or {}), utc_now())]
            )

    def add_events(
        self,
        execution_id: str,
        events: Sequence[tuple[str, str | None, dict[str, Any]]],
    ) -> None:
        """Append several ``(event_type, state, details)`` events in one transaction."""
        now = utc_now()
        with self._engine.transaction() as conn:
            self._add_events(
                conn, [(execution_id, t, state, json.dumps(d), now) for t, state, d in events]
            )

    def execution_events(self, execution_id: str) -> list[dict[str, Any]]:
        """An execution's history, in order."""
        rows = self._engine.dicts(
            "SELECT event_id, event_type, state, details_json, at FROM execution_events "
            "WHERE execution_id = :id ORDER BY event_id",
            {"id": execution_id},
        )
        for event in rows:
            event["details"] = json.loads(event.pop("details_json") or "{}")
        return rows

    def checkpoint(
        self,
        execution_id: str,
        state: str,
        output: dict[str, Any],
        lineage_rows: Sequence[Sequence[Any]] = (),
        event_type: str = "TaskSucceeded",
    ) -> None:
        """Record a completed state: its lineage nodes, its output and its event, atomically.

        Either all of them are durable or none is, so a process killed at any moment
        leaves nothing half-written for ``resume`` to trip over.
        """
        now = utc_now()
        unique = _duplicate_node(f"state {state} of execution {execution_id}")
        with self._engine.transaction(unique) as conn:
            if lineage_rows:
                ledger.insert_lineage_rows(conn, lineage_rows)
            self._upsert_states(conn, [(execution_id, state, json.dumps(output), now)])
            details = json.dumps({"output": _brief(output)})
            self._add_events(conn, [(execution_id, event_type, state, details, now)])

    def commit_batches(
        self,
        execution_id: str,
        states: Sequence[tuple[str, dict[str, Any]]],
        lineage_rows: Sequence[Sequence[Any]],
        files: Sequence[LakeFile],
        record_ids: Sequence[str],
        failure_rows: Sequence[Sequence[Any]] = (),
    ) -> None:
        """Checkpoint map iterations: the registration of their results files (committed to
        the results table after the map), failures, lineage and outputs in one
        transaction."""
        now = utc_now()
        with self._engine.transaction(_duplicate_node(f"execution {execution_id}")) as conn:
            if files:
                lake.register_lake_files(self._engine, conn, files)
            if record_ids:
                results.clear_failures(conn, record_ids)
            if failure_rows:
                results.insert_failure_rows(self._engine, conn, failure_rows)
            if lineage_rows:
                ledger.insert_lineage_rows(conn, lineage_rows)
            if states:
                self._upsert_states(
                    conn, [(execution_id, s, json.dumps(output), now) for s, output in states]
                )
                self._add_events(
                    conn,
                    [
                        (
                            execution_id,
                            "MapIterationSucceeded",
                            s,
                            json.dumps({"output": _brief(output)}),
                            now,
                        )
                        for s, output in states
                    ],
                )

    def checkpoints(
        self, execution_id: str, states: Sequence[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Outputs of an execution's completed states (only of ``states`` when given), by
        state name."""
        if states is None:
            rows = self._engine.rows(
                "SELECT state, output_json FROM execution_states WHERE execution_id = :id",
                {"id": execution_id},
            )
        else:
            rows = self._engine.rows_in(
                "SELECT state, output_json FROM execution_states "
                "WHERE execution_id = :id AND state IN :states",
                "states",
                states,
                {"id": execution_id},
            )
        return {row[0]: json.loads(row[1]) for row in rows}

    def completed_states(self, execution_id: str, states: Sequence[str]) -> set[str]:
        """Which of ``states`` an execution has checkpointed (an indexed lookup each, so a
        map of thousands of batches does not read every checkpoint once per group)."""
        rows = self._engine.rows_in(
            "SELECT state FROM execution_states WHERE execution_id = :id AND state IN :states",
            "states",
            states,
            {"id": execution_id},
        )
        return {row[0] for row in rows}

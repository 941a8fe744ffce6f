"""Errors of the database and its driver reach callers as carbonlake's own: a unique
violation of the ledger as a LineageError, a locked or unreachable database as a
DatabaseError (which the orchestrator retries), never a SQLAlchemy or driver type."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from carbonlake import DatabaseError, LineageError
from carbonlake._exceptions import DatabaseBusy, is_transient
from carbonlake.database import Database


def node(node_id: str) -> tuple[object, ...]:
    return ("root-1", node_id, "root-1", "RECORD_CALCULATED", None, "t", None, 1, "h", "p")


def test_a_node_written_twice_is_a_lineage_error_and_nothing_is_kept(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'carbonlake.db'}")
    try:
        database.insert_lineage([node("a")])
        with pytest.raises(LineageError, match=r"root_id root-1, node_id b.*must be unique"):
            database.insert_lineage([node("b"), node("a")])
        # The transaction was rolled back: "b" did not go in without its batch.
        assert [n["node_id"] for n in database.lineage_of_root("root-1")] == ["a"]
        with pytest.raises(LineageError, match="state Calculate of execution e1"):
            database.checkpoint("e1", "Calculate", {}, [node("a")])
        assert database.checkpoints("e1") == {}
    finally:
        database.close()


def test_a_locked_database_is_a_transient_database_error(tmp_path: Path) -> None:
    path = tmp_path / "carbonlake.db"
    database = Database(f"sqlite:///{path}", busy_timeout_ms=200)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(DatabaseError, match=rf"{path.name}.*database is locked") as caught:
            database.add_event("e1", "Probe")
        assert isinstance(caught.value, DatabaseBusy) and is_transient(caught.value)
        holder.execute("ROLLBACK")
        database.add_event("e1", "Probe")  # the same object works once the lock is gone
        assert [e["event_type"] for e in database.execution_events("e1")] == ["Probe"]
    finally:
        holder.close()
        database.close()


def test_an_unreachable_postgresql_is_a_database_error_naming_it() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://carbonlake:secret@127.0.0.1:{port}/carbonlake"
    with pytest.raises(DatabaseError, match=rf"127\.0\.0\.1:{port}") as caught:
        Database(url, busy_timeout_ms=1000)
    assert "secret" not in str(caught.value)  # the password is never shown

"""What stages need, opened once from the settings, and who owns an execution."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from .. import lake, quality
from ..calculate.factors import FactorSet, load_factor_set
from ..database import Database
from ..quality.rules import Rule
from ..settings import Settings
from ..storage import Storage


@dataclass
class Context:
    """What stages need, built once from settings."""

    settings: Settings
    storage: Storage
    database: Database
    rules: list[Rule]
    factor_set: FactorSet

    @classmethod
    def open(cls, settings: Settings) -> Context:
        """Open storage and database of a workspace and load rules and factors."""
        storage = Storage(
            settings.storage_root_url,
            buckets=settings.storage.bucket_urls(),
            options={
                "endpoint_url": settings.storage.endpoint_url,
                "region": settings.storage.region,
                "landing_bucket_name": settings.storage.landing_bucket_name,
            },
        )
        storage.ensure_buckets()
        database = Database(settings.database_url, settings.database.busy_timeout_ms)
        # A workspace copied or moved elsewhere still finds the objects it recorded.
        storage.add_former_root(database.first_storage_root(settings.storage_root_url))
        # A moved workspace registers its results table anew at its new place; one from
        # before the lake moves its results to the results table, once.
        lake.relocate_if_moved(database, storage)
        if not storage.is_local("lake"):  # reads of the results table go through fsspec
            database.lake_filesystem = storage.filesystem("lake")
        database.locate = storage.current_url  # record files of a moved workspace
        lake.migrate_legacy_results(database, storage)
        return cls(
            settings=settings,
            storage=storage,
            database=database,
            rules=quality.load_ruleset(settings.quality.ruleset),
            factor_set=load_factor_set(settings.calculate.factor_set, database),
        )

    def close(self) -> None:
        """Release the database connections."""
        self.database.close()


def this_process() -> str:
    """The owner id of executions run by this process: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process that owns an execution still runs (on this host)."""
    if not owner:
        return False
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine's: cannot tell; treat as gone
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""What stages need from a workspace: its settings, storage and database, and (loaded
on first use) its data-quality rules and factor set.

Kept out of ``executions/`` so that a command that only reads (``emissions
show``, ``lineage trace``) opens a workspace without importing the pipeline's stages
(Polars, the calculation, the data-quality gate) or building pint's unit registry.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from . import lake
from .database import Database
from .settings import Settings
from .storage import Storage

if TYPE_CHECKING:
    from .calculate.factors import FactorSet
    from .quality.rules import Rule


class Context:
    """A workspace opened once from settings; safe to share between threads."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        database: Database,
        rules: list[Rule] | None = None,
        factor_set: FactorSet | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.database = database
        self._rules = rules
        self._factor_set = factor_set
        self._loading = threading.Lock()

    @classmethod
    def open(cls, settings: Settings, *, load_library: bool = True) -> Context:
        """Open storage and database of a workspace and load rules and factors.

        ``load_library=False`` leaves the ruleset and the factor set to their first use
        (a command that reads results needs neither); by default both are loaded now, so
        a bad ``[quality] ruleset`` or ``[calculate] factor_set`` is reported before any
        work starts.
        """
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
            database.lake_filesystem = storage.read_filesystem("lake")
        database.locate = storage.current_url  # record files of a moved workspace
        lake.migrate_legacy_results(database, storage)
        context = cls(settings=settings, storage=storage, database=database)
        if load_library:
            context.rules  # noqa: B018 (loaded now: configuration errors surface here)
            context.factor_set  # noqa: B018
        return context

    @property
    def rules(self) -> list[Rule]:
        """The data-quality rules of ``[quality] ruleset`` (loaded on first use)."""
        if self._rules is None:
            from . import quality

            with self._loading:
                if self._rules is None:
                    self._rules = quality.load_ruleset(self.settings.quality.ruleset)
        return self._rules

    @property
    def factor_set(self) -> FactorSet:
        """The factor set of ``[calculate] factor_set`` (loaded on first use)."""
        if self._factor_set is None:
            from .calculate.factors import load_factor_set

            with self._loading:
                if self._factor_set is None:
                    self._factor_set = load_factor_set(
                        self.settings.calculate.factor_set, self.database
                    )
        return self._factor_set

    def close(self) -> None:
        """Release the database connections."""
        self.database.close()

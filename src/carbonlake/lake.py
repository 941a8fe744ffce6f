"""The data lake: the results table (the spec's DynamoDB) as an Apache Iceberg table.

The table ``carbonlake.emissions`` lives in the workspace's ``lake`` bucket (the
warehouse), its catalog is pyiceberg's SQL catalog on the workspace's own database.
docs/lake.md describes the tables, the registry and how other engines read them.

Commit protocol (exactly once, resumable after ``kill -9`` anywhere):

1. A map group writes its results as one Parquet file (sorted by record id, zstd)
   under the table's ``data/`` folder, whole, renamed into place
   (:func:`write_results`); a file that is never registered is never counted.
2. The file is registered (``lake_files``, state ``pending``) in the same database
   transaction as the group's checkpoint.
3. After the map, :func:`commit` makes ONE Iceberg commit per execution: the rows the
   new files supersede (same ``activity_event_id`` in the current table) are deleted,
   a current file wholly superseded is dropped, not rewritten, and the new files are
   added; every snapshot of the commit carries ``carbonlake.execution_id``. A resumed
   execution whose files are already in the table does not commit them again. A
   conflicting commit of another process is retried on the reloaded table.
4. The registry is brought to the table's file set (:meth:`Database.lake_sync`); reads
   list the current files from it and query them with DuckDB, never importing
   pyiceberg (2.3 s).

pyiceberg is imported only here, and only when a commit is made.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ._exceptions import CommitConflict, DatabaseError, StorageError
from ._retry import Attempts
from .database import (
    EMISSION_COLUMNS,
    EMISSION_TYPES,
    LINEAGE_COLUMNS,
    LINEAGE_TABLE,
    RESULTS_TABLE,
    Database,
    LakeFile,
)
from .storage import Storage

if TYPE_CHECKING:
    import polars as pl  # imported where used: opening a workspace needs no Polars

log = logging.getLogger(__name__)

NAMESPACE = "carbonlake"
"""The catalog namespace of carbonlake's tables."""

EXECUTION_PROPERTY = "carbonlake.execution_id"
"""Snapshot summary property: the execution whose commit made the snapshot."""

ROOT_PROPERTY = "carbonlake.root_id"
"""Snapshot summary property: the root (input file) whose results the commit added."""

COMMIT_PROPERTY = "carbonlake.commit_id"
"""Snapshot summary property: one id for the snapshots of one commit."""

REPLACED_PROPERTY = "carbonlake.replaced_records"
"""Snapshot summary property: how many current results the commit replaced."""

COMMIT_ATTEMPTS = 30
"""How often a commit that conflicts with another process's is tried again."""

CREATE_ATTEMPTS = 5
"""How often opening the catalog or a table is tried while other processes create them."""


def _conflict_attempts(
    attempts: int, wait_s: float, what: str, *, growing: bool = True
) -> Attempts:
    """The retry policy of a lake commit: ``attempts`` in all, retrying
    :class:`CommitConflict` only (the orchestrator's attempts retry the rest), waiting
    ``wait_s`` times the attempt number (or ``wait_s`` each time when not ``growing``)."""
    return Attempts(
        [wait_s * (n if growing else 1) for n in range(1, attempts)],
        on_retry=lambda attempt, delay, exc: log.info(
            "%s conflicted (%s); trying again", what, exc
        ),
        retries=lambda exc: isinstance(exc, CommitConflict),
    )


_ARROW_TYPES = {"BIGINT": "int64", "DOUBLE": "float64", "VARCHAR": "string"}


def results_schema() -> Any:
    """The results table's Arrow schema (EMISSION_COLUMNS, typed)."""
    import pyarrow as pa

    return pa.schema(
        [
            (column, getattr(pa, _ARROW_TYPES[EMISSION_TYPES[column]])())
            for column in EMISSION_COLUMNS
        ]
    )


def lineage_schema() -> Any:
    """The record lineage table's Arrow schema (LINEAGE_COLUMNS; row_number an integer)."""
    import pyarrow as pa

    return pa.schema(
        [
            (column, pa.int64() if column == "row_number" else pa.string())
            for column in LINEAGE_COLUMNS
        ]
    )


TABLE_SCHEMAS = {RESULTS_TABLE: results_schema, LINEAGE_TABLE: lineage_schema}
"""The lake's tables and their Arrow schemas."""


def warehouse_url(storage: Storage) -> str:
    """The Iceberg warehouse: the ``lake`` bucket."""
    return storage.url("lake", "x")[:-2]


def table_location(storage: Storage, table: str = RESULTS_TABLE) -> str:
    """Where a table's metadata and data files live."""
    return f"{warehouse_url(storage)}/{NAMESPACE}/{table}"


def _catalog_uri(database_url: str) -> str:
    """The SQLAlchemy URL of the workspace database (PostgreSQL through psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


ROW_GROUP_RECORDS = 16_384
"""Rows per row group of a results or record lineage file. pyarrow's default (1Mi rows)
makes a file one row group, whose statistics prune nothing inside it; a lookup of one
record in a sorted file of this size reads one group of at most this many rows."""


def write_results(
    storage: Storage,
    rows: pl.DataFrame,
    *,
    root_id: str,
    execution_id: str | None,
    name: str,
) -> LakeFile | None:
    """Write results (EMISSION_COLUMNS) as one Parquet data file of the results table
    (:func:`results_file`); None when there are none. The file appears whole (storage
    renames it into place)."""
    encoded = results_file(storage, rows, root_id=root_id, execution_id=execution_id, name=name)
    if encoded is None:
        return None
    storage.write_bytes(encoded[0].file_path, encoded[1])
    return encoded[0]


def results_file(
    storage: Storage,
    rows: pl.DataFrame,
    *,
    root_id: str,
    execution_id: str | None,
    name: str,
) -> tuple[LakeFile, bytes] | None:
    """Results (EMISSION_COLUMNS) as the bytes of one Parquet data file of the results
    table, sorted by record id in row groups of ROW_GROUP_RECORDS (pruning for lookups),
    zstd, with the registration of the file once the caller has written the bytes to its
    URL; None when there are none. The registration carries its smallest and largest
    record id, its size and its footer."""
    if rows.height == 0:
        return None
    import pyarrow.parquet as pq

    ordered = rows.select(EMISSION_COLUMNS).sort("activity_event_id")
    ids = ordered.get_column("activity_event_id")
    table = ordered.to_arrow().cast(results_schema())
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=ROW_GROUP_RECORDS)
    data = buffer.getvalue()
    url = (
        f"{table_location(storage)}/data/{root_id}/"
        f"{execution_id or 'task'}-{name.replace('/', '_')}.parquet"
    )
    registration = LakeFile(
        RESULTS_TABLE,
        url,
        root_id,
        execution_id,
        rows.height,
        hashlib.sha256(data).hexdigest(),
        min_record_id=_text_or_none(ids.min()),
        max_record_id=_text_or_none(ids.max()),
        file_size=len(data),
        footer=parquet_footer(data),
    )
    return registration, data


def write_lineage(
    storage: Storage,
    nodes: Sequence[Sequence[Any]] | pl.DataFrame,
    *,
    root_id: str,
    execution_id: str | None,
    name: str,
) -> LakeFile:
    """Write record-level lineage nodes as one Parquet data file of the lineage table
    (:func:`lineage_file`); the file appears whole."""
    registration, data = lineage_file(
        storage, nodes, root_id=root_id, execution_id=execution_id, name=name
    )
    storage.write_bytes(registration.file_path, data)
    return registration


def lineage_file(
    storage: Storage,
    nodes: Sequence[Sequence[Any]] | pl.DataFrame,
    *,
    root_id: str,
    execution_id: str | None,
    name: str,
) -> tuple[LakeFile, bytes]:
    """Record-level lineage nodes (tuples in LINEAGE_COLUMNS order, or a frame of those
    columns) as the bytes of one Parquet data file of the lineage table, sorted by node
    id (a lookup of one record prunes row groups), zstd, with the file's registration
    once the caller has written them to its URL. Its SHA-256 goes into the ledger (a
    RECORD_NODES node), which seals every node it holds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = lineage_schema()
    if isinstance(nodes, Sequence):
        columns = list(zip(*nodes, strict=True)) if nodes else [() for _ in LINEAGE_COLUMNS]
        arrays = [
            pa.array(list(values), type=column.type)
            for values, column in zip(columns, schema, strict=True)
        ]
        unsorted = pa.Table.from_arrays(arrays, schema=schema)
    else:
        unsorted = nodes.select(LINEAGE_COLUMNS).to_arrow().cast(schema)
    table = unsorted.sort_by("node_id")
    buffer = io.BytesIO()
    pq.write_table(
        table,
        buffer,
        compression="zstd",
        row_group_size=ROW_GROUP_RECORDS,
        use_dictionary=[c for c in LINEAGE_COLUMNS if c not in ("node_id", "node_hash")],
    )
    data = buffer.getvalue()
    url = (
        f"{table_location(storage, LINEAGE_TABLE)}/data/{root_id}/"
        f"{execution_id or 'task'}-{name.replace('/', '_')}.parquet"
    )
    ids = table.column("node_id")
    registration = LakeFile(
        LINEAGE_TABLE,
        url,
        root_id,
        execution_id,
        table.num_rows,
        hashlib.sha256(data).hexdigest(),
        min_record_id=_text_or_none(ids[0].as_py()) if table.num_rows else None,
        max_record_id=_text_or_none(ids[-1].as_py()) if table.num_rows else None,
        file_size=len(data),
        footer=parquet_footer(data),
    )
    return registration, data


def parquet_footer(data: bytes) -> bytes:
    """The footer of a Parquet file's bytes, as a Parquet metadata file (pyarrow's
    ``write_metadata_file``; ``pyarrow.parquet.read_metadata`` reads it back): what the
    table commit needs to describe the file without reading it again."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.read_metadata(pa.BufferReader(data)).write_metadata_file(sink)
    return bytes(sink.getvalue().to_pybytes())


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


@contextlib.contextmanager
def _opened(database: Database, storage: Storage, table: str) -> Iterator[tuple[Any, Any]]:
    """The catalog and a table, for one commit or read; the catalog's connections are
    closed afterwards (an idle pooled connection would hold the database file open)."""
    catalog, tbl = _load_table(database, storage, table)
    try:
        yield catalog, tbl
    finally:
        catalog.engine.dispose()


def _catalog(database: Database, storage: Storage) -> Any:
    """pyiceberg's SQL catalog on the workspace database, the warehouse in storage."""
    from pyiceberg.catalog.sql import SqlCatalog
    from sqlalchemy.exc import DBAPIError

    def attempt() -> Any:
        try:
            return SqlCatalog(
                NAMESPACE,
                uri=_catalog_uri(database.url),
                warehouse=warehouse_url(storage),
                **storage.iceberg_properties(),
            )
        except DBAPIError as exc:  # two processes creating the catalog's tables at once
            raise CommitConflict("catalog", str(exc)) from exc

    attempts = _conflict_attempts(CREATE_ATTEMPTS, 0.1, "creating the lake catalog")
    try:
        return attempts.run(attempt)
    except CommitConflict as exc:
        raise DatabaseError(
            f"the lake catalog in {database.url} could not be created: "
            f"{attempts.number} attempts met a database error ({exc})"
        ) from exc.__cause__


def _load_table(
    database: Database, storage: Storage, table: str, catalog: Any = None
) -> tuple[Any, Any]:
    from pyiceberg.exceptions import (
        NamespaceAlreadyExistsError,
        NoSuchTableError,
        TableAlreadyExistsError,
    )
    from sqlalchemy.exc import IntegrityError

    catalog = catalog or _catalog(database, storage)
    identifier = f"{NAMESPACE}.{table}"

    def attempt() -> Any:
        with contextlib.suppress(NoSuchTableError):
            return catalog.load_table(identifier)
        # Two runs may create the namespace or the table at once: the loser loads it.
        with contextlib.suppress(NamespaceAlreadyExistsError, IntegrityError):
            catalog.create_namespace_if_not_exists(NAMESPACE)
        try:
            return catalog.create_table(
                identifier,
                schema=TABLE_SCHEMAS[table](),
                location=table_location(storage, table),
            )
        except (TableAlreadyExistsError, IntegrityError) as exc:
            raise CommitConflict(table, f"table {identifier} was created meanwhile") from exc

    # One more attempt than creations: the last loser of a creation race loads the table.
    attempts = _conflict_attempts(
        CREATE_ATTEMPTS + 1, 0.1, f"creating table {identifier}", growing=False
    )
    try:
        return catalog, attempts.run(attempt)
    except CommitConflict as exc:
        raise DatabaseError(
            f"table {identifier} could not be loaded: {attempts.number} attempts to create "
            "it met another process creating it and it still cannot be loaded"
        ) from exc


def _files_of(tbl: Any, snapshot_id: int | None = None) -> dict[str, Any]:
    """The data files of a snapshot (default: the current one), by path."""
    scan = tbl.scan(snapshot_id=snapshot_id) if snapshot_id is not None else tbl.scan()
    if snapshot_id is None and tbl.current_snapshot() is None:
        return {}
    return {task.file.file_path: task.file for task in scan.plan_files()}


def _our_commit(tbl: Any, execution_id: str | None) -> tuple[set[str], set[str], str] | None:
    """``(files before, files after, snapshot id)`` of the latest commit of an execution
    (found by its snapshot property), or None."""
    ours = [
        s
        for s in tbl.snapshots()
        if s.summary is not None
        and s.summary.additional_properties.get(EXECUTION_PROPERTY) == (execution_id or "")
    ]
    if not ours:
        return None
    last = ours[-1]
    commit_id = last.summary.additional_properties.get(COMMIT_PROPERTY)
    first = next(
        s for s in ours if s.summary.additional_properties.get(COMMIT_PROPERTY) == commit_id
    )
    parent = first.parent_snapshot_id
    before = set(_files_of(tbl, parent)) if parent is not None else set()
    return before, set(_files_of(tbl, last.snapshot_id)), str(last.snapshot_id)


def commit(
    database: Database,
    storage: Storage,
    execution_id: str | None,
    root_id: str | None,
    *,
    files: Sequence[LakeFile] | None = None,
    tables: Sequence[str] = (RESULTS_TABLE,),
) -> int:
    """Commit an execution's registered files (or ``files``, each to its own table) to
    lake tables (one Iceberg commit per table, in order, through one catalog; see the
    module's protocol); returns how many current results they replaced."""
    todo = [
        (
            table,
            [f for f in files if f.table_name == table]
            if files is not None
            else database.lake_pending(table, execution_id),
        )
        for table in tables
    ]
    todo = [(table, pending) for table, pending in todo if pending]
    if not todo:
        return 0
    replaced = 0
    with _opened(database, storage, todo[0][0]) as (catalog, tbl):
        for table, pending in todo:
            if table != todo[0][0]:
                tbl = _load_table(database, storage, table, catalog)[1]
            replaced += _commit(
                database, storage, catalog, tbl, pending, execution_id, root_id, table
            )
    return replaced


def _commit(
    database: Database,
    storage: Storage,
    catalog: Any,
    tbl: Any,
    pending: Sequence[LakeFile],
    execution_id: str | None,
    root_id: str | None,
    table: str,
) -> int:
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.expressions import In

    is_in: Any = In  # pyiceberg's expressions are pydantic models: typed by keyword only
    attempts = _conflict_attempts(COMMIT_ATTEMPTS, 0.05, f"results commit of {execution_id}")

    by_path = {f.file_path: f for f in pending}

    def attempt() -> tuple[int, set[str], str]:
        """(replaced, removed files, snapshot id) of one try at the commit."""
        nonlocal tbl
        if attempts.number > 1:  # the last try met another process's commit
            tbl = catalog.load_table(f"{NAMESPACE}.{table}")
        live = _files_of(tbl)
        todo = [f.file_path for f in pending if f.file_path not in live]
        if not todo:  # committed before (a resumed execution): only the registry is behind
            found = _our_commit(tbl, execution_id)
            before, after, snapshot_id = found if found else (set(), set(live), "")
            return 0, before - after, snapshot_id
        # The lineage table only grows: its commits add files, never replace records.
        overlap = database.lake_overlap(list(live), todo) if table == RESULTS_TABLE else {}
        replaced = sum(len(ids) for ids in overlap.values())
        whole = [path for path, ids in overlap.items() if len(ids) >= live[path].record_count]
        partial = sorted({i for path, ids in overlap.items() if path not in whole for i in ids})
        properties = {
            EXECUTION_PROPERTY: execution_id or "",
            ROOT_PROPERTY: root_id or "",
            COMMIT_PROPERTY: uuid.uuid4().hex,
            REPLACED_PROPERTY: str(replaced),
        }
        tx = tbl.transaction()
        if whole:
            with tx.update_snapshot(snapshot_properties=properties).overwrite() as overwrite:
                for path in whole:
                    overwrite.delete_data_file(live[path])
        if partial:
            tx.delete(is_in("activity_event_id", partial), snapshot_properties=properties)
        _add_files(tx, [by_path[path] for path in todo], properties)
        try:
            tx.commit_transaction()
        except CommitFailedException as exc:
            raise CommitConflict(table, str(exc)) from exc
        return replaced, set(live) - set(_files_of(tbl)), str(tbl.current_snapshot().snapshot_id)

    try:
        replaced, removed, snapshot_id = attempts.run(attempt)
    except CommitConflict as exc:
        raise DatabaseError(
            f"execution {execution_id}: the results table commit conflicted "
            f"{attempts.number} times with other runs ({exc}); resume it with "
            f"`carbonlake executions resume {execution_id}`"
        ) from exc.__cause__
    now_live = {path: int(f.record_count) for path, f in _files_of(tbl).items()}
    database.lake_sync(
        table,
        now_live,
        snapshot_id,
        removed=removed,
        removed_by_root=root_id,
        removed_by_execution=execution_id,
        describe=lambda path: _describe(storage, path),
    )
    return replaced


def _add_files(tx: Any, files: Sequence[LakeFile], properties: dict[str, str]) -> None:
    """Add data files to a table transaction: those whose size and footer the registry
    has are described from them (their statistics as pyiceberg's ``add_files`` computes
    them, without reading each file back from the object store); others through
    ``add_files``, which reads their footers."""
    described = [(f, _data_file(tx.table_metadata, f)) for f in files]
    known = [data_file for _, data_file in described if data_file is not None]
    unknown = [f.file_path for f, data_file in described if data_file is None]
    if known:
        from pyiceberg.table import TableProperties

        if tx.table_metadata.name_mapping() is None:  # as add_files sets it
            mapping = tx.table_metadata.schema().name_mapping.model_dump_json()
            tx.set_properties(**{TableProperties.DEFAULT_NAME_MAPPING: mapping})
        with tx.update_snapshot(snapshot_properties=properties).fast_append() as append:
            for data_file in known:
                append.append_data_file(data_file)
    if unknown:
        tx.add_files(unknown, snapshot_properties=properties)


def _data_file(table_metadata: Any, file: LakeFile) -> Any:
    """The Iceberg ``DataFile`` of a registered file from its footer, as pyiceberg's
    ``parquet_file_to_data_file`` builds it from the file; None when the footer is not
    known or its schema is not the table's (``add_files`` then reads and checks it)."""
    if file.footer is None or file.file_size is None:
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyiceberg.io.pyarrow import (
        _check_pyarrow_schema_compatible,  # add_files's own check (no public name)
        compute_statistics_plan,
        data_file_statistics_from_parquet_metadata,
        parquet_path_to_id_mapping,
    )
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat

    metadata = pq.read_metadata(pa.BufferReader(file.footer))
    schema = table_metadata.schema()
    try:
        _check_pyarrow_schema_compatible(
            schema, metadata.schema.to_arrow_schema(), format_version=table_metadata.format_version
        )
    except ValueError:
        return None
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=metadata,
        stats_columns=compute_statistics_plan(schema, table_metadata.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
    )
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=file.file_path,
        file_format=FileFormat.PARQUET,
        partition=statistics.partition(table_metadata.spec(), schema),
        file_size_in_bytes=file.file_size,
        sort_order_id=None,
        spec_id=table_metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )


def delete_result(
    database: Database, storage: Storage, activity_event_id: str, calculated_at: str
) -> bool:
    """Delete one record's current result (the one calculated at ``calculated_at``) from
    the results table: one Iceberg delete (its file is rewritten without it). Returns
    False when the table holds no such current result (replaced or deleted meanwhile)."""
    with _opened(database, storage, RESULTS_TABLE) as (catalog, tbl):
        return _delete(database, storage, catalog, tbl, activity_event_id, calculated_at)


def _delete(
    database: Database,
    storage: Storage,
    catalog: Any,
    tbl: Any,
    activity_event_id: str,
    calculated_at: str,
) -> bool:
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.expressions import And, EqualTo

    equal_to: Any = EqualTo  # pyiceberg's expressions are pydantic models
    match = And(
        equal_to("activity_event_id", activity_event_id), equal_to("calculated_at", calculated_at)
    )
    attempts = _conflict_attempts(COMMIT_ATTEMPTS, 0.0, f"delete of {activity_event_id}")

    def attempt() -> set[str] | None:
        """The files before the delete, or None when there is no such result to delete."""
        nonlocal tbl
        if attempts.number > 1:  # the last try met another process's commit
            tbl = catalog.load_table(f"{NAMESPACE}.{RESULTS_TABLE}")
        if not tbl.scan(row_filter=match, selected_fields=("activity_event_id",)).to_arrow():
            return None
        live = set(_files_of(tbl))
        try:
            tbl.delete(
                match,
                snapshot_properties={
                    EXECUTION_PROPERTY: f"delete:{activity_event_id}",
                    COMMIT_PROPERTY: uuid.uuid4().hex,
                },
            )
        except CommitFailedException as exc:
            raise CommitConflict(RESULTS_TABLE, str(exc)) from exc
        return live

    try:
        live = attempts.run(attempt)
    except CommitConflict as exc:
        raise DatabaseError(
            f"the delete of record {activity_event_id}'s result conflicted "
            f"{attempts.number} times with other runs ({exc}); run the delete again"
        ) from exc.__cause__
    if live is None:
        return False
    after = {path: int(f.record_count) for path, f in _files_of(tbl).items()}
    database.lake_sync(
        RESULTS_TABLE,
        after,
        str(tbl.current_snapshot().snapshot_id),
        removed=live - set(after),
        removed_by_root=None,
        removed_by_execution=None,
        describe=lambda path: _describe(storage, path),
    )
    return True


def _describe(storage: Storage, url: str) -> tuple[str | None, str | None, str]:
    """``(root_id, execution_id, sha256)`` of a data file the table commit wrote."""
    import pyarrow.parquet as pq

    try:
        data = storage.read_bytes(url)
    except StorageError:
        raise
    first = pq.read_table(io.BytesIO(data), columns=["root_id", "execution_id"]).slice(0, 1)
    root = first.column("root_id").to_pylist()
    execution = first.column("execution_id").to_pylist()
    return (
        root[0] if root else None,
        execution[0] if execution else None,
        hashlib.sha256(data).hexdigest(),
    )


def time_travel(database: Database, storage: Storage, snapshot_id: int | None = None) -> Any:
    """The results table as of a snapshot (default: the current one), as an Arrow table."""
    with _opened(database, storage, RESULTS_TABLE) as (_catalog, tbl):
        if tbl.current_snapshot() is None:
            return results_schema().empty_table()
        return tbl.scan(snapshot_id=snapshot_id).to_arrow()


LEGACY_EXECUTION = "migration:sqlite-results"
"""The execution id under which results of a workspace from before the lake are
committed to the results table."""


def migrate_legacy_results(database: Database, storage: Storage) -> int:
    """Move the results a workspace kept in its database before the lake (tables
    ``emissions`` and ``emissions_history``) into the results table, once, on open:
    the current rows become one data file per root, committed; the earlier ones become
    files of earlier results (readable as history) and the deletions tombstones.
    Returns how many current results moved."""
    pending = database.lake_pending(RESULTS_TABLE, LEGACY_EXECUTION)
    if not pending and not database.has_legacy_results():
        return 0
    import polars as pl

    if not pending:
        current, history = database.legacy_results()
        files: list[LakeFile] = []
        if current:
            frame = pl.DataFrame(current, schema=_polars_schema(), orient="row")
            for (root,), rows in frame.partition_by("root_id", as_dict=True).items():
                written = write_results(
                    storage, rows, root_id=str(root), execution_id=LEGACY_EXECUTION, name="current"
                )
                if written is not None:
                    files.append(written)
        earlier: list[tuple[LakeFile, str, str | None]] = []
        if history:
            frame = pl.DataFrame(
                [row[: len(EMISSION_COLUMNS)] for row in history],
                schema=_polars_schema(),
                orient="row",
            ).with_columns(
                pl.Series("superseded_at", [row[len(EMISSION_COLUMNS)] for row in history]),
                pl.Series("superseded_by", [row[len(EMISSION_COLUMNS) + 1] for row in history]),
            )
            for number, ((at, by), rows) in enumerate(
                sorted(
                    frame.partition_by(["superseded_at", "superseded_by"], as_dict=True).items(),
                    key=lambda item: str(item[0][0]),
                )
            ):
                written = write_results(
                    storage,
                    rows,
                    root_id=str(rows["root_id"][0]),
                    execution_id=LEGACY_EXECUTION,
                    name=f"earlier-{number:06d}",
                )
                if written is not None:
                    earlier.append((written, str(at), None if by is None else str(by)))
        database.adopt_legacy_results(files, earlier)
    replaced = 0
    for root in sorted(
        {f.root_id or "" for f in database.lake_pending(RESULTS_TABLE, LEGACY_EXECUTION)}
    ):
        replaced += commit(
            database,
            storage,
            LEGACY_EXECUTION,
            root,
            files=[
                f
                for f in database.lake_pending(RESULTS_TABLE, LEGACY_EXECUTION)
                if (f.root_id or "") == root
            ],
        )
    return database.emissions_count()


def _polars_schema() -> dict[str, Any]:
    import polars as pl

    kinds = {"BIGINT": pl.Int64, "DOUBLE": pl.Float64, "VARCHAR": pl.String}
    return {column: kinds[EMISSION_TYPES[column]] for column in EMISSION_COLUMNS}


RELOCATION_EXECUTION = "relocation"
"""The execution id of the commit that registers a moved workspace's table anew."""


def relocate_if_moved(database: Database, storage: Storage) -> bool:
    """A workspace moved or restored elsewhere: Iceberg metadata names its files by
    absolute URL, so each table is registered anew at its new place (the registry's files
    under their new URLs, the current ones added to a new table; earlier snapshots stay
    in the old metadata files, the registry's earlier files keep the history readable).
    Returns whether it was moved."""
    moved = False
    for table in TABLE_SCHEMAS:
        moved = _relocate(database, storage, table) or moved
    return moved


def _relocate(database: Database, storage: Storage, table: str) -> bool:
    metadata = database.lake_metadata_location(NAMESPACE, table)
    here = table_location(storage, table)
    if metadata is None or metadata.startswith(here + "/"):
        return False
    log.warning("the %s table was at %s; registering it at %s", table, metadata, here)
    moved = {
        entry["file_path"]: storage.current_url(entry["file_path"])
        for state in ("pending", "current", "removed")
        for entry in database.lake_files(table, state)
    }
    database.lake_relocate(table, moved)
    catalog = _catalog(database, storage)
    try:
        catalog.drop_table(f"{NAMESPACE}.{table}")
    finally:
        catalog.engine.dispose()
    current = [
        LakeFile(
            table,
            e["file_path"],
            e["root_id"],
            e["execution_id"],
            e["record_count"],
            e["sha256"],
        )
        for e in database.lake_files(table, "current")
        # A file that is not there (the database of another workspace) is left to
        # `lineage verify` to name; the table holds what exists.
        if storage.exists(e["file_path"])
    ]
    with _opened(database, storage, table) as (catalog, tbl):
        if current:
            tbl.add_files(
                [f.file_path for f in current],
                snapshot_properties={
                    EXECUTION_PROPERTY: RELOCATION_EXECUTION,
                    COMMIT_PROPERTY: uuid.uuid4().hex,
                },
            )
    return True

"""The split: typed Parquet batches of exactly ``batch_size`` records, whatever the
size of the pieces the file is read in; and the batch reader, which takes Parquet,
JSON and JSON Lines by content."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
from pathlib import Path

import polars as pl
import pytest

from carbonlake import transform
from carbonlake._exceptions import InputDataError
from carbonlake.storage import Storage

HEADER = "activity_event_id,asset_id,geo,scope,raw_data,note"


def tricky_csv(path: Path, rows: int, seed: int = 7) -> Path:
    """Records with quoted commas, quoted line breaks, doubled quotes, blank lines,
    spaces, odd numbers and a byte-order mark."""
    rng = random.Random(seed)
    notes = ['"a, b"', '"line one\nline two"', '"say ""hi"""', "plain", "", '"\r\n"', "  x  "]
    lines = [HEADER]
    for i in range(rows):
        if rng.random() < 0.05:
            lines.append("")  # an empty row: skipped, never a record
        geo = rng.choice(['"[1.5,2.5]"', '"[-3,4e1]"', "nowhere", ""])
        raw = rng.choice(["12.5", " 7 ", "1e3", "n/a", "", "-2"])
        scope = rng.choice(["1", "2", " 3", "x", ""])
        lines.append(f"id-{i},asset-{i % 13},{geo},{scope},{raw},{rng.choice(notes)}")
    path.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode())
    return path


def split(
    path: Path, root: Path, batch_size: int, chunk_bytes: int
) -> list[list[dict[str, object]]]:
    storage = Storage(root.as_uri())
    written = transform.split_path(
        path,
        storage=storage,
        batch_size=batch_size,
        key_of=lambda index: f"r/part_{index:05d}.parquet",
        chunk_bytes=chunk_bytes,
    )
    batches = []
    for url, records, _ in written:
        frame = pl.read_parquet(io.BytesIO(storage.read_bytes(url)))
        assert frame.schema == transform.batch_schema(frame.columns)
        assert frame.height == records
        batches.append(frame.to_dicts())
    return batches


@pytest.mark.parametrize("chunk_bytes", [1, 97, 4096])
def test_reading_in_pieces_gives_the_same_batches_as_reading_at_once(
    tmp_path: Path, chunk_bytes: int
) -> None:
    source = tricky_csv(tmp_path / "in.csv", 700)
    whole = split(source, tmp_path / "whole", 64, chunk_bytes=1 << 30)
    pieces = split(source, tmp_path / f"pieces-{chunk_bytes}", 64, chunk_bytes=chunk_bytes)
    assert pieces == whole
    records = [r for batch in whole for r in batch]
    assert [r["activity_event_id"] for r in records] == [f"id-{i}" for i in range(700)]
    assert [len(b) for b in whole] == [64] * 10 + [60]
    by_id = {r["activity_event_id"]: r for r in records}
    # Typed as documented, quoted text kept whole.
    assert any(r["note"] == "line one\nline two" for r in records)
    assert any(r["note"] == 'say "hi"' for r in records)
    assert all(r["scope"] in (1, 2, 3, None) for r in records)
    assert all(r["raw_data"] is None or isinstance(r["raw_data"], float) for r in records)
    assert {tuple(sorted(r["geo"])) for r in by_id.values()} == {("lat", "long")}


def test_a_file_of_only_a_header_gives_no_batches(tmp_path: Path) -> None:
    source = tmp_path / "empty.csv"
    source.write_text(HEADER + "\n", encoding="utf-8")
    assert split(source, tmp_path / "out", 10, chunk_bytes=16) == []


def test_batch_files_are_parquet_typed_with_the_transforms_schema(tmp_path: Path) -> None:
    source = tricky_csv(tmp_path / "in.csv", 30)
    storage = Storage((tmp_path / "ws").as_uri())
    written = transform.split_path(
        source,
        storage=storage,
        batch_size=16,
        key_of=lambda index: transform.batch_key("root", index),
    )
    assert [url.rsplit("/", 2)[1:] for url, *_ in written] == [
        ["root", "part_00000.parquet"],
        ["root", "part_00001.parquet"],
    ]
    data = storage.read_bytes(written[0][0])
    assert transform.is_parquet(data)
    frame = pl.read_parquet(io.BytesIO(data))
    assert frame.columns == HEADER.split(",")
    assert frame.schema == pl.Schema(
        {
            "activity_event_id": pl.String(),
            "asset_id": pl.String(),
            "geo": pl.Struct({"lat": pl.Float64(), "long": pl.Float64()}),
            "scope": pl.Int64(),
            "raw_data": pl.Float64(),
            "note": pl.String(),
        }
    )
    # No temporary file left beside the batches (each is written whole, then renamed).
    folder = tmp_path / "ws" / "transformed" / "root"
    assert sorted(p.name for p in folder.iterdir()) == ["part_00000.parquet", "part_00001.parquet"]
    assert transform.read_batch_bytes(data, written[0][0]).equals(frame)
    # Other engines read them as they are, with their types.
    import duckdb

    both = pl.concat([pl.read_parquet(folder / p) for p in sorted(os.listdir(folder))])
    ((count, total, lat),) = duckdb.sql(
        f"SELECT count(*), sum(raw_data), max(geo.lat) FROM read_parquet('{folder}/*.parquet')"
    ).fetchall()
    assert count == 30 and lat == both["geo"].struct.field("lat").max()
    assert total == pytest.approx(both["raw_data"].sum(), rel=1e-12)


def test_batch_index_and_enriched_names_follow_the_batch_file() -> None:
    assert transform.batch_key("r", 7) == "r/part_00007.parquet"
    assert transform.batch_index("file:///w/transformed/r/part_00007.parquet") == 7
    assert transform.batch_index("file:///w/transformed/r/part_00007.jsonl") == 7  # older
    assert transform.batch_index("file:///w/transformed/r/mine.json") is None
    # Enriched files are Parquet too, named after their batch.
    assert transform.enriched_key("r/part_00007.parquet") == "r/part_00007.parquet"
    assert transform.enriched_key("r/part_00007.jsonl") == "r/part_00007.parquet"
    assert transform.enriched_key("r/hand.json") == "r/hand.parquet"


RECORDS = [
    {"activity_event_id": "a", "scope": 1, "raw_data": 2.5, "geo": {"lat": 1.0, "long": 2.0}},
    {"activity_event_id": "b", "scope": 2, "raw_data": 7.0, "geo": {"lat": None, "long": None}},
]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("b.jsonl", "\n".join(json.dumps(r) for r in RECORDS).encode() + b"\n"),
        ("b.json", json.dumps(RECORDS, indent=2).encode()),
        ("b.txt", b"  " + json.dumps(RECORDS).encode()),
    ],
)
def test_json_and_json_lines_batches_are_read_by_content(name: str, content: bytes) -> None:
    frame = transform.read_batch_bytes(content, f"file:///w/transformed/r/{name}")
    assert frame.to_dicts() == RECORDS


def test_one_pretty_printed_json_record_is_a_batch_of_one() -> None:
    content = json.dumps(RECORDS[0], indent=2).encode()
    frame = transform.read_batch_bytes(content, "file:///w/transformed/r/one.json")
    assert frame.to_dicts() == [RECORDS[0]]


def test_a_parquet_batch_is_read_with_its_own_types_whatever_its_name() -> None:
    frame = pl.DataFrame(RECORDS)
    content = transform.parquet_bytes(frame)
    read = transform.read_batch_bytes(content, "file:///w/transformed/r/odd-name.bin")
    assert read.equals(frame) and read.schema == frame.schema


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("part_00000.parquet", b'{"activity_event_id": "a"}\n', "is named .parquet but is not"),
        ("part_00000.parquet", b"PAR1 not really PAR1", "not a readable Parquet file"),
        ("b.jsonl", b'{"activity_event_id": "a"\n', "not valid Parquet, JSON or JSON Lines"),
        ("b.json", b"[1, 2, 3]", "not a record object or an array of record objects"),
        ("b.json", b"[{", "not valid JSON"),
    ],
)
def test_a_bad_batch_file_is_an_error_naming_it(name: str, content: bytes, message: str) -> None:
    location = f"file:///w/transformed/r/{name}"
    with pytest.raises(InputDataError, match=message) as caught:
        transform.read_batch_bytes(content, location)
    assert location in str(caught.value)


@pytest.mark.parametrize("chunk_bytes", [1, 97, 4096])
def test_one_read_gives_the_sha256_and_the_same_cuts_block_by_block(
    tmp_path: Path, chunk_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Quoted line breaks and quotes fall across block ends when blocks are 61 bytes.
    source = tricky_csv(tmp_path / "in.csv", 300)
    storage = Storage((tmp_path / "ws").as_uri())
    url = storage.url("landing", "in.csv")
    storage.put_file(source, url)
    with source.open("rb") as handle:
        whole = transform.boundaries(handle, chunk_bytes)  # one 8 MiB block
    monkeypatch.setattr(transform, "_BLOCK", 61)
    sha256, cuts = transform.sha256_and_boundaries(storage, url, chunk_bytes)
    assert sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert cuts == whole
    data = source.read_bytes()
    # Every cut is at the start of a line outside quotes.
    assert all(data[c - 1 : c] == b"\n" and data[:c].count(b'"') % 2 == 0 for c in cuts[:-1])
    assert cuts[-1] == len(data)

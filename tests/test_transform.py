"""The split: typed JSON Lines batches of exactly ``batch_size`` records, whatever the
size of the pieces the file is read in."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from carbonlake import transform
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
        key_of=lambda index: f"r/part_{index:05d}.jsonl",
        chunk_bytes=chunk_bytes,
    )
    return [
        [json.loads(line) for line in storage.read_bytes(url).decode().splitlines()]
        for url, _ in written
    ]


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

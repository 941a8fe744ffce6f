"""Record inclusion proofs: `lineage digest`, `lineage prove`, `lineage verify-proof`.

Real workspaces, the real command line, and the check run in a separate process
with an empty workspace. A small verifier written here from docs/lineage.md (hashlib
and json only) checks the same proofs, so the documented bytes are the real ones.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from carbonlake.cli import cli
from carbonlake.database import Database

from .conftest import FACTORS_CSV, HEADER, activity_row

GASOLINE = "Motor Gasoline - Gasoline Passenger Cars"
DIESEL = "Diesel Fuel - Diesel Passenger Cars"
RAW = {f"p-{i}": str(Decimal(i) * Decimal("3.25") + 1) for i in range(13)}
ACTIVITY = {rid: GASOLINE if i % 3 else DIESEL for i, rid in enumerate(RAW)}


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def ar5_kg_per_gallon() -> dict[str, Decimal]:
    with FACTORS_CSV.open(encoding="utf-8-sig", newline="") as handle:
        return {row["lookup name"]: Decimal(row["AR5 (kgCO2e)"]) for row in csv.DictReader(handle)}


@pytest.fixture
def ran(tmp_path: Path) -> tuple[str, str]:
    """A workspace with one input file of 13 records in 3 batches; (workspace, root_id)."""
    ws = str(tmp_path / "ws")
    source = tmp_path / "in" / "fleet.csv"
    source.parent.mkdir(parents=True)
    rows = [activity_row(rid, raw_data=raw, activity=ACTIVITY[rid]) for rid, raw in RAW.items()]
    source.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "carbonlake.toml").write_text("[pipeline]\nbatch_size = 5\n")
    done = run_cli("run", str(source), "--workspace", ws, "--json")
    assert done.exit_code == 0, done.output
    return ws, json.loads(done.stdout)[0]["root_id"]


def digest_of(ws: str) -> dict[str, Any]:
    done = run_cli("lineage", "digest", "--workspace", ws, "--json")
    assert done.exit_code == 0, done.output
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def prove(ws: str, record_id: str, *extra: str) -> dict[str, Any]:
    done = run_cli("lineage", "prove", record_id, "--workspace", ws, "--json", *extra)
    assert done.exit_code == 0, done.output
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def verify_in_process(proof_file: Path, root_hash: str) -> Any:
    return run_cli("lineage", "verify-proof", str(proof_file), "--root-hash", root_hash, "--json")


# -- an independent verifier, from docs/lineage.md -----------------------------------


def _canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _root(leaf: bytes, index: int, size: int, path: list[str]) -> bytes | None:
    """RFC 9162 section 2.1.3.2, written out again."""
    fn, sn, r = index, size - 1, leaf
    for step in map(bytes.fromhex, path):
        if sn == 0:
            return None
        if fn % 2 == 1 or fn == sn:
            r = _node(step, r)
            while fn % 2 == 0 and fn != 0:
                fn //= 2
                sn //= 2
        else:
            r = _node(r, step)
        fn //= 2
        sn //= 2
    return r if sn == 0 else None


def independently_valid(proof: dict[str, Any], root_hash: str) -> bool:
    record_proof, file_proof = proof["record_proof"], proof["file_proof"]
    records_root = _root(
        _leaf(_canonical(proof["record"])),
        record_proof["leaf_index"],
        record_proof["tree_size"],
        record_proof["path"],
    )
    if records_root is None or records_root.hex() != proof["file"]["records_root"]:
        return False
    files_root = _root(
        _leaf(_canonical(proof["file"])),
        file_proof["leaf_index"],
        file_proof["tree_size"],
        file_proof["path"],
    )
    if files_root is None:
        return False
    ledger_root = bytes.fromhex(proof["ledger"]["root_hash"])
    if proof["file"]["parent_node_hash"] is not None:
        parent_hash = None
        for node in proof["trail"] or []:
            fields = {k: v for k, v in node.items() if k != "node_hash"}
            if hashlib.sha256(_canonical(fields)).hexdigest() != node["node_hash"]:
                return False
            if node["parent_hash"] != parent_hash:
                return False
            parent_hash = node["node_hash"]
        if parent_hash != proof["file"]["parent_node_hash"]:
            return False
        ledger_proof = proof["ledger_proof"]
        reached = _root(
            _leaf(bytes.fromhex(parent_hash)),
            ledger_proof["leaf_index"],
            ledger_proof["tree_size"],
            ledger_proof["path"],
        )
        if reached != ledger_root:
            return False
    return _node(ledger_root, files_root).hex() == root_hash


# -- the tests -----------------------------------------------------------------------


def test_a_proof_verifies_in_another_process_without_the_workspace(
    ran: tuple[str, str], tmp_path: Path
) -> None:
    ws, root_id = ran
    digest = digest_of(ws)
    assert digest["files"]["count"] == 3 and digest["files"]["records"] == len(RAW)
    checkpoint = json.loads(run_cli("lineage", "checkpoint", "--workspace", ws, "--json").stdout)
    assert digest["ledger"] == {"size": checkpoint["size"], "root_hash": checkpoint["root_hash"]}

    proof_file = tmp_path / "proof-p-7.json"
    written = run_cli(
        "lineage", "prove", "p-7", "--workspace", ws, "--out", str(proof_file), "--json"
    )
    assert written.exit_code == 0, written.output
    assert json.loads(written.stdout)["root_hash"] == digest["root_hash"]
    proof = json.loads(proof_file.read_text())

    # The record is the one `emissions export --format jsonl` gives, with its numbers.
    exported = run_cli("emissions", "export", "--workspace", ws)
    lines = [json.loads(line) for line in exported.stdout.splitlines() if line.startswith("{")]
    assert proof["record"] == next(r for r in lines if r["activity_event_id"] == "p-7")
    expected = Decimal(RAW["p-7"]) * ar5_kg_per_gallon()[ACTIVITY["p-7"]] / 1000
    co2e = proof["record"]["emissions_output"]["calculated_emissions"]["co2e"]["ar5"]
    assert Decimal(str(co2e["amount"])) == pytest.approx(expected, rel=Decimal("1e-12"))
    assert proof["lineage"]["root_id"] == root_id and proof["lineage"]["node_id"] == "p-7"
    assert proof["file"]["storage_location"].endswith(f"enriched/{root_id}/part_00001.parquet")
    assert proof["record_proof"]["tree_size"] == 5 and proof["record_proof"]["leaf_index"] == 2
    assert proof["status"]["current"] is True
    actions = [node["action_taken"] for node in proof["trail"]]
    assert actions == ["RAW_DATA_INPUT", "PROFILE_COMPLETE", "DQ_CHECK_PASS", "GLUE_BATCH_SPLIT"]
    assert proof["trail"][-1]["storage_location"].endswith(
        f"transformed/{root_id}/part_00001.parquet"
    )
    input_sha256 = hashlib.sha256((tmp_path / "in" / "fleet.csv").read_bytes()).hexdigest()
    assert proof["trail"][0]["object_sha256"] == input_sha256  # the very input file
    assert proof["ledger_proof"]["tree_size"] == checkpoint["size"]
    assert independently_valid(proof, digest["root_hash"])

    empty = tmp_path / "nothing-here"
    empty.mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLAKE_")}
    for workspace_args in (["--workspace", str(empty)], []):
        done = subprocess.run(
            [sys.executable, "-c", "from carbonlake.cli import main; main()", "lineage",
             "verify-proof", str(proof_file), "--root-hash", digest["root_hash"], "--json",
             *workspace_args],
            cwd=empty, env=environ, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["ok"] is True
    assert list(empty.iterdir()) == []  # no database, no buckets were made

    other = subprocess.run(
        [sys.executable, "-c", "from carbonlake.cli import main; main()", "lineage",
         "verify-proof", str(proof_file), "--root-hash", "0" * 64, "--workspace", str(empty)],
        cwd=empty, env=environ, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert other.returncode == 1 and "step root_hash" in other.stderr


def _tampered(proof: dict[str, Any], change: str, other: dict[str, Any]) -> dict[str, Any]:
    bad = copy.deepcopy(proof)
    if change == "number":
        amount = bad["record"]["emissions_output"]["calculated_emissions"]["co2e"]["ar5"]
        amount["amount"] = amount["amount"] * 0.5
    elif change == "record_path_step":
        step = bad["record_proof"]["path"][1]
        bad["record_proof"]["path"][1] = ("0" if step[0] != "0" else "1") + step[1:]
    elif change == "file_path_step":
        step = bad["file_proof"]["path"][0]
        bad["file_proof"]["path"][0] = ("0" if step[0] != "0" else "1") + step[1:]
    elif change == "swapped_record":  # another record of the same file, at this one's place
        bad["record"] = other["record"]
        bad["record_id"] = other["record_id"]
        bad["lineage"]["node_id"] = other["record_id"]
    elif change == "records_root":
        bad["file"]["records_root"] = other["file"]["records_root"]
    elif change == "file_sha256":  # the entry claims other bytes, the lineage agrees
        bad["file"]["object_sha256"] = bad["lineage"]["object_sha256"] = "0" * 64
    elif change == "trail_node":  # the batch node claims another transformed file
        bad["trail"][-1]["storage_location"] += ".other"
    elif change == "trail_rehashed":  # ... with its hash recomputed: the entry disagrees
        node = bad["trail"][-1]
        node["storage_location"] += ".other"
        fields = {k: v for k, v in node.items() if k != "node_hash"}
        node["node_hash"] = hashlib.sha256(_canonical(fields)).hexdigest()
    elif change == "ledger_path_step":
        step = bad["ledger_proof"]["path"][0]
        bad["ledger_proof"]["path"][0] = ("0" if step[0] != "0" else "1") + step[1:]
    elif change == "no_trail":
        bad["trail"] = None
    elif change == "ledger_root":
        bad["ledger"]["root_hash"] = "ab" * 32
    return bad


@pytest.mark.parametrize(
    ("change", "step"),
    [
        ("number", "record_path"),
        ("record_path_step", "record_path"),
        ("file_path_step", "file_path"),
        ("swapped_record", "record_path"),
        ("records_root", "record_path"),
        ("file_sha256", "file_path"),
        ("trail_node", "trail"),
        ("trail_rehashed", "trail"),
        ("no_trail", "trail"),
        ("ledger_path_step", "ledger_path"),
        ("ledger_root", "ledger_path"),
    ],
)
def test_a_changed_proof_fails_naming_the_step(
    ran: tuple[str, str], tmp_path: Path, change: str, step: str
) -> None:
    ws, _ = ran
    root_hash = digest_of(ws)["root_hash"]
    proof = prove(ws, "p-6")
    other = prove(ws, "p-8" if change == "swapped_record" else "p-1")
    if change == "swapped_record":
        assert other["file"] == proof["file"]  # the same file: only the record differs
    bad = _tampered(proof, change, other)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    done = verify_in_process(path, root_hash)
    assert done.exit_code == 1, done.output
    assert json.loads(done.stdout) == {
        "ok": False,
        "step": step,
        "message": json.loads(done.stdout)["message"],
    }
    assert f"step {step}" in done.stderr
    assert not independently_valid(bad, root_hash)


def test_a_different_root_hash_fails(ran: tuple[str, str], tmp_path: Path) -> None:
    ws, _ = ran
    root_hash = digest_of(ws)["root_hash"]
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(prove(ws, "p-0")))
    assert verify_in_process(path, root_hash).exit_code == 0
    flipped = ("1" if root_hash[0] == "0" else "0") + root_hash[1:]
    done = verify_in_process(path, flipped)
    assert done.exit_code == 1 and json.loads(done.stdout)["step"] == "root_hash"
    assert root_hash in json.loads(done.stdout)["message"]


def test_a_malformed_proof_exits_2_with_a_clear_message(
    ran: tuple[str, str], tmp_path: Path
) -> None:
    ws, _ = ran
    root_hash = digest_of(ws)["root_hash"]
    proof = prove(ws, "p-2")
    cases: dict[str, tuple[str, str]] = {
        "not-json.json": ("{ not json", "not JSON"),
        "list.json": ("[1, 2]", "not a JSON object"),
        "format.json": (json.dumps({**proof, "format": "x"}), "'format'"),
        "path.json": (
            json.dumps({**proof, "record_proof": {**proof["record_proof"], "path": ["zz"]}}),
            "record_proof.path[0] must be 64 hex digits",
        ),
        "no-file.json": (json.dumps({k: v for k, v in proof.items() if k != "file"}), "'file'"),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        done = verify_in_process(path, root_hash)
        assert done.exit_code == 2, (name, done.output)
        assert str(path) in done.stderr and expected in done.stderr, (name, done.stderr)
        assert "Traceback" not in done.output
    missing = verify_in_process(tmp_path / "absent.json", root_hash)
    assert missing.exit_code == 2 and "cannot read proof" in missing.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps(proof))
    short = verify_in_process(good, "abc")
    assert short.exit_code == 2 and "--root-hash 'abc'" in short.stderr


def test_an_unknown_record_fails_with_a_clear_message(ran: tuple[str, str]) -> None:
    ws, root_id = ran
    done = run_cli("lineage", "prove", "nobody", "--workspace", ws, "--json")
    assert done.exit_code == 1
    assert "no calculated record 'nobody'" in json.loads(done.stdout)["error"]["message"]
    wrong_root = run_cli("lineage", "prove", "p-1", "--root", "not-a-root", "--workspace", ws)
    assert wrong_root.exit_code == 1 and "not-a-root" in wrong_root.stderr
    assert prove(ws, "p-1", "--root", root_id)["lineage"]["root_id"] == root_id


def _tamper_enriched(location: str) -> None:
    path = Path(location.removeprefix("file://"))
    frame = pl.read_parquet(path)
    frame = frame.with_columns(pl.col("raw_data") * 2)
    frame.write_parquet(path)


def test_a_changed_enriched_file_cannot_be_proven(ran: tuple[str, str], tmp_path: Path) -> None:
    ws, _ = ran
    proof = prove(ws, "p-11")  # the cache now has the file's records root
    location = proof["file"]["storage_location"]
    _tamper_enriched(location)
    done = run_cli("lineage", "prove", "p-11", "--workspace", ws, "--json")
    assert done.exit_code == 1
    message = json.loads(done.stdout)["error"]["message"]
    assert (
        location in message and "SHA-256" in message and proof["file"]["object_sha256"] in message
    )

    # A workspace whose roots were never computed: the digest itself refuses the file.
    database = Database(f"sqlite:///{Path(ws) / 'carbonlake.db'}")
    with database.transaction() as conn:
        conn.exec_driver_sql("DELETE FROM proof_records_roots")
    database.close()
    digest = run_cli("lineage", "digest", "--workspace", ws)
    assert digest.exit_code == 1 and location in digest.stderr
    # Every proof leads to the digest, which now cannot be made: a record of an unchanged
    # file is refused too, naming the changed file.
    other = run_cli("lineage", "prove", "p-0", "--workspace", ws)
    assert other.exit_code == 1 and location in other.stderr


def test_cached_roots_give_the_same_digest(ran: tuple[str, str]) -> None:
    ws, _ = ran
    first = digest_of(ws)
    database = Database(f"sqlite:///{Path(ws) / 'carbonlake.db'}")
    assert len(database.records_roots([])) == 0
    with database.transaction() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM proof_records_roots").fetchone()[0] == 3
        conn.exec_driver_sql("DELETE FROM proof_records_roots")
    database.close()
    assert digest_of(ws)["root_hash"] == first["root_hash"]


def test_after_an_admin_delete_the_record_still_proves_as_calculated(
    ran: tuple[str, str], tmp_path: Path
) -> None:
    ws, _ = ran
    before_hash = digest_of(ws)["root_hash"]
    before = prove(ws, "p-4")
    deleted = run_cli(
        "emissions", "delete", "p-4", "--reason", "meter fault", "--by", "carol",
        "--workspace", ws, "--json",
    )  # fmt: skip
    assert deleted.exit_code == 0, deleted.output
    after_hash = digest_of(ws)["root_hash"]
    assert after_hash != before_hash  # the deletion's ledger node is covered

    after = prove(ws, "p-4")
    assert after["record"] == before["record"] and after["file"] == before["file"]
    assert after["status"]["current"] is False
    assert after["status"]["deleted_by"] == "cli:carol"
    assert after["status"]["deletion_reason"] == "meter fault"
    path = tmp_path / "after.json"
    path.write_text(json.dumps(after))
    assert verify_in_process(path, after_hash).exit_code == 0
    # The proof made before the deletion still holds against the digest of its time.
    old = tmp_path / "before.json"
    old.write_text(json.dumps(before))
    assert verify_in_process(old, before_hash).exit_code == 0
    assert json.loads(verify_in_process(old, after_hash).stdout)["step"] == "root_hash"


def test_after_a_recalculation_the_new_result_is_proven(
    ran: tuple[str, str], tmp_path: Path
) -> None:
    ws, root_id = ran
    factors = tmp_path / "revised.json"
    factors.write_text(
        json.dumps(
            {
                "format": "carbonlake-factors/1",
                "factors": [
                    {
                        "scope": 1,
                        "category": "mobile-combustion",
                        "activity": activity,
                        "unit": "gal (US)",
                        "co2": {"value": 9.5, "unit": "kg"},
                        "source": "revised",
                    }
                    for activity in (GASOLINE, DIESEL)
                ],
            }
        )
    )
    imported = run_cli("factors", "import", str(factors), "--workspace", ws, "--json")
    label = json.loads(imported.stdout)["label"]
    before = prove(ws, "p-5")
    redone = run_cli("recalculate", "--factor-set", label, "--workspace", ws, "--json")
    assert redone.exit_code == 0, redone.output

    after = prove(ws, "p-5")
    assert after["lineage"]["action_taken"] == "RECALCULATION"
    assert after["lineage"]["node_id"].startswith("p-5#recalc-")
    assert "/recalculated/" in after["file"]["storage_location"]
    amount = after["record"]["emissions_output"]["calculated_emissions"]["co2e"]["ar5"]["amount"]
    assert Decimal(str(amount)) == pytest.approx(
        Decimal(RAW["p-5"]) * Decimal("9.5") / 1000, rel=Decimal("1e-12")
    )
    assert after["status"]["current"] is True and after["lineage"]["root_id"] == root_id
    root_hash = digest_of(ws)["root_hash"]
    assert root_hash == after["root_hash"] != before["root_hash"]
    path = tmp_path / "after.json"
    path.write_text(json.dumps(after))
    assert verify_in_process(path, root_hash).exit_code == 0
    assert independently_valid(after, root_hash)


def test_the_column_encoder_gives_the_canonical_json_of_the_exported_objects() -> None:
    from carbonlake.calculate import enriched_bytes
    from carbonlake.lineage import proof as lineage_proof

    frame = pl.DataFrame(
        {
            "activity_event_id": ['a"1', "é-2", "3\n", None],
            "geo": [{"lat": 1.5, "long": -0.0}, None, {"lat": 1e-7, "long": 1e22}, None],
            "raw_data": [9.0, float("nan"), 0.1 + 0.2, float("inf")],
            "scope": [1, None, 3, 2],
            "flag": [True, False, None, True],
            "gases": [["ch4"], [], None, ["n2o", "co2"]],
            "{odd key}": ["x", "y", "z", "w"],
            "nested": [
                {"inner": {"amount": 3.50325e-06, "unit": "t"}, "n": 1},
                {"inner": None, "n": 2},
                {"inner": {"amount": None, "unit": None}, "n": None},
                None,
            ],
        }
    )
    data = enriched_bytes(frame)
    fast = lineage_proof.record_leaves(data, "memory")
    slow = [
        lineage_proof.canonical_json(record)
        for record in lineage_proof.file_records(data, "memory")
    ]
    assert fast == slow and len(fast) == 4
    assert b'"raw_data":null' in fast[1] and b'"lat":1e-07' in fast[2]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_library_proves_on_both_back_ends(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    from carbonlake import Pipeline
    from carbonlake.executions import Context
    from carbonlake.lineage.proof import digest, prove, verify_proof
    from carbonlake.settings import load_settings

    url = (
        f"sqlite:///{tmp_path / 'carbonlake.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    source = tmp_path / "fleet.csv"
    rows = [activity_row(rid, raw_data=raw, activity=ACTIVITY[rid]) for rid, raw in RAW.items()]
    source.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    overrides = {"database": {"url": url}, "pipeline": {"batch_size": 4}}
    context = Context.open(load_settings(tmp_path / "ws", environ={}, overrides=overrides))
    try:
        assert Pipeline(context).run_file(source)["status"] == "SUCCEEDED"
        first = digest(context.database, context.storage)
        assert (first.files, first.records) == (4, len(RAW))
        again = digest(context.database, context.storage)  # from the cached roots
        assert again.root_hash == first.root_hash
        proof = prove(context.database, context.storage, "p-12")
    finally:
        context.close()
    assert proof["record_proof"] == {**proof["record_proof"], "leaf_index": 0, "tree_size": 1}
    checked = json.loads(json.dumps(proof))
    assert verify_proof(checked, first.root_hash)["ok"] is True
    assert independently_valid(checked, first.root_hash)


def test_a_failed_record_has_nothing_to_prove_until_a_redrive_calculates_it(
    tmp_path: Path,
) -> None:
    from carbonlake import LineageError, Pipeline
    from carbonlake.calculate.factors import import_factor_file
    from carbonlake.executions import Context
    from carbonlake.lineage.proof import digest, prove, verify_proof
    from carbonlake.settings import load_settings

    source = tmp_path / "m.csv"
    source.write_text(
        "\n".join([HEADER, activity_row("a"), activity_row("u", activity="Unicorn Power")]) + "\n"
    )
    context = Context.open(load_settings(tmp_path / "ws", environ={}))
    failed = Pipeline(context).run_file(source)
    assert failed["records_failed"] == 1
    with pytest.raises(LineageError, match=r"no calculated record 'u'.*lineage trace u"):
        prove(context.database, context.storage, "u")
    factors = tmp_path / "unicorn.json"
    factors.write_text(
        json.dumps(
            {
                "format": "carbonlake-factors/1",
                "factors": [
                    {
                        "category": "mobile-combustion",
                        "activity": "Unicorn Power",
                        "unit": "gal (US)",
                        "co2": {"value": 2.5, "unit": "kg"},
                    }
                ],
            }
        )
    )
    imported, _ = import_factor_file(factors, context.database)
    context.close()
    overrides = {"calculate": {"factor_set": imported.label}}
    context = Context.open(load_settings(tmp_path / "ws", environ={}, overrides=overrides))
    try:
        assert Pipeline(context).redrive(failed["execution_id"])["status"] == "SUCCEEDED"
        root_hash = digest(context.database, context.storage).root_hash
        proof = prove(context.database, context.storage, "u")
        first = prove(context.database, context.storage, "a")
    finally:
        context.close()
    assert proof["file"]["storage_location"] != first["file"]["storage_location"]
    assert proof["file"]["parent_node_hash"] == first["file"]["parent_node_hash"]  # one batch
    co2 = proof["record"]["emissions_output"]["calculated_emissions"]["co2"]["amount"]
    assert Decimal(str(co2)) == pytest.approx(Decimal("10") * Decimal("2.5") / 1000)
    assert verify_proof(json.loads(json.dumps(proof)), root_hash)["ok"] is True
    assert independently_valid(proof, root_hash)

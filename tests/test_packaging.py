"""carbonlake as a user gets it from a wheel: build it, install it with pip into a fresh
virtual environment (no source tree on its path), run ``carbonlake demo`` from there."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _uv() -> str:
    uv = Path(sysconfig.get_path("scripts")) / "uv"
    if not uv.exists():
        pytest.skip("uv is not installed in this environment (make test installs it)")
    return str(uv)


def test_wheel_installs_with_pip_and_runs_the_demo(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [_uv(), "build", "--wheel", "--out-dir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("carbonlake-*.whl")
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
    )
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLAKE_")}
    clean_env.pop("PYTHONPATH", None)
    workspace = tmp_path / "ws"
    done = subprocess.run(
        [str(env_dir / "bin" / "carbonlake"), "demo", "--json", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    # The shipped sample: 8,000 records, every one calculated.
    assert summary["records_in"] == 8000
    assert summary["records_calculated"] == 8000
    # The installed package, not this source tree, did the work.
    where = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "import carbonlake; print(carbonlake.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=clean_env,
    ).stdout
    assert str(env_dir) in where


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


@pytest.mark.parametrize(
    ("lock", "groups"),
    [("runtime.txt", ["runtime"]), ("dev.txt", ["runtime", "extras", "dev"])],
)
def test_lock_files_pin_every_declared_dependency(lock: str, groups: list[str]) -> None:
    """A dependency added to pyproject.toml without `make lock` fails here, naming it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared: list[str] = []
    if "runtime" in groups:
        declared += project["project"]["dependencies"]
    if "extras" in groups:
        for extra in project["project"]["optional-dependencies"].values():
            declared += [r for r in extra if not r.startswith("carbonlake")]
    if "dev" in groups:
        declared += project["dependency-groups"]["dev"]
    pins = _pins(ROOT / "requirements" / lock)
    problems = []
    for text in declared:
        requirement = Requirement(text)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name not in pins:
            problems.append(f"{text}: not pinned")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{text}: pinned {pins[name]}")
    assert not problems, f"requirements/{lock} is stale, run `make lock`: {problems}"

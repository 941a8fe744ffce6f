"""Settings precedence: defaults < carbonlake.toml < environment < flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from carbonlake import ConfigurationError, load_settings


def test_precedence(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    assert load_settings(ws, environ={}).pipeline.batch_size == 1000
    assert load_settings(ws, environ={}).pipeline.max_concurrency == (os.cpu_count() or 1)
    (ws / "carbonlake.toml").write_text(
        '[pipeline]\nbatch_size = 500\n[notify]\nemail_to = "a@example.org"\n'
    )
    assert load_settings(ws, environ={}).pipeline.batch_size == 500
    env = {"CARBONLAKE_PIPELINE__BATCH_SIZE": "250", "CARBONLAKE_NOTIFY__SMTP_PORT": "2525"}
    from_env = load_settings(ws, environ=env)
    assert from_env.pipeline.batch_size == 250
    assert from_env.notify.smtp_port == 2525
    assert from_env.notify.email_to == "a@example.org"
    flags = load_settings(ws, environ=env, overrides={"pipeline": {"batch_size": 10}})
    assert flags.pipeline.batch_size == 10


def test_workspace_from_environment_and_default(tmp_path: Path) -> None:
    env = {"CARBONLAKE_WORKSPACE": str(tmp_path / "from-env")}
    assert load_settings(environ=env).workspace == (tmp_path / "from-env").resolve()
    assert load_settings(tmp_path / "flag", environ=env).workspace == (tmp_path / "flag")
    assert load_settings(environ={}).workspace.name == "carbonlake-data"


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("[pipeline]\nbatch_size = 0\n", {}, "batch_size must be at least 1"),
        ("[pipeline]\nbatch_sise = 5\n", {}, "unknown setting [pipeline] batch_sise"),
        ("[pipelines]\n", {}, "unknown section [pipelines]"),
        ("[pipeline\n", {}, "not valid TOML"),
        ("", {"CARBONLAKE_PIPELINE__BATCH_SIZE": "many"}, "CARBONLAKE_PIPELINE__BATCH_SIZE"),
        ("", {"CARBONLAKE_NOPE__X": "1"}, "unknown section 'nope'"),
    ],
)
def test_bad_settings_name_the_setting(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "carbonlake.toml").write_text(toml)
    with pytest.raises(ConfigurationError) as info:
        load_settings(ws, environ=env)
    assert message in str(info.value)


def test_a_ruleset_named_in_the_workspace_file_is_relative_to_the_workspace(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "carbonlake.toml").write_text('[quality]\nruleset = "rules/mine.json"\n')
    assert load_settings(ws, environ={}).quality.ruleset == str(ws.resolve() / "rules/mine.json")
    flag = load_settings(ws, environ={}, overrides={"quality": {"ruleset": "/abs/other.json"}})
    assert flag.quality.ruleset == "/abs/other.json"

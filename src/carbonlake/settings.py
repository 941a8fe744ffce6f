"""Settings: defaults < ``carbonlake.toml`` in the workspace < environment < flags.

Environment variables are ``CARBONLAKE_<SECTION>__<KEY>`` (for example
``CARBONLAKE_NOTIFY__EMAIL_TO``), case-insensitive after the prefix; the workspace itself
comes from ``--workspace`` or ``CARBONLAKE_WORKSPACE`` and defaults to ``./carbonlake-data``.
Settings are resolved when :func:`load_settings` is called, never at import time.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._exceptions import ConfigurationError

CONFIG_FILE_NAME = "carbonlake.toml"
DEFAULT_WORKSPACE = "carbonlake-data"
ENV_PREFIX = "CARBONLAKE_"

BUCKETS = (
    "landing",
    "raw",
    "error",
    "transformed",
    "enriched",
    "dq-results",
    "lineage-archive",
    "lake",
)
"""The buckets of the pipeline; on the embedded default, one folder each."""


@dataclass
class StorageSettings:
    """Where the buckets live."""

    root: str = ""
    """URL under which each bucket is a folder or prefix (``s3://acme-carbon``); empty means
    the workspace folder."""

    landing: str = ""
    """URL of the landing bucket (``s3://acme-landing``); empty means ``root``/landing."""

    raw: str = ""
    """URL of the raw bucket; empty means ``root``/raw."""

    error: str = ""
    """URL of the error bucket; empty means ``root``/error."""

    transformed: str = ""
    """URL of the transformed bucket; empty means ``root``/transformed."""

    enriched: str = ""
    """URL of the enriched bucket; empty means ``root``/enriched."""

    dq_results: str = ""
    """URL of the dq-results bucket; empty means ``root``/dq-results."""

    lineage_archive: str = ""
    """URL of the lineage-archive bucket; empty means ``root``/lineage-archive."""

    lake: str = ""
    """URL of the lake bucket (the Apache Iceberg warehouse of the results table, see
    docs/lake.md); empty means ``root``/lake."""

    landing_bucket_name: str = ""
    """The bucket name in S3 and EventBridge events that means this workspace's landing
    bucket (``cdlpipelinestack-cdllandingbucket-1x2y3z``), besides the landing bucket's own
    name; empty means the last segment of the landing URL."""

    endpoint_url: str = ""
    """Endpoint of an S3-compatible server (``http://127.0.0.1:8333``); empty means AWS.
    Credentials come from the usual AWS chain (environment, profile)."""

    region: str = ""
    """S3 region name, where the server needs one."""

    def bucket_urls(self) -> dict[str, str]:
        """The per-bucket URLs that are set, by bucket name."""
        return {
            bucket: url for bucket in BUCKETS if (url := getattr(self, bucket.replace("-", "_")))
        }


@dataclass
class DatabaseSettings:
    """The database holding the ledger, executions and emissions."""

    url: str = ""
    """``sqlite:///path``; empty means ``carbonlake.db`` inside the workspace."""

    busy_timeout_ms: int = 30_000
    """How long a writer waits for another writer's lock before failing."""


@dataclass
class PipelineSettings:
    """How files are split and batches are run."""

    batch_size: int = 1000
    """Maximum records per transformed batch file."""

    max_concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    """How many batches are calculated at once (the spec's map state)."""

    tolerated_failure_percentage: float = 0.0
    """Share of batches (0-100) that may fail (after retries) without failing the execution;
    their records are reported as failed either way."""

    executor: str = "local"
    """Where the map over batches runs: ``local`` (threads of this process) or ``dask``."""

    dask_scheduler: str = ""
    """Address of the Dask scheduler (``tcp://host:8786``) when ``executor = "dask"``."""

    split_chunk_mb: float = 32.0
    """With ``executor = "dask"``, the raw file is split by byte ranges of about this size,
    one worker task each (small enough that two workers share a 150 MB file evenly)."""

    max_executions: int = 2
    """How many files `carbonlake watch` processes at once."""

    watch_interval_s: float = 1.0
    """How often `carbonlake watch` polls the landing bucket."""

    watch_settle_s: float = 5.0
    """How long a file in a local landing folder must keep its size and modification
    time before `carbonlake watch` takes it as complete (a writer may pause for less).
    Writing under a temporary name (``.part``, ``.tmp``) and renaming is safer still."""


@dataclass
class QualitySettings:
    """The data-quality gate."""

    ruleset: str = ""
    """Path of a DataBrew-format ruleset JSON file; empty means the shipped default."""

    max_columns: int = 1000
    """Files with more columns than this fail the gate at once, before being read."""


@dataclass
class CalculateSettings:
    """The emissions calculation."""

    factor_set: str = ""
    """Name or version of the emission-factor set; empty means the shipped default."""


@dataclass
class NotifySettings:
    """Where data-quality failures are announced (always logged and recorded too)."""

    email_to: str = ""
    """Recipient address; e-mail is sent only when this and ``smtp_host`` are set."""

    email_from: str = "carbonlake@localhost"
    """Sender address of notification e-mails."""

    smtp_host: str = ""
    """SMTP server host name."""

    smtp_port: int = 25
    """SMTP server port."""

    smtp_timeout_s: float = 10.0
    """Seconds to wait for the SMTP server on each attempt."""

    smtp_user: str = ""
    """User name to log in to the SMTP server with; empty means no login."""

    smtp_password: str = ""
    """Password for ``smtp_user`` (prefer the environment variable
    ``CARBONLAKE_NOTIFY__SMTP_PASSWORD`` to writing it in carbonlake.toml)."""

    smtp_starttls: bool = False
    """Upgrade the SMTP connection with STARTTLS (certificate checked against the
    system's trusted CAs, or ``SSL_CERT_FILE``) before logging in and sending."""

    webhook_url: str = ""
    """``http(s)://`` URL that receives each notification as a JSON POST; empty means none."""

    webhook_timeout_s: float = 10.0
    """Seconds to wait for the webhook on each attempt."""

    retry_attempts: int = 3
    """Attempts per channel before the notification is recorded as undelivered."""

    retry_backoff_s: float = 0.5
    """Seconds before the second attempt; each further wait doubles."""


@dataclass
class RetrySettings:
    """Retries of a state after a transient error (storage, database busy, I/O).

    Data errors (bad input, no factor, a rule that fails) are never retried.
    """

    max_attempts: int = 3
    """Attempts in all, the first included (1 = no retry)."""

    interval_s: float = 0.2
    """Wait before the first retry."""

    backoff_rate: float = 2.0
    """Each further wait is the previous one times this."""

    max_delay_s: float = 10.0
    """No wait is longer than this."""

    jitter: bool = True
    """Wait a random time between zero and the computed wait ("full jitter")."""


@dataclass
class ServerSettings:
    """`carbonlake serve`: the HTTP API and the web page (docs/service.md)."""

    api_keys: str = ""
    """Comma-separated API keys; a request gives one as ``X-API-Key`` or ``Authorization:
    Bearer``. Every write needs one. Empty: `serve` makes a key for the run and prints it
    (prefer ``CARBONLAKE_SERVER__API_KEYS`` to writing keys in carbonlake.toml)."""

    admin_keys: str = ""
    """Comma-separated admin keys, each ``NAME:KEY`` (NAME is recorded as who deleted) or a
    bare ``KEY`` (recorded as ``key-`` and the first 12 hex digits of its SHA-256). An admin
    key may do everything an API key may, and also delete records (``DELETE
    /emissions/records/{id}``). Empty: nobody may delete through the service (prefer
    ``CARBONLAKE_SERVER__ADMIN_KEYS`` to writing keys in carbonlake.toml)."""

    require_key_for_reads: bool = False
    """Also require an API key for reading (the page itself and the OpenAPI document stay
    public). Always on when ``host`` is not a loopback address."""

    allowed_hosts: str = ""
    """Comma-separated host names requests may give in their Host header (``*``: any).
    Empty: ``host`` and ``localhost`` (and 127.0.0.1 and ::1 on loopback). Set it to
    the names users reach the service by when it listens beyond loopback."""

    max_upload_mb: float = 100.0
    """Largest upload accepted, in MiB; a larger one is refused while it streams in."""

    host: str = "127.0.0.1"
    """Address to listen on; loopback unless told otherwise."""

    port: int = 8000
    """Port to listen on (0: any free port)."""


@dataclass
class Settings:
    """All settings of one workspace."""

    workspace: Path = field(default_factory=lambda: Path(DEFAULT_WORKSPACE).resolve())
    storage: StorageSettings = field(default_factory=StorageSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    calculate: CalculateSettings = field(default_factory=CalculateSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    server: ServerSettings = field(default_factory=ServerSettings)

    @property
    def storage_root_url(self) -> str:
        """URL under which every bucket is a folder."""
        if self.storage.root:
            return self.storage.root.rstrip("/")
        return self.workspace.resolve().as_uri()

    @property
    def database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the workspace."""
        return self.database.url or f"sqlite:///{self.workspace.resolve() / 'carbonlake.db'}"


_SECTIONS = (
    "storage",
    "database",
    "pipeline",
    "quality",
    "calculate",
    "notify",
    "retry",
    "server",
)


_KIND = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def _coerce(section: str, key: str, value: Any, target_type: type, origin: str) -> Any:
    """Convert a raw value from TOML, environment or flags to the field's type."""
    try:
        if target_type is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off", ""):
                return False
            raise ValueError("expected true or false")
        if target_type is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("not a whole number")
            return int(value)
        if target_type is float:
            return float(value)
        if target_type is str:
            if not isinstance(value, str | int | float):
                raise ValueError(f"expected text, got {type(value).__name__}")
            return str(value)
    except ValueError as exc:
        raise ConfigurationError(
            f"setting [{section}] {key} from {origin} is {value!r}: {exc}. "
            f"Give {_KIND[target_type]}."
        ) from exc
    return value


def _apply(settings: Settings, section: str, values: Mapping[str, Any], origin: str) -> None:
    """Set the fields of one section, refusing unknown keys with their origin."""
    target = getattr(settings, section)
    fields = {f.name: f for f in dataclasses.fields(target)}
    type_of = {"int": int, "float": float, "str": str, "bool": bool}
    for key, value in values.items():
        name = key.lower()
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigurationError(
                f"unknown setting [{section}] {key} in {origin}; known keys: {known}"
            )
        declared = fields[name].type
        field_type = type_of.get(declared if isinstance(declared, str) else declared.__name__, str)
        setattr(target, name, _coerce(section, name, value, field_type, origin))


def _environment(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """The ``CARBONLAKE_`` variables by their name in upper case after the prefix (names
    are case-insensitive there: ``CARBONLAKE_storage__landing_bucket_name`` is
    ``CARBONLAKE_STORAGE__LANDING_BUCKET_NAME``), each as ``(name as set, value)``; two
    spellings of one name with different values are refused."""
    found: dict[str, tuple[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        canonical = ENV_PREFIX + name[len(ENV_PREFIX) :].upper()
        if canonical in found and found[canonical][1] != value:
            raise ConfigurationError(
                f"environment variables {found[canonical][0]} and {name} name the same "
                "setting with different values; unset one of them"
            )
        found[canonical] = (name, value)
    return found


def load_settings(
    workspace: str | Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve the settings of a workspace.

    ``workspace`` (a ``--workspace`` flag) wins over ``CARBONLAKE_WORKSPACE``;
    ``overrides`` maps section to key to value, as command-line flags would.
    """
    env = _environment(os.environ if environ is None else environ)
    ws = workspace or env.get(f"{ENV_PREFIX}WORKSPACE", ("", ""))[1] or DEFAULT_WORKSPACE
    settings = Settings(workspace=Path(ws).expanduser().resolve())

    config_path = settings.workspace / CONFIG_FILE_NAME
    if config_path.is_file():
        try:
            document = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{config_path} is not valid TOML: {exc}") from exc
        for section, values in document.items():
            if section not in _SECTIONS or not isinstance(values, dict):
                raise ConfigurationError(
                    f"unknown section [{section}] in {config_path}; "
                    f"known sections: {', '.join(_SECTIONS)}"
                )
            _apply(settings, section, values, str(config_path))
        # A ruleset named in the workspace's own file is relative to the workspace.
        ruleset = settings.quality.ruleset
        if ruleset and not Path(ruleset).expanduser().is_absolute():
            settings.quality.ruleset = str(settings.workspace / ruleset)

    for canonical, (name, value) in env.items():
        if "__" not in canonical:
            continue
        section, _, key = canonical[len(ENV_PREFIX) :].partition("__")
        section = section.lower()
        if section not in _SECTIONS:
            raise ConfigurationError(
                f"environment variable {name} names unknown section {section!r}; "
                f"known sections: {', '.join(_SECTIONS)}"
            )
        _apply(settings, section, {key: value}, f"environment variable {name}")

    for section, values in (overrides or {}).items():
        _apply(settings, section, values, "command-line flags")

    if settings.pipeline.batch_size < 1:
        raise ConfigurationError(
            f"[pipeline] batch_size must be at least 1, got {settings.pipeline.batch_size}"
        )
    if settings.pipeline.max_concurrency < 1:
        raise ConfigurationError(
            f"[pipeline] max_concurrency must be at least 1, "
            f"got {settings.pipeline.max_concurrency}"
        )
    checks = [
        (settings.pipeline.max_executions >= 1, "[pipeline] max_executions must be at least 1"),
        (
            settings.pipeline.executor in ("local", "dask"),
            f"[pipeline] executor must be local or dask, not {settings.pipeline.executor!r}",
        ),
        (
            settings.pipeline.executor != "dask" or bool(settings.pipeline.dask_scheduler),
            '[pipeline] executor = "dask" needs [pipeline] dask_scheduler = "tcp://host:8786"',
        ),
        (
            0 <= settings.pipeline.tolerated_failure_percentage <= 100,
            "[pipeline] tolerated_failure_percentage must be between 0 and 100",
        ),
        (settings.pipeline.watch_interval_s > 0, "[pipeline] watch_interval_s must be positive"),
        (settings.pipeline.watch_settle_s >= 0, "[pipeline] watch_settle_s must not be negative"),
        (settings.pipeline.split_chunk_mb > 0, "[pipeline] split_chunk_mb must be positive"),
        (settings.retry.max_attempts >= 1, "[retry] max_attempts must be at least 1"),
        (settings.retry.interval_s >= 0, "[retry] interval_s must not be negative"),
        (settings.retry.backoff_rate >= 1, "[retry] backoff_rate must be at least 1"),
        (settings.retry.max_delay_s >= 0, "[retry] max_delay_s must not be negative"),
        (settings.server.max_upload_mb > 0, "[server] max_upload_mb must be positive"),
        (
            not any(c in settings.storage.landing_bucket_name for c in "/ \t\r\n"),
            f"[storage] landing_bucket_name must be a bare bucket name (no '/' or spaces), "
            f"got {settings.storage.landing_bucket_name!r}",
        ),
        (0 <= settings.server.port <= 65535, "[server] port must be between 0 and 65535"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigurationError(message)
    _check_notify(settings.notify)
    return settings


def _check_notify(notify: NotifySettings) -> None:
    """Refuse notification settings that could never deliver, naming the setting."""
    if notify.retry_attempts < 1:
        raise ConfigurationError(
            f"[notify] retry_attempts must be at least 1, got {notify.retry_attempts}"
        )
    if notify.retry_backoff_s < 0:
        raise ConfigurationError(
            f"[notify] retry_backoff_s must not be negative, got {notify.retry_backoff_s}"
        )
    if notify.webhook_url and not notify.webhook_url.lower().startswith(("http://", "https://")):
        raise ConfigurationError(
            f"[notify] webhook_url must start with http:// or https://, got "
            f"{notify.webhook_url.split('?')[0]!r}"
        )
    for key in ("email_to", "email_from", "smtp_host", "smtp_user"):
        if any(c in getattr(notify, key) for c in "\r\n"):
            raise ConfigurationError(f"[notify] {key} must be one line; it holds a line break")
    if notify.smtp_password and not notify.smtp_user:
        raise ConfigurationError("[notify] smtp_password is set but smtp_user is not; set both")

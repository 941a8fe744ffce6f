"""API keys: ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``; allowed host names.

Two roles. Every write needs a key of ``[server] api_keys`` or ``admin_keys``; reads
need one when ``[server] require_key_for_reads`` is set or the service listens beyond
loopback. Deleting a record needs an
admin key (``[server] admin_keys``, ``NAME:KEY`` or ``KEY``), and the admin's name is
recorded as who deleted it. Keys are compared in constant time. The page and the
OpenAPI document are public: they hold no data.

Every request's ``Host`` must be one of ``[server] allowed_hosts`` (default: the
address it listens on and ``localhost``), so a page of another site that a DNS
rebinding points at this address cannot read it through the user's browser.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .._exceptions import ConfigurationError
from ._problems import ProblemError

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="One of the `[server] api_keys`."
)
bearer = HTTPBearer(auto_error=False, description="One of the `[server] api_keys`, as a token.")


def parse_keys(text: str) -> list[str]:
    """The keys of a comma-separated ``api_keys`` setting."""
    return [key.strip() for key in text.split(",") if key.strip()]


@dataclass(frozen=True)
class AdminKey:
    """One of ``[server] admin_keys``."""

    name: str
    """Who, as deletions record it."""
    key: str


def fingerprint(key: str) -> str:
    """How a bare admin key is named in the ledger: ``key-`` and 12 hex digits of its
    SHA-256 (``printf %s KEY | sha256sum | cut -c1-12``), never the key itself."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def parse_admin_keys(text: str) -> list[AdminKey]:
    """The admin keys of an ``admin_keys`` setting: ``NAME:KEY`` or a bare ``KEY`` each."""
    found = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        name, sep, key = (part.strip() for part in entry.partition(":"))
        if sep and not (name and key):
            raise ConfigurationError(
                "[server] admin_keys: an entry with ':' is NAME:KEY with both given; "
                f"one has {'no name' if not name else 'no key'}"
            )
        found.append(AdminKey(name, key) if sep else AdminKey(fingerprint(entry), entry))
    return found


def _given_key(
    header_key: str | None, token: HTTPAuthorizationCredentials | None, what: str
) -> bytes:
    given = header_key or (token.credentials if token else None)
    if not given:
        raise ProblemError(
            401,
            f"this request needs {what}: send it as 'X-API-Key: KEY' or "
            "'Authorization: Bearer KEY'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return given.encode()


def admin_name(
    request: Request,
    header_key: Annotated[str | None, Security(api_key_header)],
    token: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> str:
    """A dependency that refuses requests without an admin key; gives the admin's name."""
    admins: Sequence[AdminKey] = request.app.state.service.admin_keys
    candidate = _given_key(header_key, token, "an admin key ([server] admin_keys)")
    matched = None
    for admin in admins:  # every one, so the time taken does not tell which nearly matched
        if secrets.compare_digest(candidate, admin.key.encode()):
            matched = admin
    if matched is None:
        if not admins:
            raise ProblemError(
                403, "this needs an admin key and the server has none: set [server] admin_keys"
            )
        raise ProblemError(
            403, "this needs an admin key; the key is not one of [server] admin_keys"
        )
    return matched.name


def new_key() -> str:
    """A random key for a server run that was given none."""
    return secrets.token_urlsafe(24)


def key_checker(keys: Sequence[str]) -> Callable[..., None]:
    """A dependency that refuses requests without one of ``keys``."""
    accepted = [key.encode() for key in keys]

    def check(
        header_key: Annotated[str | None, Security(api_key_header)],
        token: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> None:
        candidate = _given_key(header_key, token, "an API key ([server] api_keys)")
        # Compare against every key so the time taken does not tell which one nearly matched.
        matched = False
        for key in accepted:
            matched |= secrets.compare_digest(candidate, key)
        if not matched:
            raise ProblemError(403, "the API key is not one of [server] api_keys (or admin_keys)")

    return check


def open_access() -> None:
    """Reads when no key is required for them."""


def dependencies(keys: Sequence[str], reads_need_key: bool) -> tuple[object, object]:
    """The ``(read, write)`` dependencies of the routes."""
    write = Depends(key_checker(keys))
    read = write if reads_need_key else Depends(open_access)
    return read, write


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(setting: str, bound_host: str) -> set[str]:
    """Host names a request may give: ``[server] allowed_hosts`` (comma-separated; ``*``
    allows any), else the bound address and the loopback names."""
    names = {name.strip().lower().strip("[]") for name in setting.split(",") if name.strip()}
    if names:
        return names
    names = {bound_host.lower().strip("[]"), "localhost"}
    if is_loopback(bound_host):
        names |= {"127.0.0.1", "::1"}
    return names


def reads_need_key(require_key_for_reads: bool, bound_host: str) -> bool:
    """Reads need a key when asked to, and always when listening beyond loopback."""
    return require_key_for_reads or not is_loopback(bound_host)

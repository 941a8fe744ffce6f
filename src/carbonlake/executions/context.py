"""Who owns an execution; the Context stages need (opened once from the settings) is
:mod:`carbonlake.context`'s."""

from __future__ import annotations

import os
import socket

from ..context import Context

__all__ = ["Context", "owner_alive", "this_process"]


def this_process() -> str:
    """The owner id of executions run by this process: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process that owns an execution still runs (on this host)."""
    if not owner:
        return False
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine's: cannot tell; treat as gone
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

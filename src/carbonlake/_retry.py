"""The one retry policy: call again what failed with a :class:`Transient` error.

Whether an error is worth another attempt is decided once, where a dependency's
error is mapped to carbonlake's (storage, database, notification channels), by
marking its class :class:`~carbonlake._exceptions.Transient`. Callers give the
waits before each retry (an execution's ``[retry]`` settings through
:func:`backoff`, a notification channel's ``[notify]`` ones) and a callback that
records each retry; nothing below a caller retries again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ._exceptions import is_transient

T = TypeVar("T")


def backoff(
    attempts: int,
    interval_s: float,
    rate: float = 2.0,
    max_delay_s: float | None = None,
    jitter: bool = False,
    rng: random.Random | None = None,
) -> list[float]:
    """The waits before each retry of ``attempts`` attempts (``attempts - 1`` of them):
    ``interval_s`` growing by ``rate``, capped at ``max_delay_s``, full jitter if asked."""
    rng = rng or random.Random()
    delays = []
    delay = interval_s
    for _ in range(max(attempts, 1) - 1):
        capped = delay if max_delay_s is None else min(delay, max_delay_s)
        delays.append(rng.uniform(0, capped) if jitter else capped)
        delay *= rate
    return delays


@dataclass
class Attempts:
    """Runs a call under the policy and remembers how many attempts it took."""

    delays: Sequence[float]
    """Waits before the 2nd, 3rd, ... attempt; their count + 1 is the most attempts."""
    on_retry: Callable[[int, float, BaseException], None] = field(
        default=lambda attempt, delay, exc: None
    )
    """Called as ``(attempt that failed, delay before the next, error)`` before a wait."""
    sleep: Callable[[float], None] = time.sleep
    number: int = 0
    """The attempt running now, or the last one made (1 for the first)."""
    retries: Callable[[BaseException], bool] = is_transient
    """Which errors are tried again: the transient ones, or a narrower kind where a layer
    below retries the rest itself (the lake retries its commit conflicts only)."""

    def run(self, work: Callable[[], T]) -> T:
        """``work()``, again after each error :attr:`retries` accepts (the transient ones)
        while attempts are left; the last error (or the first other one) propagates."""
        self.number = 0
        while True:
            self.number += 1
            try:
                return work()
            except Exception as exc:
                if not self.retries(exc) or self.number > len(self.delays):
                    raise
                delay = self.delays[self.number - 1]
                self.on_retry(self.number, delay, exc)
                self.sleep(delay)

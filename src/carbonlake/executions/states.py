"""The state machine as data: the spec's states in order and what their checkpoints
are called.

Every state but the map checkpoints under its own name (``TRANSFORM``). The map
checkpoints once per batch, ``MAP:<batch node_id>``, and once more per redrive of a
batch, ``MAP:<batch node_id>:redrive-<n>``: :class:`MapState` builds and parses
those names, here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


class State(StrEnum):
    """The spec's states, in the order an execution runs them."""

    RAW_DATA_INPUT = "RAW_DATA_INPUT"
    DQ_SETUP = "DQ_SETUP"
    DQ_PROFILE = "DQ_PROFILE"
    DQ_CLEANUP = "DQ_CLEANUP"
    PROFILE_COMPLETE = "PROFILE_COMPLETE"
    DQ_CHECK_RESULTS = "DQ_CHECK_RESULTS"
    DQ_CHECK_FAIL = "DQ_CHECK_FAIL"
    DQ_ERROR_NOTIFICATION = "DQ_ERROR_NOTIFICATION"
    DQ_CHECK_PASS = "DQ_CHECK_PASS"
    TRANSFORM = "TRANSFORM"
    BATCH_SPLIT = "BATCH_SPLIT"
    MAP = "MAP"
    """The map over batches: its checkpoints are :class:`MapState` names."""
    COMMIT_RESULTS = "COMMIT_RESULTS"
    """The results table's commit after the map (a step of its own, no checkpoint)."""


STATES: tuple[State, ...] = tuple(State)
"""The states in order (the failure branch, DQ_CHECK_FAIL and DQ_ERROR_NOTIFICATION,
before the passing one)."""

DQ_FAILED_STATES = (State.DQ_CHECK_FAIL, State.DQ_ERROR_NOTIFICATION)
"""Checkpoints that mean the file failed data quality (nothing to redrive)."""


@dataclass(frozen=True, order=True)
class MapState:
    """The checkpoint of one batch in the map: its first run, or its ``redrive``-th redrive."""

    node_id: str
    redrive: int | None = None

    PREFIX: ClassVar[str] = f"{State.MAP}:"
    _REDRIVE: ClassVar[str] = ":redrive-"

    @property
    def name(self) -> str:
        """The checkpoint's name: ``MAP:<node_id>`` or ``MAP:<node_id>:redrive-<n>``."""
        if self.redrive is None:
            return f"{self.PREFIX}{self.node_id}"
        return f"{self.PREFIX}{self.node_id}{self._REDRIVE}{self.redrive}"

    def __str__(self) -> str:
        return self.name

    @property
    def batch(self) -> MapState:
        """The batch's own (first run's) checkpoint."""
        return MapState(self.node_id)

    @classmethod
    def is_map(cls, name: str) -> bool:
        """Whether a state name is one of the map's (a batch's or its redrive's)."""
        return name.startswith(cls.PREFIX)

    @classmethod
    def parse(cls, name: str) -> MapState | None:
        """The map state a name stands for, ``None`` for a name that is not the map's."""
        if not cls.is_map(name):
            return None
        rest = name[len(cls.PREFIX) :]
        node_id, marker, number = rest.rpartition(cls._REDRIVE)
        if marker and number.isdigit():
            return cls(node_id, int(number))
        return cls(rest)


def base_state(name: str) -> str:
    """The state a checkpoint belongs to: ``MAP`` for every map checkpoint, else itself."""
    return State.MAP.value if MapState.is_map(name) else name


def redrives_by_batch(names: Iterable[str]) -> dict[str, list[tuple[int, str]]]:
    """Redrive checkpoints by their batch's checkpoint name ``MAP:<node>``, as
    ``(n, name)``: one pass over the checkpoints, so that looking a batch's up is not a
    scan of them all (quadratic in the batches of a big file)."""
    found: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        state = MapState.parse(name)
        if state is not None and state.redrive is not None:
            found.setdefault(state.batch.name, []).append((state.redrive, name))
    return found

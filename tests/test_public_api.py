"""The public surface: __all__ is honest and the spec's task names exist."""

from __future__ import annotations

import inspect

import carbonlake
from carbonlake import tasks

SPEC_TASKS = [
    "kickoff",
    "data_lineage",
    "dq_setup",
    "dq_profile",
    "dq_cleanup",
    "dq_check_results",
    "dq_error_notification",
    "transform",
    "enumerate_batches",
    "calculate_co2e",
]


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in dir(carbonlake) if not name.startswith("_")}
    modules = {name for name in public if inspect.ismodule(getattr(carbonlake, name))}
    assert set(carbonlake.__all__) - {"__version__"} == public - modules
    for name in carbonlake.__all__:
        assert getattr(carbonlake, name) is not None


def test_every_spec_task_is_a_documented_callable() -> None:
    assert sorted(tasks.__all__) == sorted(SPEC_TASKS)
    for name in SPEC_TASKS:
        task = getattr(tasks, name)
        assert callable(task) and task.__doc__
        assert "settings" in inspect.signature(task).parameters


def test_exceptions_form_one_tree() -> None:
    for name in carbonlake.__all__:
        obj = getattr(carbonlake, name)
        if inspect.isclass(obj) and issubclass(obj, Exception):
            assert issubclass(obj, carbonlake.CarbonlakeError)

"""Result codes and the raising policy."""

from __future__ import annotations

import pytest

from dynamics import Result
from dynamics._result import raise_for
from dynamics.errors import (
    ConvergenceError,
    NonFiniteError,
    ReconstructionError,
    SingularEquilibriumError,
    UnknownOptionError,
    WellPosednessError,
    reject_unknown,
)


@pytest.mark.parametrize(
    "result, exc",
    [
        (Result.max_steps_reached, ConvergenceError),
        (Result.diverged, ConvergenceError),
        (Result.nonfinite, NonFiniteError),
        (Result.guard_violated, WellPosednessError),
        (Result.singular, SingularEquilibriumError),
        (Result.reconstruction_error_exceeded, ReconstructionError),
    ],
)
def test_every_failure_code_raises_its_named_error(result, exc):
    with pytest.raises(exc, match=result.value):
        raise_for(result, "context")


def test_success_does_not_raise():
    raise_for(Result.successful, "fine")
    assert Result.successful.ok and not Result.nonfinite.ok


def test_unknown_option_message_lists_choices():
    err = reject_unknown("solver", "brodyen", ["broyden", "anderson"])
    assert isinstance(err, UnknownOptionError) and isinstance(err, TypeError)
    assert "'brodyen'" in str(err) and "anderson, broyden" in str(err)

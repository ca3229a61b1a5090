"""Result codes carried by every iterative computation, and the raising policy."""

from __future__ import annotations

import dataclasses
import enum

from .errors import (
    ConvergenceError,
    DEQError,
    NonFiniteError,
    ReconstructionError,
    SingularEquilibriumError,
    WellPosednessError,
)


class Result(enum.Enum):
    """Outcome of a solve, an integration or a training run.

    Inner loops return one of these; nothing is raised there. ``raise_for`` turns a
    non-successful code into the matching named exception at the top level.
    """

    successful = "successful"
    fixed_steps_completed = "fixed_steps_completed"
    max_steps_reached = "max_steps_reached"
    diverged = "diverged"
    nonfinite = "nonfinite"
    guard_violated = "guard_violated"
    singular = "singular"
    reconstruction_error_exceeded = "reconstruction_error_exceeded"

    @property
    def ok(self) -> bool:
        """No failure: ``successful``, or ``fixed_steps_completed`` (a fixed number
        of steps was asked for and ran; nothing was claimed about convergence)."""
        return self is Result.successful or self is Result.fixed_steps_completed

    @property
    def converged(self) -> bool:
        """The stopping criterion held (only ``successful``)."""
        return self is Result.successful

    def __bool__(self) -> bool:
        raise TypeError(
            f"the truth value of Result.{self.name} is ambiguous (every member, "
            "failures included, would read as True): test result.ok (no failure), "
            "result.converged (the criterion held) or compare with Result.successful"
        )


_EXCEPTIONS: dict[Result, type[DEQError]] = {
    Result.max_steps_reached: ConvergenceError,
    Result.diverged: ConvergenceError,
    Result.nonfinite: NonFiniteError,
    Result.guard_violated: WellPosednessError,
    Result.singular: SingularEquilibriumError,
    Result.reconstruction_error_exceeded: ReconstructionError,
}


def raise_for(result: Result, message: str) -> None:
    """Raise the exception that belongs to ``result`` (no-op when successful)."""
    if result.ok:
        return
    raise _EXCEPTIONS[result](f"{result.value}: {message}")


@dataclasses.dataclass(frozen=True)
class Solution:
    """What a public solve returns.

    Attributes:
        value: the solution (for a DEQ, the equilibrium iterate, wired for autograd).
        result: the worst result code of the solve (and of its backward pass, once run:
            ``stats["result"]`` is updated then; this field is the forward's).
        stats: documented dictionary of counters and traces (see the entry point).
    """

    value: object
    result: Result
    stats: dict

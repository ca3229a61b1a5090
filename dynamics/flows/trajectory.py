"""The record shared by gradient descent and every gradient-flow integrator."""

from __future__ import annotations

import dataclasses

import numpy as np

from .._result import Result, raise_for
from ..errors import ConvergenceError, SingularEquilibriumError, WellPosednessError


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """A recorded run.

    Attributes:
        times: (K,) flow time of each record; for GD, ``k * eta``.
        steps: (K,) iteration index of each record (GD) or integrator step count.
        thetas: (K, P) parameters at each record.
        risks: (K,) risk at each record.
        grad_norms: (K,) Euclidean norm of the update direction at each record.
        result: why the run ended.
        message: a human-readable explanation when ``result`` is not successful.
        stats: extra counters (``nfev``, ``max_step_length``, ...).
    """

    times: np.ndarray
    steps: np.ndarray
    thetas: np.ndarray
    risks: np.ndarray
    grad_norms: np.ndarray
    result: Result = Result.successful
    message: str = ""
    stats: dict = dataclasses.field(default_factory=dict)

    @property
    def final(self) -> np.ndarray:
        return self.thetas[-1]

    def raise_on_failure(self) -> Trajectory:
        raise_for(self.result, self.message)
        return self


class Recorder:
    """Collects records every ``every`` iterations (and always the last one)."""

    def __init__(self, every: int = 1):
        self.every = every
        self.rows: list[tuple[float, int, np.ndarray, float, float]] = []

    def add(
        self,
        t: float,
        k: int,
        theta: np.ndarray,
        risk: float,
        gnorm: float,
        force: bool = False,
    ) -> None:
        if force or k % self.every == 0:
            if self.rows and self.rows[-1][1] == k:
                return
            self.rows.append((t, k, theta.copy(), risk, gnorm))

    def build(self, result: Result, message: str = "", **stats) -> Trajectory:
        t, k, th, r, g = zip(*self.rows, strict=True)
        return Trajectory(
            np.array(t),
            np.array(k),
            np.array(th),
            np.array(r),
            np.array(g),
            result,
            message,
            dict(stats),
        )


def failure_result(exc: Exception) -> Result:
    """The result code of an exception raised inside a step, for gradient descent
    and every gradient-flow integrator alike (one mapping)."""
    if isinstance(exc, SingularEquilibriumError):
        return Result.singular
    if isinstance(exc, WellPosednessError):
        return Result.guard_violated
    if isinstance(exc, ConvergenceError):
        # A stage solve (or an adaptive solver) that gave up: the iteration did not
        # converge, which ``raise_for`` turns back into ConvergenceError.
        return Result.diverged
    return Result.nonfinite


def progress_message(steps: int, stats: dict) -> str:
    """What a fixed-step run (GD, momentum, Adam) did, for ``Trajectory.message``:
    the step count and how far the risk and the gradient moved. Such a run ends in
    ``fixed_steps_completed``, never ``successful``: it has no stopping criterion."""
    r0, rf = stats.get("risk_initial", np.nan), stats.get("risk_final", np.nan)
    g = stats.get("grad_norm_final", np.nan)
    return (
        f"{steps} fixed steps ran (no stopping criterion): risk {r0:.4g} -> "
        f"{rf:.4g}, final gradient norm {g:.3g}"
    )

"""Contract of a gradient method: how gradients flow through a fixed-point solve.

What is solved (a fixed-point solver object) is kept separate from how gradients pass
through it (an object of this family, never a flag). A gradient method receives the
bound problem ``f(z, x)``, the solver and the stopping rule, runs the forward solve
itself (under ``no_grad`` or through autograd, as its method requires) and returns the
output tensor wired for autograd, plus the stats dictionary.

Subclass contract:

1. Implement ``solve(problem, solver, z0, *, tol, max_steps, throw) -> (z, stats)``.
   Start ``stats`` with :func:`forward_stats` and call :func:`finish_forward`, which
   raises on a failed forward solve when ``throw`` is true. The returned value must be
   the forward solver's iterate (never a silently different point).
2. Count backward work in ``stats["nfe_backward"]`` (VJPs or evaluations of ``f``)
   and report any backward solve in ``stats["backward_result"]`` and
   ``stats["backward_residual"]``; update ``stats["result"]`` to the worst of the two.
   A backward solve that does not converge raises when ``throw`` is true.
3. The closed forms used by the scalar theory (single-index and scalar linear DEQs,
   where J = d f / d z is a scalar per sample): ``inverse_factor(J)``, the method's
   replacement for (1 - J)^{-1}, and ``linear_factor(v)`` = c(v), the factor by
   which the method's gradient multiplies the exact IFT gradient for
   ``f(z) = v z + u x`` at the exact fixed point; written in closed form (finite at
   v = 1). Both use only +, -, * and ** with integer exponents, so that the same code
   accepts NumPy arrays, floats and SymPy expressions (the symbolic certificate and
   the numeric checks read one source). The defaults are the exact gradient's:
   (1 - J)^{-1} and c = 1; ``local_factor`` = c(0) is the scale of the approximate
   direction's Jacobian at theta* = (xi, 0) of the single-index DEQ (claim APX-LOCAL).
4. Set ``requires_reversible = True`` when the method only works with the reversible
   coupled iteration; :meth:`check_solver` then rejects every other solver.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import torch

from .._result import Result, raise_for
from .._validate import positive_int
from ..errors import InvalidInputError
from ..solvers.base import AbstractFixedPointSolver
from ..solvers.iterate import (
    FixedPointRun,
    describe_failure,
    forward_stats as forward_stats,
    iterate,
    should_raise,
    worst_result,
)


class AbstractGradient(abc.ABC):
    """How gradients flow through a fixed-point solve; see the module docstring."""

    requires_reversible: ClassVar[bool] = False

    @abc.abstractmethod
    def solve(
        self,
        problem,
        solver: AbstractFixedPointSolver,
        z0: torch.Tensor,
        *,
        tol: float,
        max_steps: int,
        throw: bool,
    ) -> tuple[torch.Tensor, dict]:
        """Forward solve from ``z0``; return the output wired for autograd and stats."""

    def inverse_factor(self, J):
        """Replacement for (1 - J)^{-1} (elementwise); exact methods: itself."""
        return 1 / (1 - J)

    def linear_factor(self, v):
        """c(v): this gradient = c(v) x the exact gradient on the scalar linear DEQ."""
        return 1 + 0 * v

    @property
    def local_factor(self):
        """c_0 = c(0): the Jacobian of the direction at theta* is c_0 H* (APX-LOCAL)."""
        return self.linear_factor(0)

    @property
    def exact(self) -> bool:
        """True when c(v) = 1 (the method's gradient is the exact IFT gradient)."""
        return True

    @property
    def label(self) -> str:
        """Short name for tables and legends, e.g. ``neumann-2``."""
        return type(self).__name__.lower()

    def check_solver(self, solver) -> None:
        """Reject solvers this method cannot work with (a clear error, at set-up)."""
        if not isinstance(solver, AbstractFixedPointSolver):
            raise InvalidInputError(
                f"solver must be a fixed-point solver object such as Picard(), "
                f"Relaxed(0.8), Anderson(), Broyden() or Reversible(0.8); got "
                f"{solver!r}"
            )
        if self.requires_reversible and not solver.reversible:
            raise InvalidInputError(
                f"{type(self).__name__} is only valid with the Reversible solver (it "
                f"backpropagates by inverting the coupled reversible iteration); got "
                f"{type(solver).__name__}. Use solver=Reversible(beta=0.8), or pick a "
                f"gradient that works with any solver: Unrolled(), ImplicitIFT(), "
                f"DenseIFT(), Phantom() or JFB()."
            )


def finish_forward(
    run: FixedPointRun, stats: dict, tol: float, max_steps: int, throw: bool
) -> None:
    """Raise the named error of a failed forward solve when ``throw``."""
    del stats
    if throw and should_raise(run.result, tol):
        raise_for(run.result, describe_failure(run, tol, max_steps))


def solve_detached(problem, solver, z0, *, tol, max_steps, throw):
    """Run the forward solve without a graph; return (bound f, detached z*, stats).

    Every method that takes its gradient at the solver's iterate (IFT, dense IFT,
    JFB, phantom) starts from this.
    """
    f = problem.bind()
    with torch.no_grad():
        run = iterate(solver, f, z0, tol=tol, max_steps=max_steps)
    stats = forward_stats(run)
    finish_forward(run, stats, tol, max_steps, throw)
    return f, run.z.detach(), stats


def record_backward(stats: dict, result: Result) -> None:
    """Store a backward result and fold it into ``stats["result"]``."""
    stats["backward_result"] = result
    stats["result"] = worst_result(stats["forward_result"], result)


def check_terms(name: str, m) -> int:
    """A number of series terms or unrolled steps: an integer >= 1."""
    return positive_int(name, m, error=InvalidInputError, exact_type=True)


def check_damping(lam) -> None:
    """0 < lambda <= 1 (floats, or exact SymPy rationals for the certificate)."""
    try:
        ok = bool(0 < lam <= 1)
    except TypeError as exc:
        raise InvalidInputError(f"damping must be a real number; got {lam!r}") from exc
    if not ok:
        raise InvalidInputError(
            f"damping lambda must satisfy 0 < lambda <= 1; got {lam!r}"
        )

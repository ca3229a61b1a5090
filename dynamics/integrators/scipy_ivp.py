"""SciPy's adaptive integrators (``solve_ivp`` methods) at tight tolerances.

``ScipyIVP`` is an :class:`AbstractIntegrator`: ``step(field, t, y, h)`` integrates
adaptively over [t, t + h], so the fixed-grid driver can use it. Its ``solve`` method
integrates a whole horizon once and keeps SciPy's dense output; that is what
:func:`dynamics.flows.gradient_flow.flow_ivp` uses for reference trajectories.

Failures are labelled, never hidden: a solver that gives up (step size underflow,
Newton failure in Radau/BDF) makes ``solve`` return ``ok=False`` with SciPy's message,
and ``step`` raise :class:`ConvergenceError`. An exception raised by the field itself
(a singular equilibrium, say) stops ``solve`` and is kept in ``IVPSolution.error``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import final

import numpy as np
import scipy.integrate

from ..errors import ConvergenceError, DEQError, InvalidInputError, reject_unknown
from ._implicit_rk import Jacobian
from .base import AbstractIntegrator, Field

#: solve_ivp methods by name (the ``method`` option).
METHODS: dict[str, type[scipy.integrate.OdeSolver]] = {
    "DOP853": scipy.integrate.DOP853,
    "RK45": scipy.integrate.RK45,
    "RK23": scipy.integrate.RK23,
    "Radau": scipy.integrate.Radau,
    "BDF": scipy.integrate.BDF,
    "LSODA": scipy.integrate.LSODA,
}
#: Methods that use a Jacobian (exact when supplied, finite differences otherwise).
IMPLICIT_METHODS = ("Radau", "BDF", "LSODA")

#: SciPy raises rtol below 100 eps to that value with a warning; reject it instead so
#: that the tolerance a check reports is the one actually used.
_MIN_RTOL = 100.0 * np.finfo(np.float64).eps


@final
@dataclasses.dataclass(frozen=True)
class IVPSolution:
    """A whole-horizon solve.

    Attributes:
        t: (N,) accepted step times, starting at t0.
        y: (N, n) states at those times.
        dense: SciPy ``OdeSolution`` over [t0, t[-1]] (callable on times); None when
            no step was accepted.
        ok: whether the horizon was reached.
        message: the solver's message, or the field's error.
        error: the exception the field raised, if any.
        nfev, njev, nlu: SciPy's counters.
        stopped: whether ``terminate`` ended the solve before ``t1``.
    """

    t: np.ndarray
    y: np.ndarray
    dense: scipy.integrate.OdeSolution | None
    ok: bool
    message: str
    error: Exception | None
    nfev: int
    njev: int
    nlu: int
    stopped: bool = False


@final
@dataclasses.dataclass(frozen=True)
class ScipyIVP(AbstractIntegrator):
    """A ``solve_ivp`` method at tight tolerances; DOP853 (order 8) by default.

    Not structure-preserving: its drift of Q, C, C' scales with ``rtol`` and must fall
    when the tolerance is tightened (claim LIN-GF-CONS). Near the singular point of a
    linear DEQ the gradient-flow field is stiff (pitfall P8); use ``Radau`` or ``BDF``
    there with the exact Jacobian (for a gradient flow,
    ``jacobian=lambda t, th: -model.hessian(th)``).

    Args:
        method: one of ``METHODS``.
        rtol, atol: SciPy's tolerances (defaults 1e-12 and 1e-14; SciPy's own default
            rtol = 1e-3 is far too loose for invariant checks). ``rtol >= 100 eps``.
        jacobian: ``(t, y) -> d field / d y``; only for Radau, BDF and LSODA (finite
            differences when None).
        max_step: largest step SciPy may take.
    """

    method: str = "DOP853"
    rtol: float = 1e-12
    atol: float = 1e-14
    jacobian: Jacobian | None = None
    max_step: float = math.inf

    def __post_init__(self):
        if self.method not in METHODS:
            raise reject_unknown("solve_ivp method", self.method, METHODS)
        if not (math.isfinite(self.rtol) and self.rtol >= _MIN_RTOL):
            raise InvalidInputError(
                f"rtol must be >= 100 eps = {_MIN_RTOL:.2e}; got {self.rtol!r}"
            )
        if not (math.isfinite(self.atol) and self.atol > 0.0):
            raise InvalidInputError(
                f"atol must be positive and finite; got {self.atol!r}"
            )
        if not self.max_step > 0.0:
            raise InvalidInputError(f"max_step must be positive; got {self.max_step!r}")
        if self.jacobian is not None and self.method not in IMPLICIT_METHODS:
            raise InvalidInputError(
                f"method {self.method} does not use a Jacobian; pass jacobian only "
                "with "
                f"one of {', '.join(IMPLICIT_METHODS)}"
            )

    def _solver(self, field: Field, t0: float, y0: np.ndarray, t1: float):
        kw = {"rtol": self.rtol, "atol": self.atol, "max_step": self.max_step}
        if self.method in IMPLICIT_METHODS and self.jacobian is not None:
            kw["jac"] = self.jacobian
        return METHODS[self.method](field, t0, y0, t1, vectorized=False, **kw)

    def solve(
        self,
        field: Field,
        t0: float,
        y0,
        t1: float,
        *,
        terminate: Callable[[float, np.ndarray], bool] | None = None,
    ) -> IVPSolution:
        """Integrate from ``t0`` to ``t1`` (> t0), keeping the dense output.

        ``terminate(t, y)`` is called after every accepted step; when it returns True
        the solve ends there (successfully, with ``stopped=True``).
        """
        y0 = np.asarray(y0, dtype=np.float64)
        if not t1 > t0:
            raise InvalidInputError(f"need t1 > t0; got t0 = {t0!r}, t1 = {t1!r}")
        try:
            solver = self._solver(field, float(t0), y0, float(t1))
        except DEQError as exc:
            return IVPSolution(
                np.array([float(t0)]),
                y0[None, :].copy(),
                None,
                False,
                f"the field raised at t = {t0!r}: {exc}",
                exc,
                0,
                0,
                0,
                False,
            )
        ts, ys, interpolants = [solver.t], [solver.y.copy()], []
        ok, message, error, stopped = True, "the horizon was reached", None, False
        while solver.status == "running":
            try:
                msg = solver.step()
            except DEQError as exc:
                ok, error = False, exc
                message = f"the field raised at t = {solver.t!r}: {exc}"
                break
            if solver.status == "failed":
                ok, message = False, f"{self.method} failed at t = {solver.t!r}: {msg}"
                break
            if not np.all(np.isfinite(solver.y)):
                ok, message = False, f"non-finite state at t = {solver.t!r}"
                break
            interpolants.append(solver.dense_output())
            ts.append(solver.t)
            ys.append(solver.y.copy())
            if (
                terminate is not None
                and solver.status == "running"
                and terminate(solver.t, solver.y)
            ):
                stopped, message = True, f"terminate() was true at t = {solver.t!r}"
                break
        dense = scipy.integrate.OdeSolution(ts, interpolants) if interpolants else None
        return IVPSolution(
            np.array(ts),
            np.array(ys),
            dense,
            ok,
            message,
            error,
            int(solver.nfev),
            int(solver.njev),
            int(solver.nlu),
            stopped,
        )

    def step(
        self, field: Field, t: float, y: np.ndarray, h: float
    ) -> tuple[np.ndarray, int]:
        sol = self.solve(field, t, y, t + h)
        if sol.error is not None:
            raise sol.error
        if not sol.ok:
            raise ConvergenceError(sol.message)
        return sol.y[-1].copy(), sol.nfev

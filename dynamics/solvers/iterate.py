"""The single driver loop shared by every fixed-point solver.

Stopping rule (:mod:`dynamics.solvers.stopping`): after each step an example has
converged when ``||z - f(z)|| <= tol * (1 + scale_0)``, with ``scale_0`` fixed at the
start; at least one step is always taken. Batching is **per example with masking**:
an example stops as soon as its own criterion holds (or it diverges or goes
non-finite) and is frozen from then on, so it takes no step after its own convergence
and its step count ``nstep[b]`` is exactly the number of updates applied to it.
Masking starts only once some example has stopped; until then the step's output is
taken as is. ``f`` is still evaluated on the whole batch, so NFE counts are per
batched call. ``tol=0`` asks for exactly ``max_steps`` steps (the fixed-step regime of
the authors' configurations); the examples then end ``fixed_steps_completed``.

Result codes per example: ``successful`` (the criterion held),
``fixed_steps_completed`` (``tol=0``: every step ran, nothing failed),
``max_steps_reached``, ``diverged`` (``||z||`` grew past ``DIVERGENCE_FACTOR * (1 +
scale_0)``) and ``nonfinite``. An iterate that did not meet the criterion is never
labelled successful.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .._result import Result
from .._validate import positive_int
from ..errors import InvalidInputError
from .base import AbstractFixedPointSolver, Map, State, relative_residual
from .stopping import IterateRelativeTol, absolute_residual, initial_scale

#: An example is diverged once ``||z_n|| > DIVERGENCE_FACTOR * (1 + scale_0)`` with
#: ``scale_0 = max(||z_0||, ||f(z_0)||)``. For an L-contraction started at 0,
#: ``||z*|| <= scale_0 / (1 - L)``, so 1e4 leaves room for L up to 0.9999 and for
#: transient growth, while a drifting iterate (the residual-block failure: ||z|| ~ 1e4
#: times the input) is caught within the step budget.
DIVERGENCE_FACTOR = 1e4

#: Result of each per-example status code, in increasing severity.
STATUS_CODES: tuple[Result, ...] = (
    Result.successful,
    Result.fixed_steps_completed,
    Result.max_steps_reached,
    Result.diverged,
    Result.nonfinite,
)
_OK, _FIXED, _MAX, _DIV, _NAN = range(5)


@dataclasses.dataclass
class FixedPointRun:
    """What the driver returns.

    Attributes:
        z: final iterate, shape ``(B, ...)``.
        state: final solver state (``state["fz"]`` = f(z); ``state["y"]`` for the
            reversible solver).
        result: the worst per-example result.
        stats: documented dictionary, see :func:`iterate`.
    """

    z: torch.Tensor
    state: State
    result: Result
    stats: dict


def worst_result(*results: Result) -> Result:
    """The most severe of ``results`` (order: nonfinite > diverged > max steps > ok;
    any other non-successful code outranks them all)."""
    rank = {r: i for i, r in enumerate(STATUS_CODES)}
    return max(results, key=lambda r: rank.get(r, len(STATUS_CODES)))


def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.reshape(mask.shape[0], *([1] * (like.dim() - 1)))


def check_tolerances(tol: float, max_steps: int) -> tuple[float, int]:
    """Validate ``tol >= 0`` (finite) and integer ``max_steps >= 1``."""
    try:
        t = float(tol)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"tol must be a number; got {tol!r}") from exc
    if not math.isfinite(t) or t < 0:
        raise InvalidInputError(f"tol must be a finite number >= 0; got {tol!r}")
    positive_int("max_steps", max_steps, error=InvalidInputError, exact_type=True)
    if isinstance(tol, IterateRelativeTol):
        return tol, max_steps  # keep the named rule (it is a float)
    return t, max_steps


def iterate(
    solver: AbstractFixedPointSolver,
    f: Map,
    z0: torch.Tensor,
    *,
    tol: float,
    max_steps: int,
    record_trajectory: bool = False,
) -> FixedPointRun:
    """Run ``solver`` on ``z = f(z)`` from ``z0`` (batch-first) until every example
    stops.

    Differentiable when called with autograd enabled (the unrolled gradient); the
    masking is a ``torch.where`` and the loop bound a Python int.

    Returns a :class:`FixedPointRun` whose ``stats`` holds:

    - ``nstep`` (B,) int64: steps applied to each example;
    - ``residual`` (B,): final residual as compared with ``tol``
      (``||z - f(z)|| / (1 + scale_0)`` by default);
    - ``residual_abs`` (B,): ``||z - f(z)||``;
    - ``residual_rel`` (B,): ``||z - f(z)|| / (1e-5 + ||f(z)||)`` (the authors'
      relative residual, reported whatever the rule);
    - ``scale`` (B,): ``scale_0 = max(||z_0||, ||f(z_0)||)``;
    - ``residual_trace`` (B, N): residual after each of the N loop steps (a frozen
      example repeats its final value);
    - ``nfe_forward`` (int): batched calls of ``f``, ``nfe_init + nfe_per_step * N``;
    - ``example_result`` (B,) int8: index into :data:`STATUS_CODES`;
    - ``converged`` (B,) bool;
    - ``trajectory`` (only with ``record_trajectory``): dict of stacked iterates
      ``{"z": (N+1, B, ...), "y": ...}`` (test hook; costs O(N) memory).
    """
    tol, max_steps = check_tolerances(tol, max_steps)
    fixed = tol == 0
    calls = [0]

    def counted(z: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return f(z)

    b = z0.shape[0]
    dev = z0.device
    try:
        state = solver.init(counted, z0)
    except RuntimeError as exc:  # e.g. a matmul shape mismatch inside f
        if calls[0] > 1:
            raise
        raise InvalidInputError(
            f"f could not be evaluated at z0 of shape {tuple(z0.shape)} ({exc}); pass "
            "z0 shaped like the state f expects (the default z0 is zeros shaped like x)"
        ) from exc
    if state["fz"].shape != z0.shape:
        raise InvalidInputError(
            f"f(z) has shape {tuple(state['fz'].shape)} but z0 has shape "
            f"{tuple(z0.shape)}: the state must keep its shape under f. Pass z0 "
            "shaped like f's output (the default z0 is zeros shaped like x)"
        )
    z = z0
    scale = initial_scale(z0, state["fz"])
    bound = DIVERGENCE_FACTOR * (1.0 + scale)
    active = torch.ones(b, dtype=torch.bool, device=dev)
    status = torch.full((b,), _MAX, dtype=torch.int8, device=dev)
    nstep = torch.zeros(b, dtype=torch.int64, device=dev)
    trace: list[torch.Tensor] = []
    traj: dict[str, list[torch.Tensor]] = {}
    if record_trajectory:
        traj["z"] = [z0]
        if "y" in state:
            traj["y"] = [state["y"]]
    err = torch.full((b,), math.inf, dtype=z0.dtype, device=dev)
    all_active = True
    for _ in range(max_steps):
        z_new, new = solver.step(counted, z, state)
        if all_active:
            z, state = z_new, new
        else:
            z = torch.where(_rows(active, z), z_new, z)
            # An entry the solver updated in place (same object) needs no masking.
            state = {
                k: v if new[k] is v else torch.where(_rows(active, v), new[k], v)
                for k, v in state.items()
            }
        nstep = nstep + active.to(torch.int64)
        done, err = solver.terminate(z, state, tol, scale)
        if fixed:
            done = torch.zeros_like(done)
        err = err.detach()
        trace.append(err)
        if record_trajectory:
            traj["z"].append(z)
            if "y" in traj:
                traj["y"].append(state["y"])
        # A NaN or inf entry makes the norm non-finite, so one norm serves both tests.
        znorm = torch.linalg.vector_norm(z.detach().reshape(b, -1), dim=1)
        bad = ~(torch.isfinite(err) & torch.isfinite(znorm))
        div = ~bad & (znorm > bound)
        ok = ~bad & ~div & done
        status = torch.where(active & ok, _OK, status).to(torch.int8)
        status = torch.where(active & div, _DIV, status).to(torch.int8)
        status = torch.where(active & bad, _NAN, status).to(torch.int8)
        stopped = ok | div | bad
        if bool(stopped.any()):
            active = active & ~stopped
            all_active = False
            if not bool(active.any()):
                break
    if fixed:
        status = torch.where(status == _MAX, _FIXED, status).to(torch.int8)
    worst = STATUS_CODES[int(status.max())]
    fz = state["fz"].detach()
    stats: dict = {
        "nstep": nstep,
        "residual": err,
        "residual_abs": absolute_residual(z, fz),
        "residual_rel": relative_residual(z.detach(), fz),
        "scale": scale,
        "residual_trace": torch.stack(trace, dim=1),
        "nfe_forward": calls[0],
        "example_result": status,
        "converged": status == _OK,
    }
    if record_trajectory:
        stats["trajectory"] = {k: torch.stack(v) for k, v in traj.items()}
    return FixedPointRun(z, state, worst, stats)


def forward_stats(run: FixedPointRun) -> dict:
    """The public stats dictionary of a solve, before any backward pass: the driver's
    keys plus ``result``, ``forward_result``, ``backward_result`` (None),
    ``nfe_backward`` (0) and ``reconstruction_error`` (None)."""
    st = dict(run.stats)
    st.update(
        {
            "result": run.result,
            "forward_result": run.result,
            "backward_result": None,
            "nfe_backward": 0,
            "reconstruction_error": None,
        }
    )
    return st


def should_raise(result: Result, tol: float) -> bool:
    """Whether ``throw=True`` raises for ``result``: every failure
    (``fixed_steps_completed``, what ``tol == 0`` asks for, is not one)."""
    del tol
    return not result.ok


def describe_failure(run: FixedPointRun, tol: float, max_steps: int) -> str:
    """A one-paragraph message saying which examples failed and what to try."""
    st = run.stats
    codes = st["example_result"]
    n = codes.numel()
    parts = []
    for i, res in enumerate(STATUS_CODES[1:], start=1):
        k = int((codes == i).sum())
        if k:
            parts.append(f"{k} of {n} example(s) {res.value}")
    worst_res = float(st["residual"].max())
    hint = {
        Result.max_steps_reached: "raise max_steps, loosen tol, make f more "
        "contractive, or pass throw=False to accept the iterate and read "
        "stats['result']",
        Result.diverged: "the iteration diverged: f is probably not contractive here; "
        "use a smaller beta / damping or a different solver",
        Result.nonfinite: "NaN or inf appeared in the iterate: check f and its input",
    }.get(run.result, "")
    return (
        f"fixed-point solve did not converge ({'; '.join(parts)}) with tol={tol:g}, "
        f"max_steps={max_steps}; worst residual {worst_res:.3e}. {hint}"
    )

"""The single driver loop shared by every fixed-point solver.

Stopping rule (spec §4): after each step the relative residual on ``z`` is compared
with ``tol``; at least one step is always taken. Batching is **per example with
masking**: an example stops as soon as its own residual is at most ``tol`` (or it
diverges or goes non-finite) and is frozen from then on, so it takes no step after its
own convergence (the post-convergence cap is zero) and its step count ``nstep[b]`` is
exactly the number of updates applied to it. ``f`` is still evaluated on the whole
batch, so NFE counts are per batched call. ``tol=0`` asks for exactly ``max_steps``
steps (the fixed-step regime of the authors' configurations); the examples then end
``max_steps_reached``, which is recorded but not raised (:func:`should_raise`).

Result codes per example: ``successful`` (residual <= tol), ``max_steps_reached``,
``diverged`` (||z|| grew by more than ``DIVERGENCE_FACTOR`` over its start) and
``nonfinite``. An iterate that did not reach ``tol`` is never labelled successful.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .._result import Result
from .._validate import positive_int
from ..errors import InvalidInputError
from .base import AbstractFixedPointSolver, Map, State

#: An example is diverged once ``||z_n|| > DIVERGENCE_FACTOR * (1 + ||z_0|| +
#: ||f(z_0)||)``.
#: The relative residual cannot see divergence (for z -> 2z it stays at 1/2), so the
#: size of the iterate is watched instead; 1e8 leaves room for transient growth.
DIVERGENCE_FACTOR = 1e8

#: Result of each per-example status code, in increasing severity.
STATUS_CODES: tuple[Result, ...] = (
    Result.successful,
    Result.max_steps_reached,
    Result.diverged,
    Result.nonfinite,
)
_OK, _MAX, _DIV, _NAN = range(4)


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
    - ``residual`` (B,): final relative residual;
    - ``residual_trace`` (B, N): residual after each of the N loop steps (a frozen
      example repeats its final value);
    - ``nfe_forward`` (int): batched calls of ``f``, ``nfe_init + nfe_per_step * N``;
    - ``example_result`` (B,) int8: index into :data:`STATUS_CODES`;
    - ``converged`` (B,) bool;
    - ``trajectory`` (only with ``record_trajectory``): dict of stacked iterates
      ``{"z": (N+1, B, ...), "y": ...}`` (test hook; costs O(N) memory).
    """
    tol, max_steps = check_tolerances(tol, max_steps)
    calls = [0]

    def counted(z: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return f(z)

    b = z0.shape[0]
    dev = z0.device
    state = solver.init(counted, z0)
    z = z0
    scale = (
        1.0
        + torch.linalg.vector_norm(z0.detach().reshape(b, -1), dim=1)
        + torch.linalg.vector_norm(state["fz"].detach().reshape(b, -1), dim=1)
    )
    bound = DIVERGENCE_FACTOR * scale
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
            state = {
                k: torch.where(_rows(active, v), new[k], v) for k, v in state.items()
            }
        nstep = nstep + active.to(torch.int64)
        done, err = solver.terminate(z, state, tol)
        err = err.detach()
        trace.append(err)
        if record_trajectory:
            traj["z"].append(z)
            if "y" in traj:
                traj["y"].append(state["y"])
        zd = z.detach().reshape(b, -1)
        bad = ~torch.isfinite(err) | ~torch.isfinite(zd).all(dim=1)
        div = ~bad & (torch.linalg.vector_norm(zd, dim=1) > bound)
        ok = ~bad & ~div & done
        status = torch.where(active & ok, _OK, status).to(torch.int8)
        status = torch.where(active & div, _DIV, status).to(torch.int8)
        status = torch.where(active & bad, _NAN, status).to(torch.int8)
        active = active & ~(ok | div | bad)
        all_active = False
        if not bool(active.any()):
            break
    worst = STATUS_CODES[int(status.max())]
    stats: dict = {
        "nstep": nstep,
        "residual": err,
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
    """Whether ``throw=True`` raises for ``result``: every failure, except
    ``max_steps_reached`` when ``tol == 0`` (a fixed-step request, where running out of
    steps is what was asked for; the code is still recorded)."""
    if result.ok:
        return False
    return not (result is Result.max_steps_reached and tol == 0)


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

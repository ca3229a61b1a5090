"""The reversible DEQ as a ``torch.autograd.Function`` (docs/theory/reversible.md).

``forward`` runs the coupled iteration under ``no_grad`` and saves only
``(y_N, z_N, N)`` plus the inputs it was called with (``z_0``, ``x`` and the
parameters of ``f``, which are alive anyway): the memory held for backward does not
depend on N (REV-MEMORY). ``backward`` walks back from ``(y_N, z_N)``, reconstructing
each state algebraically while running the exact adjoint recursion of §6, and returns a
gradient for ``z_0``, ``x`` and **every parameter of f** (they are explicit inputs of
``.apply`` and ``f`` is called through ``torch.func.functional_call`` on exactly those
tensors). Because the true ``(y_0, z_0)`` is known, the backward measures its own
reconstruction error for free (REV-RECON).

Per-example step counts: example ``b`` took ``N_b`` steps (masking in the driver), so
at reverse step ``n`` only the examples with ``n < N_b`` are updated; the others keep
their final state and adjoint, and their rows of the cotangents are zero, so they add
nothing to the parameter gradient. This assumes ``f`` treats examples independently
(no BatchNorm in train mode inside ``f``: docs/theory/reversible.md).
"""

from __future__ import annotations

import dataclasses
import warnings
import weakref

import torch
from torch.autograd.function import once_differentiable

from .._denormal import flush_denormals
from .._problem import Problem
from .._result import Result
from ..errors import ReconstructionError
from ..solvers.iterate import FixedPointRun, forward_stats, iterate, worst_result
from ..solvers.reversible import Reversible

RECON_POLICIES = ("raise", "warn", "ignore")


class ReconstructionWarning(UserWarning):
    """The reversible backward reconstructed (y_0, z_0) with an error over threshold."""


@dataclasses.dataclass
class RevConfig:
    """Everything the Function needs besides tensors (passed as the first input)."""

    problem: Problem
    solver: Reversible
    tol: float
    max_steps: int
    stats: dict
    throw: bool = True
    recon_threshold: float | None = None
    recon_policy: str = "warn"
    store_trajectory: bool = False
    use_stored_states: bool = False
    run: FixedPointRun | None = None


def _rowmax(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).abs().amax(dim=1)


class _Mask:
    """Freeze the rows whose forward solve stopped before step n (``act`` false);
    ``act`` None means every row is active and the mask is the identity."""

    def __init__(self, act: torch.Tensor | None):
        self.act = act

    def keep(self, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        if self.act is None:
            return new
        return torch.where(self.act.reshape(-1, *([1] * (new.dim() - 1))), new, old)

    def or_zero(self, new: torch.Tensor) -> torch.Tensor:
        return new if self.act is None else self.keep(new, torch.zeros_like(new))


def _adjoint_step(solver: Reversible, f, wrt, y, z, ybar, zbar, mask, stored_n):
    """Undo one reversible step from (y_{n+1}, z_{n+1}) with the solver's own inverse
    (:meth:`Reversible.undo`, the two halves of ``inverse_step``) while pulling the
    adjoints back through it (docs/theory/reversible.md). ``stored_n`` (test hook): the
    stored
    (y_n, z_n), used in place of the reconstructed states. Returns the previous
    states and adjoints, the reconstructed states and the parameter parts of both
    VJPs (beta is inside the cotangents)."""
    beta = solver.beta
    c = 1.0 - beta
    # z_{n+1} = c z_n + beta f(y_{n+1}): undo it, and pull zbar back through f(y_{n+1}).
    yl = y.detach().requires_grad_()
    a = f(yl)
    z_prev = z_rec = mask.keep(solver.undo(z, a.detach()), z)
    if stored_n is not None:
        z_prev = stored_n[1]
    cot = mask.or_zero(beta * zbar)
    ga = torch.autograd.grad(a, [yl, *wrt], cot, allow_unused=True)
    ybar_tot = ybar + ga[0] if ga[0] is not None else ybar
    # y_{n+1} = c y_n + beta f(z_n): undo it, and pull ybar back through f(z_n).
    zl = z_prev.detach().requires_grad_()
    b = f(zl)
    y_prev = y_rec = mask.keep(solver.undo(y.detach(), b.detach()), y.detach())
    if stored_n is not None:
        y_prev = stored_n[0]
    cot = mask.or_zero(beta * ybar_tot)
    gb = torch.autograd.grad(b, [zl, *wrt], cot, allow_unused=True)
    ybar = mask.keep(c * ybar_tot, ybar)
    zbar = (
        mask.keep(c * zbar + gb[0], zbar)
        if gb[0] is not None
        else mask.keep(c * zbar, zbar)
    )
    return y_prev.detach(), z_prev.detach(), ybar, zbar, (y_rec, z_rec), ga, gb


def _accumulate(acc: list, ga, gb) -> None:
    for i in range(len(acc)):
        for part in (ga[i + 1], gb[i + 1]):
            if part is not None:
                acc[i] = part if acc[i] is None else acc[i] + part


def _all_finite(finite: torch.Tensor, *ts: torch.Tensor) -> torch.Tensor:
    for t in ts:
        finite = finite & torch.isfinite(t).all()
    return finite


def _classify(cfg: RevConfig, finite, recon, nmax: int) -> tuple[Result, str]:
    """The backward's result code and message (non-finite beats reconstruction)."""
    beta = cfg.solver.beta
    if not bool(finite):
        return Result.nonfinite, (
            f"reversible backward produced non-finite reconstructed states or "
            f"adjoints after undoing up to {nmax} steps (beta={beta:g}); this is "
            "the overflow regime of docs/theory/reversible.md: use a float64 "
            "state, fewer "
            "steps, a bounded f, or beta further from 1"
        )
    if cfg.recon_threshold is not None and float(recon.max()) > cfg.recon_threshold:
        return Result.reconstruction_error_exceeded, (
            f"reconstruction error {float(recon.max()):.3e} of (y_0, z_0) exceeds "
            f"the threshold {cfg.recon_threshold:g} (beta={beta:g}, {nmax} "
            "steps); the gradient may be inaccurate: use a float64 state, fewer "
            "post-convergence steps, or beta further from 1"
        )
    return Result.successful, ""


class Stats(dict):
    """The caller's statistics dictionary; a dict that can be weakly referenced, so
    that the autograd context can write the backward's results into it without
    keeping it (and its per-step ``residual_trace``, B x N) alive for backward."""


def _for_backward(cfg: RevConfig) -> tuple[RevConfig, object]:
    """What the context keeps: ``cfg`` without the caller's stats and with a run
    whose stats drop the per-step residual trace (not needed by the gradient; it
    would make the memory held for backward grow with N), plus a reference to the
    stats (weak when the dict allows it)."""
    run = cfg.run
    keep = {k: v for k, v in run.stats.items() if k != "residual_trace"}
    slim = dataclasses.replace(
        cfg, stats={}, run=dataclasses.replace(run, stats=keep)
    )
    try:
        ref = weakref.ref(cfg.stats)
    except TypeError:  # a plain dict: hold it (its trace then stays alive too)
        stats = cfg.stats

        def ref():
            return stats

    return slim, ref


def _report(cfg: RevConfig, st: dict, back: Result, msg: str) -> None:
    """Record the backward result and apply ``throw`` / the reconstruction policy."""
    st["backward_result"] = back
    st["result"] = worst_result(st["forward_result"], back)
    if back is Result.nonfinite and cfg.throw:
        raise ReconstructionError(f"nonfinite: {msg}")
    if back is Result.reconstruction_error_exceeded:
        if cfg.recon_policy == "raise":
            raise ReconstructionError(f"{back.value}: {msg}")
        if cfg.recon_policy == "warn":
            # stacklevel 3: past this helper and backward, as before the split.
            warnings.warn(msg, ReconstructionWarning, stacklevel=3)


class ReversibleFunction(torch.autograd.Function):
    """``z_N = ReversibleFunction.apply(cfg, z0, x, *params)``; see the module."""

    @staticmethod
    def forward(
        ctx, cfg: RevConfig, z0: torch.Tensor, x: torch.Tensor, *params: torch.Tensor
    ) -> torch.Tensor:
        # Fast path: the tensors passed in are the module's own parameters (what
        # ReversibleExact passes), so f is called directly; any other tensors go through
        # functional_call. Either way f is evaluated on exactly the tensors passed in.
        own = len(params) == len(cfg.problem.params) and all(
            p is q for p, q in zip(params, cfg.problem.params)
        )
        ctx.own = own
        f = cfg.problem.bind(x) if own else cfg.problem.bind(x, params)
        with torch.no_grad():
            run = iterate(
                cfg.solver,
                f,
                z0,
                tol=cfg.tol,
                max_steps=cfg.max_steps,
                record_trajectory=cfg.store_trajectory,
            )
        cfg.run = run
        cfg.stats.update(forward_stats(run))
        ctx.cfg, ctx.stats_ref = _for_backward(cfg)
        y_n, z_n = run.state["y"], run.z
        ctx.save_for_backward(y_n, z_n, run.stats["nstep"], z0, x, *params)
        return z_n

    @staticmethod
    @once_differentiable
    def backward(ctx, g_z: torch.Tensor):
        cfg: RevConfig = ctx.cfg
        y, z, nstep, z0, x, *params = ctx.saved_tensors
        need_z0 = ctx.needs_input_grad[1]
        need_x = ctx.needs_input_grad[2]
        need_p = list(ctx.needs_input_grad[3:])
        nmax = int(nstep.max()) if nstep.numel() else 0
        nmin = int(nstep.min()) if nstep.numel() else 0
        stored = cfg.run.stats.get("trajectory") if cfg.store_trajectory else None
        use_stored = stored is not None and cfg.use_stored_states

        # Deep reversible backward passes spend most of their time on subnormal
        # numbers; flushing them is safe here (see dynamics._denormal) and scoped.
        with torch.enable_grad(), flush_denormals():
            xl = x.detach().requires_grad_(need_x)
            if ctx.own:
                pl = list(cfg.problem.params)
                f = cfg.problem.bind(xl)
            else:
                pl = [p.detach().requires_grad_(n) for p, n in zip(params, need_p)]
                f = cfg.problem.bind(xl, pl)
            wrt = ([xl] if need_x else []) + [p for p, n in zip(pl, need_p) if n]
            acc: list[torch.Tensor | None] = [None] * len(wrt)
            y = y.detach()
            z = z.detach()
            ybar = torch.zeros_like(y)
            zbar = g_z.to(z.dtype) if g_z is not None else torch.zeros_like(z)
            finite = torch.ones((), dtype=torch.bool, device=z.device)
            step_err = []
            for n in range(nmax - 1, -1, -1):
                mask = _Mask(None if n < nmin else (nstep > n))
                stored_n = (stored["y"][n], stored["z"][n]) if use_stored else None
                y, z, ybar, zbar, rec, ga, gb = _adjoint_step(
                    cfg.solver, f, wrt, y, z, ybar, zbar, mask, stored_n
                )
                _accumulate(acc, ga, gb)
                finite = _all_finite(finite, y, z, ybar, zbar)
                if stored is not None:
                    ry, rz = rec if use_stored else (y, z)
                    step_err.append(
                        torch.maximum(
                            _rowmax(ry - stored["y"][n]), _rowmax(rz - stored["z"][n])
                        )
                    )

        recon = torch.maximum(_rowmax(y - z0), _rowmax(z - z0))
        grads_wrt = [
            a if a is not None else torch.zeros_like(t) for a, t in zip(acc, wrt)
        ]
        finite = _all_finite(finite, *grads_wrt)
        st = ctx.stats_ref()
        if st is None:  # the caller dropped its stats: results go nowhere
            st = {"forward_result": cfg.run.result}
        st["reconstruction_error"] = recon
        st["nfe_backward"] = 2 * nmax
        st["nvjp_backward"] = 2 * nmax
        if stored is not None:
            st["reconstruction_error_trace"] = (
                torch.stack(step_err[::-1], dim=1)
                if step_err
                else recon[:, None][:, :0]
            )
        _report(cfg, st, *_classify(cfg, finite, recon, nmax))

        out: list[torch.Tensor | None] = [None, None, None]
        if need_z0:
            out[1] = (ybar + zbar).to(z0.dtype)  # y_0 = z_0 both depend on z0
        it = iter(grads_wrt)
        if need_x:
            out[2] = next(it)
        for need in need_p:
            out.append(next(it) if need else None)
        return tuple(out)

"""Reversible DEQ checks of REV-EXACT (part ``gradcheck``: torch.autograd.gradcheck
of the reversible Function) and REV-FD (reversible gradient vs central finite
differences).
"""

from __future__ import annotations

import math

import torch

from dynamics._problem import Problem
from dynamics.gradients import RevConfig, ReversibleFunction
from dynamics.instances.torch_examples import (
    TanhMap,
    loss_grads,
)
from dynamics.measure import tol_margin
from dynamics.solvers import (
    Reversible,
    iterate,
)

from ..catalogue import tol
from ..registry import CheckResult, Context, judged
from ._rev_common import (
    F64,
    _bind,
    _rev_plain,
    _seed,
    _toy_loss,
    check,
    inverse_jacobian_norms,
    log_products,
    recon_bound,
)

TOL_FD = tol("REV-FD", "fd")

def robust_tol(f, x, z0, beta, max_steps, lo=1e-6, hi=1e-1) -> float:
    """A tolerance whose log-distance to every residual of the run is maximal, so that
    the small perturbations of gradcheck cannot change any example's step count (the
    stopping rule is discontinuous in the inputs)."""
    with torch.no_grad():
        run = iterate(Reversible(beta), _bind(f, x), z0, tol=0.0, max_steps=max_steps)
    logs = torch.log10(run.stats["residual_trace"].reshape(-1))
    cands = torch.linspace(math.log10(lo), math.log10(hi), 400, dtype=F64)
    gap = (cands[:, None] - logs[None, :]).abs().amin(dim=1)
    return float(10 ** cands[int(gap.argmax())])


@check("REV-EXACT", part="gradcheck", kind="numeric")
def rev_exact_gradcheck(ctx: Context) -> CheckResult:
    """REV-EXACT: torch.autograd.gradcheck of the reversible Function (float64) with
    respect to z0, x and every parameter of f, on a masked batch (per-example N)."""
    seed = _seed(ctx, "gradcheck")
    f = TanhMap(3, 2, 0.8, seed=seed)
    g = torch.Generator().manual_seed(seed)
    x = (
        torch.randn(3, 2, generator=g, dtype=F64)
        * torch.tensor([[0.1], [1.0], [3.0]], dtype=F64)
    ).requires_grad_()
    z0 = torch.zeros(3, 3, dtype=F64, requires_grad=True)
    steps, results, tols = [], [], []
    for beta in (0.7, 1.3):
        # few steps: reconstruction error grows like |1-beta|^-2 per step (atol 1e-7)
        tol = robust_tol(f, x.detach(), z0.detach(), beta, 10, lo=1e-4, hi=1e-1)
        tols.append(tol)

        def fn(z0, x, *params, beta=beta, tol=tol):
            cfg = RevConfig(
                Problem.build(f, x, F64), Reversible(beta), tol, 10, {}, throw=False
            )
            out = ReversibleFunction.apply(cfg, z0, x, *params)
            steps.append(tuple(cfg.run.stats["nstep"].tolist()))
            return out

        ok = torch.autograd.gradcheck(
            fn,
            (z0, x, *f.parameters()),
            eps=1e-6,
            atol=1e-7,
            rtol=1e-6,
            raise_exception=False,
        )
        results.append(bool(ok))
    return judged(
        all(results),
        worst_margin=1.0 if all(results) else -1.0,
        tolerance=1e-7,
        instances=len(results),
        details={
            "margin": "1 if gradcheck passed else -1",
            "nstep_per_example": sorted(set(steps)),
            "tol": tols,
            "passed": results,
        },
    )


# ------------------------------------------------------------------------------- FD
@check("REV-FD", part="numeric", kind="numeric")
def rev_fd(ctx: Context) -> CheckResult:
    """REV-FD (amended): reversible dL/dtheta matches central finite differences of
    L(z_N), E-TOY float64, every N in {10, 20}, beta in {0.5, 0.8, 1.2}, L in
    {0.5, 0.9}, step 1e-6: rel <= 1e-6 (FD truncation and rounding) + C eps64 A_N
    (the REV-EXACT reconstruction bound of the same run, computed); rows report
    both terms."""
    rows, terms = {}, {}
    margins = []
    for lip in (0.5, 0.9):
        for nsteps in (10, 20):
            errs, bounds = _fd_case(ctx, lip, nsteps)
            for k, e in errs.items():
                beta = k.split()[0]
                allowed = TOL_FD + bounds[beta]
                margins.append(tol_margin(e, allowed))
                rows[f"L={lip} N={nsteps} {k}"] = e
            for beta, bnd in bounds.items():
                terms[f"L={lip} N={nsteps} {beta}"] = {"fd": TOL_FD, "C_eps_A_N": bnd}
    worst = min(margins)
    return judged(
        worst >= 0,
        measured=max(rows.values()),
        worst_margin=worst,
        tolerance=TOL_FD,
        instances=len(rows),
        ran={"max_N": 20},
        reason=""
        if worst >= 0
        else "a directional derivative left 1e-6 + C eps A_N (see details)",
        details={
            "margin": "1 - rel_err/(1e-6 + C eps64 A_N) (directional derivatives)",
            "rel_err": rows,
            "allowed_terms": terms,
        },
    )


def _fd_case(ctx: Context, lip: float, nsteps: int):
    seed = _seed(ctx, "fd")
    f = TanhMap(16, 8, lip, seed=seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 8, generator=g, dtype=F64)
    z0 = torch.zeros(4, 16, dtype=F64)
    ndir = 6 if ctx.full else 3
    h = 1e-6
    params = list(f.parameters())
    errs, bounds = {}, {}

    def loss_at(beta):
        fm = _bind(f, x)
        with torch.no_grad():
            r = iterate(Reversible(beta), fm, z0, tol=0.0, max_steps=nsteps)
        return float((r.z**2).sum() + r.z.sum())

    for beta in (0.5, 0.8, 1.2):
        bounds[f"beta={beta}"] = recon_bound(
            log_products(inverse_jacobian_norms(f, x, beta, z0, nsteps))[-1]
        )
        grad, _ = loss_grads(
            f,
            Reversible(beta),
            _rev_plain(),
            x,
            z0,
            tol=0.0,
            max_steps=nsteps,
            loss=_toy_loss,
        )
        gparams = grad[: sum(p.numel() for p in params)]
        for k in range(ndir):
            dirs = [torch.randn(p.shape, generator=g, dtype=F64) for p in params]
            with torch.no_grad():
                for p, d in zip(params, dirs):
                    p.add_(h * d)
                lp = loss_at(beta)
                for p, d in zip(params, dirs):
                    p.sub_(2 * h * d)
                lm = loss_at(beta)
                for p, d in zip(params, dirs):
                    p.add_(h * d)
            fd = (lp - lm) / (2 * h)
            an = float(torch.dot(gparams, torch.cat([d.reshape(-1) for d in dirs])))
            err = abs(fd - an) / max(1.0, abs(an))
            errs[f"beta={beta} dir={k}"] = err
    return errs, bounds

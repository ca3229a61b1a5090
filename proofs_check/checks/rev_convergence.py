"""Reversible DEQ checks of REV-SAME-FP (the coupled iteration reaches the Picard fixed
point) and REV-RATE (per-step contraction by |1-beta| + beta L).
"""

from __future__ import annotations

import math

import torch

from dynamics.instances.torch_examples import (
    TanhMap,
)
from dynamics.solvers import (
    Picard,
    Reversible,
    iterate,
)

from ..catalogue import tol
from ..registry import CheckResult, Context, judged
from ._rev_common import (
    F64,
    _bind,
    _seed,
    check,
)

# ----------------------------------------------------------------------- SAME-FP
TOL_SAME_FP = tol("REV-SAME-FP", "fixed-point")
TOL_FP_DRIFT = tol("REV-SAME-FP", "drift")
TOL_RATE_SLACK = tol("REV-RATE", "slack")

def _picard_star(fm, z0, tol=1e-15):
    with torch.no_grad():
        r = iterate(Picard(), fm, z0, tol=tol, max_steps=5000)
        # a few extra Picard steps to sit at the rounding floor
        z = r.z
        for _ in range(5):
            z = fm(z)
    return z


@check("REV-SAME-FP", part="numeric", kind="property")
def rev_same_fp(ctx: Context) -> CheckResult:
    """REV-SAME-FP: for contractive f and beta < 2/(1+L), (y_N, z_N) -> (z*, z*), the
    Picard fixed point; ||z_N - z*||_inf <= 1e-10 once N >= log(1e-12)/log(rate), and
    (z*, z*) is a fixed point of the coupled step."""
    seeds = range(3 if ctx.full else 1)
    worst, rows = math.inf, []
    for s in seeds:
        seed = _seed(ctx, f"samefp-{s}")
        x = torch.randn(6, 8, generator=torch.Generator().manual_seed(seed), dtype=F64)
        for lip in (0.5, 0.9):
            f = TanhMap(16, 8, lip, seed=seed)
            fm = _bind(f, x)
            z0 = torch.zeros(6, 16, dtype=F64)
            zs = _picard_star(fm, z0)
            bmax = 2 / (1 + lip)
            betas = (0.3, 0.6, 0.85, 0.97 * bmax if bmax > 1.15 else 0.88)
            for beta in betas if ctx.full else betas[1::2]:
                rate = abs(1 - beta) + beta * lip
                n = math.ceil(math.log(1e-12) / math.log(rate)) + 2
                with torch.no_grad():
                    r = iterate(Reversible(beta), fm, z0, tol=0.0, max_steps=n)
                    y1, z1 = Reversible(beta).forward_step(fm, zs, zs)
                err = max(
                    float((r.z - zs).abs().max()),
                    float((r.state["y"] - zs).abs().max()),
                )
                fix = max(float((y1 - zs).abs().max()), float((z1 - zs).abs().max()))
                worst = min(worst, 1 - err / TOL_SAME_FP, 1 - fix / TOL_FP_DRIFT)
                rows.append(
                    {
                        "L": lip,
                        "beta": beta,
                        "N": n,
                        "err": err,
                        "step_at_fixed_point": fix,
                    }
                )
    return judged(
        worst >= 0,
        measured=max(r["err"] for r in rows),
        worst_margin=worst,
        tolerance=TOL_SAME_FP,
        instances=len(rows),
        details={
            "margin": "min(1 - err/1e-10, 1 - fixed-point drift/1e-13)",
            "rows": rows,
        },
    )


# ----------------------------------------------------------------------------- RATE
@check("REV-RATE", part="numeric", kind="property")
def rev_rate(ctx: Context) -> CheckResult:
    """REV-RATE: e_{n+1} <= (|1-beta| + beta L) e_n in the 2-norm (f = tanh(Wz + ..)
    with ||W||_2 = L), at every step with e_n above 1e3 x the float floor."""
    seeds = range(4 if ctx.full else 1)
    worst, n_checked, ratios = math.inf, 0, {}
    for s in seeds:
        seed = _seed(ctx, f"rate-{s}")
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(6, 8, generator=g, dtype=F64)
        for lip in (0.5, 0.9):
            f = TanhMap(16, 8, lip, seed=seed)
            fm = _bind(f, x)
            z0 = 2.0 * torch.randn(6, 16, generator=g, dtype=F64)
            zs = _picard_star(fm, z0)
            floor = 1e3 * torch.finfo(F64).eps * (1 + zs.norm(dim=1))
            bmax = 2 / (1 + lip)
            betas = (0.3, 0.6, 0.88, 0.5 * (1 + bmax) if bmax > 1.15 else 1.0 - 0.12)
            for beta in betas if ctx.full else betas[::3]:
                bound = abs(1 - beta) + beta * lip
                with torch.no_grad():
                    r = iterate(
                        Reversible(beta),
                        fm,
                        z0,
                        tol=0.0,
                        max_steps=300,
                        record_trajectory=True,
                    )
                tr = r.stats["trajectory"]
                e = torch.maximum(
                    (tr["y"] - zs).norm(dim=2), (tr["z"] - zs).norm(dim=2)
                )
                ok = e[:-1] > floor
                ratio = (e[1:] / e[:-1])[ok]
                if ratio.numel():
                    m = float(ratio.max())
                    worst = min(worst, 1 - m / ((1 + TOL_RATE_SLACK) * bound))
                    ratios[f"L={lip} beta={beta:.3f}"] = {
                        "max_ratio": m,
                        "bound": bound,
                        "measured/bound": m / bound,
                    }
                    n_checked += int(ratio.numel())
    return judged(
        worst >= 0,
        measured=max(v["measured/bound"] for v in ratios.values()),
        predicted=1.0,
        worst_margin=worst,
        tolerance=TOL_RATE_SLACK,
        instances=n_checked,
        details={
            "margin": "1 - max ratio / ((1+1e-9) bound)",
            "per_case": ratios,
            "tightness": {
                "ratio": max(v["measured/bound"] for v in ratios.values()),
                "where": max(ratios, key=lambda k: ratios[k]["measured/bound"]),
                "measure": "max over steps of e_{n+1}/e_n / (|1-beta| + beta L)",
            },
        },
    )

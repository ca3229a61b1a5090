"""Reversible DEQ checks of REV-INVERT (forward step then inverse step) and
REV-EXACT (parts ``unit``, ``toy`` and ``stored``: the reversible adjoint against
the unrolled reference).
"""

from __future__ import annotations

import math

import torch

from dynamics.gradients import (
    ImplicitIFT,
    Phantom,
    ReversibleExact,
    Unrolled,
)
from dynamics.instances.torch_examples import (
    PairMLP,
    TanhMap,
    loss_grads,
)
from dynamics.measure import tol_margin
from dynamics.solvers import (
    Picard,
    Relaxed,
    Reversible,
)

from ..catalogue import tol
from ..figures import figure, save, style, theory
from ..registry import CheckResult, Context, judged
from ._rev_common import (
    EPS64,
    EXACT_C,
    EXACT_MAX_N,
    EXACT_TIGHT_N,
    EXACT_TIGHT_REL,
    F64,
    UNIT_ATOL,
    _bind,
    _rel,
    _rev_plain,
    _seed,
    _toy_loss,
    _unit_problem,
    check,
    inverse_jacobian_norms,
    log_products,
    quiet_reversibility,
    recon_bound,
    truncation_prediction,
    unit_tolerance,
)


# --------------------------------------------------------------------------- INVERT
def _invert_tol(beta: float, dtype: torch.dtype) -> float:
    base = 1e-12 if dtype == torch.float64 else 1e-5
    gap = abs(1.0 - beta)
    return base if gap >= 0.2 else base * 0.2 / gap


@check("REV-INVERT", part="numeric", kind="property")
def rev_invert(ctx: Context) -> CheckResult:
    """REV-INVERT: forward step then algebraic inverse returns (y, z) up to rounding;
    float64 rel <= 1e-12 for |1-beta| >= 0.2 (scaled by 0.2/|1-beta| closer to 1),
    float32 <= 1e-5."""
    betas = [0.2, 0.5, 0.8, 0.9, 0.95, 1.05, 1.1, 1.2, 1.5, 1.8]
    seeds = range(4 if ctx.full else 2)
    worst, rows, n = math.inf, [], 0
    with quiet_reversibility():
        for dtype in (torch.float64, torch.float32):
            for lip in (0.5, 0.9):
                for s in seeds:
                    seed = _seed(ctx, f"invert-{s}")
                    f = TanhMap(16, 8, lip, seed=seed, dtype=dtype)
                    g = torch.Generator().manual_seed(seed)
                    x = torch.randn(8, 8, generator=g, dtype=F64).to(dtype)
                    y = torch.randn(8, 16, generator=g, dtype=F64).to(dtype)
                    z = torch.randn(8, 16, generator=g, dtype=F64).to(dtype)
                    fm = _bind(f, x, dtype)
                    for beta in betas:
                        solver = Reversible(beta)
                        with torch.no_grad():
                            y1, z1 = solver.forward_step(fm, y, z)
                            y0, z0 = solver.inverse_step(fm, y1, z1)
                            # The driver's step (what the solver iterates, with
                            # its cached f(z)) must be inverted by the same
                            # inverse: a second copy of the step is not tested by
                            # forward_step alone.
                            zd, st = solver.step(fm, z, {"fz": fm(z), "y": y})
                            yd0, zd0 = solver.inverse_step(fm, st["y"], zd)
                        err = max(
                            _rel(y0, y), _rel(z0, z), _rel(yd0, y), _rel(zd0, z)
                        )
                        tol = _invert_tol(beta, dtype)
                        worst = min(worst, 1 - err / tol)
                        rows.append(
                            {
                                "dtype": str(dtype),
                                "L": lip,
                                "beta": beta,
                                "err": err,
                                "tol": tol,
                            }
                        )
                        n += 1
    by_beta = {}
    for r in rows:
        key = f"{r['dtype'][6:]} beta={r['beta']}"
        by_beta[key] = max(by_beta.get(key, 0.0), r["err"])
    return judged(
        worst >= 0,
        measured=max(r["err"] for r in rows),
        worst_margin=worst,
        tolerance=1e-12,
        instances=n,
        details={"margin": "1 - err/tol", "max_err_by_dtype_beta": by_beta},
    )


# ---------------------------------------------------------------------------- EXACT
@check("REV-EXACT", part="unit", kind="numeric")
def rev_exact_unit(ctx: Context) -> CheckResult:
    """REV-EXACT (E-UNIT): reversible, implicit and phantom gradients against the
    unrolled reference, beta in {0.8, 1.2}, tol 1e-8, 500 steps. The reversible one
    is exact for its own iteration: within the claim's E-UNIT atol 1e-5 (the
    authors') and within rounding floor + C eps64 A_N, whichever is stricter. The
    implicit and phantom ones are not exact: they differ from the unrolled gradient
    by the forward solve's truncation, judged at ``unit-C`` x the computed
    first-order prediction (:func:`truncation_prediction`) + rounding, with the
    atol 1e-5 reported for them (seed 1: pair phantom 1.31e-5, predicted 1.33e-5)."""
    f, x, scale = _unit_problem(ctx)
    pair = PairMLP(seed=_seed(ctx, "pair"))
    z0p = torch.tensor([[0.2, 0.3]], dtype=F64)
    kw = {"tol": 1e-8, "max_steps": 500}
    c, ulps = tol("REV-EXACT", "unit-C"), tol("REV-EXACT", "round-ulps")
    cases = {}

    def versus_unrolled(name, fn, solver, grad, z0, allowed):
        ref, _ = loss_grads(fn, solver, Unrolled(), x, z0, **kw)
        got, st = loss_grads(fn, solver, grad, x, z0, **kw)
        lim, pred = allowed(fn, z0, ref, st)
        cases[name] = {
            "abs": float((got - ref).abs().max()),
            "allowed": lim,
            "predicted": pred,
        }
        if st.get("reconstruction_error") is not None:
            cases[name]["reconstruction_error"] = float(
                st["reconstruction_error"].max()
            )

    def reversible_allowed(beta):
        def allowed(fn, z0, ref, st):
            n = int(st["nstep"].max()) or 1
            start = torch.zeros(x.shape[0], 1, dtype=F64) if z0 is None else z0
            log_a = log_products(inverse_jacobian_norms(fn, x, beta, start, n))
            scale_ = max(1.0, float(ref.abs().max()))
            floor = ulps * EPS64 * (n + 1) * scale_
            # the claim's E-UNIT tolerance (the authors' atol) and the rounding
            # model both bind the exact gradient: the stricter one is judged
            return min(UNIT_ATOL, floor + recon_bound(log_a[-1]) * scale_), 0.0

        return allowed

    def approx_allowed(beta, **extra):
        def allowed(fn, z0, ref, st):
            pred = truncation_prediction(fn, x, beta, z0, **kw, **extra)
            k = extra.get("phantom", (0, 0))[0]
            return unit_tolerance(pred, ref, k, c=c, ulps=ulps), pred["total"]

        return allowed

    for fn, z0, tag in ((f, None, "mlp"), (pair, z0p, "pair")):
        for beta in (0.8, 1.2):
            versus_unrolled(
                f"{tag} reversible beta={beta}",
                fn,
                Reversible(beta),
                # measure, do not warn: the reconstruction error is recorded below
                _rev_plain(),
                z0,
                reversible_allowed(beta),
            )
        for beta, solver in ((1.0, Picard()), (0.8, Relaxed(0.8))):
            versus_unrolled(
                f"{tag} implicit {solver}",
                fn,
                solver,
                ImplicitIFT(tol=1e-8, max_steps=500),
                z0,
                approx_allowed(beta, adjoint_tol=1e-8),
            )
        z0_ph = None if z0 is None else torch.zeros_like(z0)
        versus_unrolled(
            f"{tag} phantom",
            fn,
            Relaxed(0.8),
            Phantom(k=50, lam=0.5),
            z0_ph,
            approx_allowed(0.8, phantom=(50, 0.5)),
        )
    worst = min(1 - e["abs"] / e["allowed"] for e in cases.values())
    over = [
        f"{k}: |g - g_unrolled| {e['abs']:.3g} > {e['allowed']:.3g} "
        f"(predicted {e['predicted']:.3g})"
        for k, e in cases.items()
        if e["abs"] > e["allowed"]
    ]
    rev_worst = max(e["abs"] for k, e in cases.items() if "reversible" in k)
    return judged(
        worst >= 0,
        measured=max(e["abs"] for e in cases.values()),
        worst_margin=worst,
        tolerance=max(e["allowed"] for e in cases.values()),
        instances=len(cases),
        reason="; ".join(over),
        details={
            "margin": "min over methods of 1 - |g - g_unrolled|_inf / allowed "
            "(reversible: rounding + C eps A_N; implicit, phantom: unit-C x the "
            "predicted truncation + rounding)",
            "cases": cases,
            "reversible_max_abs_err": rev_worst,
            "authors_atol_1e-5_exceeded": [
                k for k, e in cases.items() if e["abs"] > 1e-5
            ],
            "last_layer_scale": scale,
        },
    )


@check("REV-EXACT", part="toy", kind="property")
def rev_exact_toy(ctx: Context) -> CheckResult:
    """REV-EXACT (E-TOY, amended): the reversible adjoint against stored-trajectory
    backprop of the N-step map (not converged: tol = 0), float64, L in {0.5, 0.9},
    beta in {0.5, 0.8, 1.2}: rel <= 1e-8 for N <= 10 and rel <= C eps64 A_N
    (C = 100, A_N the computed product of inverse-step Jacobian norms along the
    trajectory) for every N <= 30. float32 reported only.

    Judged as the catalogue states it: C eps64 A_N at every N <= 30 *and* the fixed
    rel <= 1e-8 at N <= 10. The fixed 1e-8 has no rounding model, and it fails at
    seed 12 (L = 0.9, beta = 1.2, N = 10: rel 1.54e-8 while C eps A_N = 7.0): that
    is an honest ``fail`` of the claim as written, reported with the measurement,
    never hidden by judging only the rounding-model part."""
    ns = range(1, EXACT_MAX_N + 1) if ctx.full else (1, 2, 5, 10, 15, 20, 25, 30)
    seeds = range(3 if ctx.full else 1)
    margins, growth, f32 = [], {}, {}
    tightest = (0.0, "")
    for s in seeds:
        seed = _seed(ctx, f"exact-toy-{s}")
        g = torch.Generator().manual_seed(seed)
        for lip in (0.5, 0.9):
            for dtype in (torch.float64, torch.float32):
                f = TanhMap(16, 8, lip, seed=seed, dtype=dtype)
                x = torch.randn(4, 8, generator=g, dtype=F64).to(dtype)
                z0 = torch.zeros(4, 16, dtype=dtype)
                for beta in (0.5, 0.8, 1.2):
                    log_a = (
                        log_products(
                            inverse_jacobian_norms(f, x, beta, z0, max(ns))
                        )
                        if dtype == torch.float64
                        else None
                    )
                    for nn_ in ns:
                        if dtype == torch.float32 and nn_ > 10:
                            continue
                        kw = {"tol": 0.0, "max_steps": nn_, "loss": _toy_loss}
                        ref, _ = loss_grads(
                            f, Reversible(beta), Unrolled(), x, z0, **kw
                        )
                        got, st = loss_grads(
                            f, Reversible(beta), _rev_plain(), x, z0, **kw
                        )
                        err = _rel(got, ref)
                        key = f"seed={s} L={lip} beta={beta} N={nn_}"
                        if dtype == torch.float32:
                            f32[key] = err
                            continue
                        bound = recon_bound(log_a[nn_ - 1])
                        margins.append(tol_margin(err, bound))
                        ratio = err / bound
                        if ratio >= tightest[0]:
                            tightest = (ratio, key)
                        growth[key] = {
                            "rel_err": err,
                            "log10_A_N": log_a[nn_ - 1],
                            "bound_C_eps_A_N": bound,
                            "recon_err": float(st["reconstruction_error"].max()),
                        }
    over = [
        f"{k}: rel {v['rel_err']:.3g} > C eps A_N = {v['bound_C_eps_A_N']:.3g}"
        for k, v in growth.items()
        if v["rel_err"] > v["bound_C_eps_A_N"]
    ]
    short = {
        k: v["rel_err"]
        for k, v in growth.items()
        if int(k.split("N=")[1]) <= EXACT_TIGHT_N
    }
    over_fixed = {k: e for k, e in short.items() if e > EXACT_TIGHT_REL}
    over += [
        f"{k}: rel {e:.3g} > the claim's fixed {EXACT_TIGHT_REL:g} at N <= "
        f"{EXACT_TIGHT_N} (C eps A_N = {growth[k]['bound_C_eps_A_N']:.3g}: the "
        "fixed tolerance has no rounding model)"
        for k, e in over_fixed.items()
    ]
    margins += [tol_margin(e, EXACT_TIGHT_REL) for e in short.values()]
    worst = min(margins)
    figs = []
    if ctx.figures_dir is not None:
        fig_path = _growth_figure(ctx.figure_path("rev-exact-growth"), growth)
        figs = [fig_path] if fig_path else []
    return judged(
        worst >= 0,
        figures=figs,
        measured=max(v["rel_err"] for v in growth.values()),
        worst_margin=worst,
        tolerance=growth[tightest[1]]["bound_C_eps_A_N"] if tightest[1] else 0.0,
        instances=len(growth),
        ran={"max_N": max(ns)},
        reason="; ".join(over),
        details={
            "margin": "min of 1 - rel_err/(C eps64 A_N) over N <= 30 and of "
            "1 - rel_err/1e-8 over N <= 10 (float64)",
            "over_1e-8_at_N_le_10": over_fixed,
            "max_rel_err_N_le_10": max(
                v["rel_err"]
                for k, v in growth.items()
                if int(k.split("N=")[1]) <= EXACT_TIGHT_N
            ),
            "C": EXACT_C,
            "tightest_err_over_bound": {"ratio": tightest[0], "at": tightest[1]},
            "float64": growth,
            "float32_rel_err_report": f32,
        },
    )


@style()
def _growth_figure(path, growth: dict):
    """REV-EXACT: the gradient error and the bound C eps64 A_N against N (log axis),
    one colour per (L, beta), seed 0."""
    fig, axes = figure(1, 1, size=(5.0, 3.8))
    ax = axes[0, 0]
    cases = sorted(
        {k.split(" N=")[0] for k in growth if k.startswith("seed=0 ")}
    )
    for i, case in enumerate(cases):
        rows = sorted(
            (int(k.split("N=")[1]), v)
            for k, v in growth.items()
            if k.split(" N=")[0] == case
        )
        n = [r[0] for r in rows]
        err = [max(r[1]["rel_err"], 1e-17) for r in rows]
        ax.semilogy(n, err, "o-", color=f"C{i}", ms=3, label=case[7:] + " error")
        theory(ax, n, [r[1]["bound_C_eps_A_N"] for r in rows], color=f"C{i}")
    ax.set_xlabel("N (reversible steps)")
    ax.set_ylabel("relative gradient error")
    ax.set_title("REV-EXACT: error (markers) and C eps A_N (dashed)", fontsize=9)
    ax.legend(fontsize=6)
    return save(fig, path)


@check("REV-EXACT", part="stored", kind="property")
def rev_exact_stored(ctx: Context) -> CheckResult:
    """REV-EXACT (recursion): the adjoint recursion of docs/theory/reversible.md run on
    the stored states
    equals autograd through the unrolled loop to rel <= 1e-12, for every N (here up to
    40) and beta, converged or not."""
    ns = (1, 5, 20, 40, 80) if ctx.full else (1, 5, 20, 40)
    seed = _seed(ctx, "exact-stored")
    g = torch.Generator().manual_seed(seed)
    worst, errs = math.inf, {}
    for lip in (0.5, 0.9):
        f = TanhMap(16, 8, lip, seed=seed)
        x = torch.randn(4, 8, generator=g, dtype=F64)
        z0 = torch.zeros(4, 16, dtype=F64)
        for beta in (0.3, 0.8, 1.2, 1.7):
            for nn_ in ns:
                kw = {"tol": 0.0, "max_steps": nn_, "loss": _toy_loss}
                ref, _ = loss_grads(f, Reversible(beta), Unrolled(), x, z0, **kw)
                got, _ = loss_grads(
                    f,
                    Reversible(beta),
                    ReversibleExact(
                        recon_threshold=None,
                        store_trajectory=True,
                        use_stored_states=True,
                    ),
                    x,
                    z0,
                    **kw,
                )
                err = _rel(got, ref)
                errs[f"L={lip} beta={beta} N={nn_}"] = err
                worst = min(worst, 1 - err / 1e-12)
    return judged(
        worst >= 0,
        measured=max(errs.values()),
        worst_margin=worst,
        tolerance=1e-12,
        instances=len(errs),
        details={"margin": "1 - rel_err/1e-12", "rel_err": errs},
    )

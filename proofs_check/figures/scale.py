"""P-SCALE figures: rate-tightness histogram, worst conditioning instance, drift per
dtype (from the arrays and replays of the batched engine's runs)."""

from __future__ import annotations

from pathlib import Path

from . import THEORY, figure, save, style, theory, theory_vline


@style()
def scale_rate_histogram(arrays: dict, path: Path | None) -> str | None:
    """Histogram over instances of measured rate / bound rate (SCALE-RATE).

    GF: kappa_hat / kappa at each instance's last judged time; GD: the log-contraction
    ratio ln(R_K / R0) / (K ln(1 - rho)). The bound corresponds to ratio 1 (dashed).
    """
    import numpy as np

    fig, axes = figure()
    ax = axes[0, 0]
    series = [
        (r"gradient flow (RK4): $\hat\kappa / \kappa$", arrays["gf_rate_ratio_final"]),
        ("gradient descent: log-contraction / bound", arrays["gd_rate_ratio_final"]),
    ]
    vals = np.concatenate([v[np.isfinite(v) & (v > 0)] for _, v in series])
    lo, hi = min(0.9, float(vals.min())), float(vals.max()) * 1.1
    bins = np.logspace(np.log10(lo), np.log10(hi), 50)
    for label, v in series:
        v = v[np.isfinite(v) & (v > 0)]
        ax.hist(
            v, bins=bins, histtype="step", linewidth=1.4, label=f"{label} ({v.size})"
        )
    theory_vline(ax, 1.0, label="bound (ratio 1)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured rate / bound rate")
    ax.set_ylabel("instances")
    ax.set_title(f"SCALE-RATE: tightness over {arrays['index'].size} instances")
    ax.legend(fontsize=7)
    return save(fig, path)


@style()
def scale_worst_sigma(rp, path: Path | None) -> str | None:
    """The worst-margin instance's sigma_min(I - W(t))^2 against its bounds
    (SCALE-COND), from its replay in the single-instance engine."""
    import numpy as np

    fig, axes = figure()
    ax = axes[0, 0]
    t = np.asarray(rp.single.times)
    x_label = "GD step $k$" if rp.method == "gd" else "flow time $t$"
    if rp.method == "gd":
        t = np.asarray(rp.single.steps)
    ax.plot(t, rp.sigma_min2, label=r"$\sigma_{\min}(I - W)^2$ (replayed)", color="C0")
    ax.plot(
        t,
        rp.lam_min_C0 / (1.0 + rp.m_norm2),
        label=r"$\lambda_{\min}(C_0)/(1+\|M(t)\|^2)$",
        color="C1",
        linestyle=":",
    )
    theory(
        ax,
        t,
        np.full_like(t, rp.cond_lower, dtype=float),
        label=r"$\lambda_{\min}(C_0)/(1+\bar M^2)$ (bound)",
    )
    ax.set_yscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(r"$\sigma_{\min}(I - W)^2$")
    ax.set_title(f"SCALE-COND worst instance {rp.instance_id} ({rp.method})")
    ax.legend(fontsize=7)
    return save(fig, path)


@style()
def scale_drift_vs_dtype(drifts: dict, path: Path | None) -> str | None:
    """Worst (and median) conservation drift per dtype and integrator (P-SCALE)."""
    import numpy as np

    fig, axes = figure()
    ax = axes[0, 0]
    dtypes = list(drifts)
    integrators = list(next(iter(drifts.values())))
    width = 0.8 / len(integrators)
    x = np.arange(len(dtypes))
    for j, integ in enumerate(integrators):
        worst = [drifts[d][integ]["max"] for d in dtypes]
        med = [drifts[d][integ]["median"] for d in dtypes]
        ax.bar(x + j * width, worst, width, label=f"{integ}: worst", color=f"C{j}")
        ax.scatter(
            x + j * width,
            med,
            color="black",
            marker="_",
            s=200,
            zorder=3,
            label="median" if j == 0 else None,
        )
    for d, eps in (("float64", 2.0**-52), ("float32", 2.0**-23)):
        if d in dtypes:
            i = dtypes.index(d)
            ax.hlines(eps, i - 0.2, i + 0.8, **THEORY)
    ax.set_xticks(x + width * (len(integrators) - 1) / 2, dtypes)
    ax.set_yscale("log")
    ax.set_ylabel(r"$\max_t \|C(t) - C_0\|_F / \max(1, \|C_0\|_F)$")
    ax.set_title("Conservation drift vs dtype (dashed: machine eps)")
    ax.legend(fontsize=7)
    return save(fig, path)

"""Figures of the momentum and Adam claims (LIN-MOM-SPHERE, LIN-ADAM-COND):
measured values in colour, theory dashed black (the package style)."""

from __future__ import annotations

import numpy as np

from . import THEORY, figure, save, style


@style()
def draw_drift_scaling(rows: list[dict], path):
    """Left: final drift Q_K - Q_0 against eta (log-log), one colour per mu, heavy ball
    (circles) and Nesterov (squares), theory eta c(mu) (R_0 - R_K) dashed. Right: the
    same drift over eta (R_0 - R_K) against 1 - mu (log-log), theory c(mu) dashed."""
    fig, axes = figure(1, 2, size=(4.8, 3.8))
    mus = sorted({r["mu"] for r in rows})
    marks = {"heavy-ball": "o", "nesterov": "s"}
    ax = axes[0, 0]
    for i, mu in enumerate(mus):
        for method, mk in marks.items():
            ser = sorted(
                (r for r in rows if r["mu"] == mu and r["method"] == method),
                key=lambda r: r["eta"],
            )
            e = np.array([r["eta"] for r in ser])
            ax.loglog(e, [r["drift"] for r in ser], mk, ms=4, color=f"C{i}",
                      mfc="none" if method == "nesterov" else None,
                      label=f"{method}, mu={mu:g}")
            ax.loglog(e, [r["predicted"] for r in ser], **{**THEORY, "linewidth": 0.9})
    ax.plot([], [], label=r"theory $\eta\,c(\mu)(R_0-R_K)$", **THEORY)
    ax.set_xlabel(r"step size $\eta$")
    ax.set_ylabel(r"final drift $Q_K-Q_0$")
    ax.set_title("P-LEG: the sphere grows like $\\eta$", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    ax = axes[0, 1]
    eta_min = min(r["eta"] for r in rows)
    grid = np.linspace(0.0, 0.95, 60)
    for method, mk in marks.items():
        ser = sorted(
            (r for r in rows if r["eta"] == eta_min and r["method"] == method),
            key=lambda r: r["mu"],
        )
        one_minus = np.array([1.0 - r["mu"] for r in ser])
        meas = [r["drift"] / r["predicted"] * r["constant"] for r in ser]
        ax.loglog(one_minus, meas, mk, ms=5, color="C0" if method == "heavy-ball"
                  else "C3", mfc="none" if method == "nesterov" else None,
                  label=f"{method}, eta={eta_min:g}")
        ax.loglog(1.0 - grid, [_c(method, m) for m in grid],  # c(mu) of the docs
                  **{**THEORY, "linestyle": "--" if method == "heavy-ball" else ":"},
                  label="(1+mu)/(1-mu)^2" if method == "heavy-ball"
                  else "(1-mu+2mu^2)/(1-mu)^2")
    ax.set_xlabel(r"$1-\mu$")
    ax.set_ylabel(r"$(Q_K-Q_0)\,/\,(\eta\,(R_0-R_K))$")
    ax.set_title("drift constant against momentum", fontsize=9)
    ax.legend(fontsize=7)
    return save(fig, path)


def _c(method: str, mu: float) -> float:
    """The eta -> 0 drift constant c(mu) of docs/theory/momentum.md."""
    if method == "heavy-ball":
        return (1.0 + mu) / (1.0 - mu) ** 2
    return (1.0 - mu + 2.0 * mu**2) / (1.0 - mu) ** 2


@style()
def draw_adam_conditioning(runs: dict, path, case: str = ""):
    """Distance to the singular set over the LIN-COND bound (left) and Q_k / Q_0
    (right, scalar: Q; matrix: tr C) along training, per optimiser, for one instance;
    the bound (ratio 1) dashed."""
    fig, axes = figure(1, 2, size=(4.6, 3.6))
    for i, (name, rec) in enumerate(runs.items()):
        k = np.asarray(rec["steps"])
        axes[0, 0].plot(k, rec["scale_over_bound"], color=f"C{i}", label=name)
        axes[0, 1].plot(k, rec["q_over_q0"], color=f"C{i}", label=name)
    axes[0, 0].axhline(1.0, label="LIN-COND bound (GD, GF)", **THEORY)
    axes[0, 0].set_xscale("symlog", linthresh=10)
    axes[0, 0].set_xlabel("step")
    axes[0, 0].set_ylabel("distance to singular set / LIN-COND bound")
    axes[0, 0].set_title(f"{case}: |1-v| (matrix: sigma_min(I-W))", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].axhline(1.0, label="conserved by GF", **THEORY)
    axes[0, 1].set_xscale("symlog", linthresh=10)
    axes[0, 1].set_xlabel("step")
    axes[0, 1].set_ylabel(r"$Q_k/Q_0$")
    axes[0, 1].set_title("the conserved quantity drifts under Adam", fontsize=9)
    axes[0, 1].legend(fontsize=7)
    for ax in axes[0]:
        ax.set_xlim(0, None)
    return save(fig, path)

"""Panels of the linear DEQ gradient-descent claims (LIN-GD-*, REPRO-LEG): risk,
dynamics and distance of one GD run, and the P-SWEEP figure, shared by the LIN-GD
checks and the P-LEG / P-SWEEP protocols (:mod:`proofs_check.protocols.leg_linear`)."""

from __future__ import annotations

import math

import numpy as np

from dynamics.instances.linear import leg_model
from dynamics.models.linear_deq import LinearDEQ

from ..cases.lin_gd import GDRun, analyse_gd
from . import figure, save, style, theory, theory_hline


def draw_risk(
    ax,
    run: GDRun,
    q: float | None,
    window: int | None = None,
    label: str = "GD risk",
    bound_label: str = "R6 bound",
):
    """Risk (log) against updates; the R6 bound q^k R_0 dashed black where it holds."""
    K = len(run.risks) if window is None else min(window + 1, len(run.risks))
    k = np.arange(K)
    ax.semilogy(k, run.risks[:K], color="C0", label=label)
    if q is not None:
        upto = min(run.prefix, K - 1) if q is not None else K - 1
        kk = np.arange(upto + 1)
        R0 = run.risks[0] - run.model.min_risk
        theory(ax, kk, run.model.min_risk + R0 * q**kk, label=bound_label)
        ax.set_yscale("log")
    ax.set_xlabel("update k")
    ax.set_ylabel(r"train risk $\widehat R(\theta_k)$")
    ax.legend(fontsize=8)


def draw_dynamics(
    ax,
    runs,
    beta_star: float,
    window: int | None = None,
    colorbar: bool = True,
    labels=None,
):
    """(theta_1, theta_2) iterates coloured by update, with the zero-risk line
    theta_1 = beta*(1 - theta_2), the singular point (0, 1) and, dashed black, the
    initial circle ||theta - (0,1)|| = r_0 that gradient flow would stay on (R2)."""
    sc = None
    pts = []
    for i, run in enumerate(runs):
        th = run.thetas if window is None else run.thetas[: window + 1]
        th = th[np.all(np.isfinite(th), axis=1)]
        pts.append(th)
        ax.plot(th[:, 0], th[:, 1], color="0.6", lw=0.6, zorder=1)
        sc = ax.scatter(
            th[:, 0],
            th[:, 1],
            c=np.arange(len(th)),
            cmap="viridis",
            s=9,
            zorder=2,
            label=None if labels is None else labels[i],
        )
        r0 = math.sqrt(LinearDEQ.Q(run.theta0))
        ang = np.linspace(0, 2 * np.pi, 400)
        theory(
            ax,
            r0 * np.cos(ang),
            1 + r0 * np.sin(ang),
            label="initial circle (GF sphere)" if i == 0 else None,
            linewidth=0.9,
        )
        ax.plot(
            *run.theta0,
            marker="o",
            mfc="none",
            mec="C3",
            ms=7,
            ls="none",
            label="start" if i == 0 else None,
            zorder=3,
        )
    allp = np.vstack([*pts, [[0.0, 1.0]]])  # keep the singular point in view
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    half = 0.5 * max(hi - lo) * 1.2 + 0.05
    mid = 0.5 * (lo + hi)
    xs = np.array([mid[0] - half, mid[0] + half])
    ys = np.array([mid[1] - half, mid[1] + half])
    t2 = np.linspace(ys[0] - 10 * half, ys[1] + 10 * half, 2)
    ax.plot(
        beta_star * (1 - t2),
        t2,
        color="C1",
        lw=1.4,
        label=rf"zero risk $\theta_1={beta_star:g}(1-\theta_2)$",
    )
    ax.plot(
        0,
        1,
        marker="X",
        color="C3",
        ms=9,
        ls="none",
        label="singular point (0, 1)",
        zorder=4,
    )
    ax.set_xlim(*xs)
    ax.set_ylim(*ys)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(r"$\theta_1 = u$")
    ax.set_ylabel(r"$\theta_2 = v$")
    ax.legend(fontsize=7, loc="best")
    if colorbar and sc is not None:
        ax.figure.colorbar(sc, ax=ax, label="update k", shrink=0.85)


def draw_distances(ax, run: GDRun, window: int | None = None, label: str = "GD"):
    """||theta_k - (0,1)|| against updates, with r_0 and, on the prefix where the
    descent inequality held, the R5 bound sqrt(Q_0 + 2 eta (R_0 - R_k)) dashed."""
    K = len(run.thetas) if window is None else min(window + 1, len(run.thetas))
    dist = np.sqrt(run.Q[:K])
    ax.plot(np.arange(K), dist, color="C0", marker=".", ms=3, label=label)
    P = min(run.prefix, K - 1)
    if P > 0:
        kk = np.arange(P + 1)
        bound = np.sqrt(run.Q[0] + 2 * run.eta * (run.risks[0] - run.risks[: P + 1]))
        theory(
            ax,
            kk,
            bound,
            label=r"R5: $\sqrt{Q_0+2\eta(R_0-R_k)}$" + "\n(while descent held)",
        )
    else:
        theory(ax, [], [], label="R5 bound: n/a\n(descent failed at step 0)")
    ax.axhline(dist[0], color="0.4", lw=0.8, ls=":", label=r"$r_0$ (GF)")
    ax.set_xlabel("update k")
    ax.set_ylabel(r"$\|\theta_k-(0,1)\|$")
    ax.legend(fontsize=7, loc="lower right")


def figure_rows(recs: list[dict]) -> list[dict]:
    """The per-seed rows :func:`draw_sweep_figure` draws from P-SWEEP records."""
    return [
        {
            "theta0": r["theta0"],
            "eta": r["eta"],
            "steps": r["steps"],
            "seed": r["seed"],
            "crossed_v_eq_1": r["sign_flip"],
            "failed": r["failed"],
        }
        for r in recs
    ]


@style()
def draw_sweep_figure(path, rows, highlight: int = 6):
    """P-SWEEP: (theta_1, theta_2) iterates of every seed (crossing/failing seeds in
    red, the illustration seed in green), a zoom on (0, 1), and the distance to (0, 1)
    per seed."""
    model = leg_model()
    fig, axes = figure(1, 3, size=(4.3, 4.0))
    ax, zx, bx = axes[0]
    for r in rows:
        run = analyse_gd(model, r["theta0"], r["eta"], r["steps"])
        th = run.thetas[np.all(np.isfinite(run.thetas), axis=1)]
        bad = r["crossed_v_eq_1"] or r["failed"]
        hl = r["seed"] == highlight
        col = "C2" if hl else ("C3" if bad else "C0")
        lw, z = (2.2, 5) if hl else (0.7, 2)
        lab = f"seed {highlight}" if hl else None
        for a in (ax, zx):
            a.plot(th[:, 0], th[:, 1], color=col, lw=lw, alpha=0.9, zorder=z, label=lab)
            a.plot(*th[0], "o", color=col, ms=3, zorder=z)
        dist = np.sqrt(run.Q[: len(th)])
        bx.semilogy(np.arange(len(th)), dist, color=col, lw=lw, zorder=z, label=lab)
    t2 = np.linspace(-1.5, 3.5, 2)
    for a in (ax, zx):
        a.plot(
            2 * (1 - t2),
            t2,
            color="C1",
            lw=1.2,
            label=r"zero risk $\theta_1=2(1-\theta_2)$",
        )
        theory_hline(a, 1.0, label="singular line v = 1", linewidth=0.9)
        a.plot(0, 1, "X", color="k", ms=8, label="(0, 1)", zorder=6)
        a.set_xlabel(r"$\theta_1$")
        a.set_ylabel(r"$\theta_2$")
    ax.plot([], [], color="C3", label="crossed v=1 or failed")
    ax.plot([], [], color="C0", label="converged")
    ax.set_xlim(-3, 3)
    ax.set_ylim(-1.5, 3.5)
    ax.set_title(f"P-SWEEP seeds 0-19, eta = {rows[0]['eta']:g}", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    zx.set_xlim(-0.45, 0.45)
    zx.set_ylim(0.55, 1.45)
    zx.set_aspect("equal")
    zx.set_title("zoom near the singular point (0, 1)", fontsize=9)
    bx.set_xscale("symlog", linthresh=10)
    bx.set_xlabel("update k (linear to 10, then log)")
    bx.set_ylabel(r"$\|\theta_k-(0,1)\|$ (non-decreasing, R5)")
    bx.legend(fontsize=7)
    return save(fig, path)

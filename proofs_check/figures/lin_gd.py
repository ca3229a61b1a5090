"""Panels of the linear DEQ gradient-descent claims (LIN-GD-*, REPRO-LEG): risk,
dynamics and distance of one GD run, shared by the LIN-GD checks and the P-LEG /
P-SWEEP protocols (:mod:`proofs_check.protocols.leg_linear`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from dynamics.models.linear_deq import LinearDEQ

from . import theory

if TYPE_CHECKING:
    from ..checks._lin_gd_common import GDRun


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

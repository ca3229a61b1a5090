"""Panels shared by several figure families: a palette, a mean curve with its
min-max band, a (theta_1, theta_2) trajectory coloured by update."""

from __future__ import annotations

import numpy as np

from ..sim_tools import subsample

COLORS = ("#111111", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00")


def seeds_caption(n: int) -> str:
    """``mean over N seeds, min-max band``, or ``1 seed`` (no band to speak of)."""
    return "1 seed" if n == 1 else f"mean over {n} seeds, min-max band"


def band_plot(
    ax, x, curves: np.ndarray, *, label: str, color, logy: bool = True, **line
):
    """Mean over rows with a min-max band (a single row: the curve, no band);
    ``line``: extra keywords of the mean curve (e.g. ``lw``, ``alpha``)."""
    curves = np.asarray(curves, float)
    ax.plot(
        x, curves.mean(axis=0), **{"color": color, "label": label, "lw": 1.4, **line}
    )
    if curves.shape[0] > 1:
        ax.fill_between(
            x, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.18, lw=0
        )
    if logy:
        ax.set_yscale("log")


def trajectory_plot(ax, thetas: np.ndarray, *, every: int = 1, cmap: str = "viridis"):
    """(theta_1, theta_2) path coloured by update (grey line under coloured points)."""
    ax.plot(thetas[:, 0], thetas[:, 1], color="0.6", lw=0.7, zorder=1)
    idx = subsample(len(thetas), max(1, every))
    sc = ax.scatter(
        thetas[idx, 0], thetas[idx, 1], c=idx, cmap=cmap, s=6, zorder=2, linewidths=0
    )
    return sc

"""One figure style: data in colour, theory dashed black (Agg backend, no LaTeX)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update(
    {
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "font.size": 10,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "text.usetex": False,
    }
)

THEORY = {"color": "black", "linestyle": "--", "linewidth": 1.3}


def figure(ncols: int = 1, nrows: int = 1, size=(5.0, 3.6)):
    """A new figure with ``nrows x ncols`` axes (always a 2-D array of axes)."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False
    )
    return fig, axes


def curve_with_bound(
    ax,
    x,
    y,
    bound=None,
    *,
    label: str,
    bound_label: str = "bound",
    logy: bool = True,
    color=None,
    **kw,
):
    """Draw a measured curve and, dashed black, the theoretical bound beside it."""
    ax.plot(x, y, label=label, color=color, **kw)
    if bound is not None:
        ax.plot(x, bound, label=bound_label, **THEORY)
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)


def save(fig, path: Path | None) -> str | None:
    """Save and close ``fig``; returns the path as a string (None when path is None)."""
    if path is None:
        plt.close(fig)
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)

"""Every figure of the project, drawn from protocol / check / training data.

One style: measurements in colour (solid), theory dashed black. The style is applied
by :func:`style` (a ``matplotlib.rc_context``, usable as a context manager or as a
decorator on a drawing function), never by changing matplotlib's global state at
import. Figures are :class:`matplotlib.figure.Figure` objects rendered by Agg when
saved, so no pyplot backend is chosen or switched.

Families: :mod:`.scale` (P-SCALE), :mod:`.training` (``deq-dynamics train``); the
drawing helpers shared by the linear-DEQ checks are in :mod:`.lin_gd`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

#: rcParams of every figure (applied only inside :func:`style`).
RC = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "text.usetex": False,
}

#: Line style of a theoretical curve, bound or reference value.
THEORY = {"color": "black", "linestyle": "--", "linewidth": 1.3}


@contextlib.contextmanager
def style():
    """Apply the figure style for the duration of a ``with`` block or a decorated
    drawing function (fonts and grids are fixed when artists are created, dpi when
    saved, so both must happen inside)."""
    with matplotlib.rc_context(RC):
        yield


def figure(nrows: int = 1, ncols: int = 1, size=(5.0, 3.6)):
    """A new figure with ``nrows x ncols`` axes (matplotlib's order; always a 2-D
    array of axes); ``size`` is the size of one panel in inches."""
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def theory(ax, x, y, label: str | None = None, **kw):
    """Draw a theoretical curve (dashed black) on ``ax``."""
    return ax.plot(x, y, label=label, **{**THEORY, **kw})


def theory_hline(ax, y, label: str | None = None, **kw):
    """A theoretical constant (dashed black horizontal line)."""
    return ax.axhline(y, label=label, **{**THEORY, **kw})


def theory_vline(ax, x, label: str | None = None, **kw):
    """A theoretical abscissa (dashed black vertical line)."""
    return ax.axvline(x, label=label, **{**THEORY, **kw})


def save(fig, path: Path | None) -> str | None:
    """Lay out and save ``fig``: the PNG at ``path`` and a vector PDF beside it (same
    stem) for papers; returns the PNG path as a string (None, and nothing written,
    when path is None)."""
    if path is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # through a temporary file: a crash mid-save leaves the previous figure
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        with style():
            fig.tight_layout()
            fig.savefig(tmp, format=path.suffix.lstrip(".") or None)
            pdf = tmp.with_suffix(".pdf")
            fig.savefig(pdf, format="pdf")
        os.replace(tmp, path)
        os.replace(pdf, path.with_suffix(".pdf"))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)


from .panels import (  # noqa: E402  (the panels use THEORY / style above)
    COLORS as COLORS,
    band_plot as band_plot,
    seeds_caption as seeds_caption,
    trajectory_plot as trajectory_plot,
)

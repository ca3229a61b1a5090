"""Figure of ``deq-dynamics diagnose --along-training``: cosine of each gradient
method with the exact gradient against training step."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from . import figure, save, style, theory_hline

#: Marker per method family, so that lines stay distinguishable in grey scale.
MARKERS = {
    "ift": "s",
    "jfb": "X",
    "neumann": "o",
    "damped": "D",
    "phantom": "^",
    "reversible": "v",
}


def _marker(label: str) -> str:
    return next((m for k, m in MARKERS.items() if label.startswith(k)), "o")


@style()
def cosine_vs_step(
    records: list[dict], path: Path | None, title: str = ""
) -> str | None:
    """Left: cosine per method against training step (exact = 1, dashed). Right:
    1 - cosine on a log axis (the exact methods sit at the rounding floor)."""
    fig, axes = figure(ncols=2, size=(5.4, 3.9))
    series: dict[str, tuple[list, list]] = {}
    for r in records:
        d = r.get("diagnosis")
        if not d:
            continue
        for m in d["methods"]:
            xs, ys = series.setdefault(m["label"], ([], []))
            xs.append(r["step"])
            ys.append(m["cosine"])
    for label, (xs, ys) in series.items():
        for ax, yy in (
            (axes[0][0], ys),
            (
                axes[0][1],
                [max(1.0 - y, 1e-16) if math.isfinite(y) else math.nan for y in ys],
            ),
        ):
            ax.plot(xs, yy, marker=_marker(label), markersize=4, label=label)
    theory_hline(axes[0][0], 1.0, label="exact gradient")
    axes[0][0].set_ylabel(r"$\cos\angle(g_{\rm method},\ g_{\rm IFT})$")
    axes[0][1].set_ylabel(r"$1 - \cos\angle(g_{\rm method},\ g_{\rm IFT})$")
    axes[0][1].set_yscale("log")
    for ax in axes[0]:
        ax.set_xlabel("training step")
    # on the cosine panel, where the curves leave most of the area empty
    axes[0][0].legend(fontsize=7, ncol=2, loc="best")
    if title:
        fig.suptitle(textwrap.shorten(title, width=150, placeholder=" ..."), fontsize=8)
    return save(fig, path)

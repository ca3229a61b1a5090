"""The figure module (proofs_check.figures): style applied by context, not at import;
matplotlib's (nrows, ncols) order; theory drawn dashed black beside the measurement."""

from __future__ import annotations

import importlib

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgba

from proofs_check import figures


def test_import_leaves_global_state_alone():
    """Importing the module changes neither the backend nor any rcParam."""
    before = dict(matplotlib.rcParams)
    backend = matplotlib.get_backend()
    importlib.reload(figures)
    after = dict(matplotlib.rcParams)
    assert matplotlib.get_backend() == backend
    assert {k for k in before if before[k] != after[k]} == set()


def test_style_is_applied_only_inside_the_context():
    """Inside style() the rcParams are the figure style's; outside they are restored."""
    outside = {k: matplotlib.rcParams[k] for k in figures.RC}
    with figures.style():
        for key, value in figures.RC.items():
            assert matplotlib.rcParams[key] == value, key
    assert {k: matplotlib.rcParams[k] for k in figures.RC} == outside


def test_figure_uses_matplotlib_order_and_panel_size():
    """figure(nrows, ncols): axes array of that shape, figsize = panel size x counts."""
    fig, axes = figures.figure(2, 3, size=(4.0, 2.5))
    assert axes.shape == (2, 3)
    assert tuple(fig.get_size_inches()) == pytest.approx((12.0, 5.0))
    # row-major: the first row's panels share a top edge above the second row's
    top = [ax.get_position().y0 for ax in axes[:, 0]]
    assert top[0] > top[1]


def test_theory_helpers_draw_dashed_black_beside_the_measurement():
    """A measurement keeps its solid colour; theory(), theory_hline() and
    theory_vline() draw dashed black at THEORY's width (overridable per call)."""
    with figures.style():
        fig, axes = figures.figure()
        ax = axes[0, 0]
        x = np.arange(1.0, 6.0)
        ax.plot(x, 2.0 * x, color="C0", label="measured")
        figures.theory(ax, x, x**2, label="theory")
        figures.theory_hline(ax, 3.0, linewidth=0.9)
        figures.theory_vline(ax, 2.0)
    measured, curve, hline, vline = ax.get_lines()
    assert measured.get_linestyle() == "-"
    for line in (curve, hline, vline):
        assert line.get_linestyle() == "--"
        assert to_rgba(line.get_color()) == to_rgba("black")
    assert curve.get_linewidth() == figures.THEORY["linewidth"]
    assert hline.get_linewidth() == 0.9
    np.testing.assert_array_equal(curve.get_ydata(), x**2)
    assert curve.get_label() == "theory"


def test_save_writes_png_at_style_dpi(tmp_path):
    """save() writes a PNG at savefig.dpi = 150: pixel size = inches x 150."""
    from PIL import Image

    fig, _ = figures.figure(1, 2, size=(2.0, 1.0))
    path = figures.save(fig, tmp_path / "sub" / "f.png")
    assert path == str(tmp_path / "sub" / "f.png")
    # A vector copy for papers beside the PNG.
    assert (tmp_path / "sub" / "f.pdf").read_bytes()[:4] == b"%PDF"
    with Image.open(path) as im:
        assert im.size == (600, 150)
    assert figures.save(fig, None) is None

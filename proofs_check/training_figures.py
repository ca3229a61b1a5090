"""Figures of the training experiments (``deq-dynamics train``), drawn from the
summary that :func:`dynamics.training.trainer.run_task` writes."""

from __future__ import annotations

import math
from pathlib import Path

from .plotting import figure, save

#: One colour and marker per arm, fixed across figures.
STYLE = {
    "revdeq": ("tab:red", "o"),
    "deq_ift": ("tab:blue", "s"),
    "deq_ift_jr": ("tab:cyan", "D"),
    "phantom": ("tab:purple", "^"),
    "tied": ("tab:green", "v"),
    "untied": ("tab:olive", "P"),
    "jfb": ("tab:brown", "X"),
}
#: Gradient errors below this are drawn on it (an exact zero has no place on a log
#: axis).
FLOOR = 1e-17


def _label(summary, name):
    return summary["arms"][name]["label"]


def metric_vs_cost(summary: dict, path: Path | None) -> str | None:
    """Test metric against training wall-clock and against cumulative NFEs."""
    fig, axes = figure(ncols=2, size=(5.2, 3.8))
    m = summary["metric"]
    for name, r in summary["arms"].items():
        color, marker = STYLE.get(name, (None, "o"))
        h = [row for row in r["history"] if math.isfinite(row.get(m, math.nan))]
        for ax, key in zip(axes[0], ("train_time_s", "nfe_total_cum")):
            ax.plot(
                [row[key] for row in h],
                [row[m] for row in h],
                marker=marker,
                color=color,
                label=_label(summary, name),
                markersize=4,
            )
    axes[0][0].set_xlabel("training wall-clock (s)")
    axes[0][1].set_xlabel(
        "cumulative evaluations of f (forward + backward evals + VJPs)"
    )
    axes[0][1].set_xscale("symlog", linthresh=1e2)
    for ax in axes[0]:
        ax.set_ylabel(summary["metric_label"])
    axes[0][0].legend(fontsize=7)
    fig.suptitle(
        f"{summary['task']} ({summary['scale']} scale): {summary['data'][:90]}",
        fontsize=8,
    )
    return save(fig, path)


def gradient_error(summary: dict, path: Path | None) -> str | None:
    """Relative gradient error of each DEQ arm along training, against the exact
    gradient
    of its own forward computation and against the tight-equilibrium IFT gradient."""
    fig, axes = figure(ncols=2, size=(5.2, 3.8))
    any_zero = False
    for name, r in summary["arms"].items():
        h = [row for row in r["history"] if "grad_err_unrolled" in row]
        if not h:
            continue
        color, marker = STYLE.get(name, (None, "o"))
        for ax, key in zip(axes[0], ("grad_err_unrolled", "grad_err_equilibrium")):
            ys = [row.get(key, math.nan) for row in h]
            any_zero |= any(y == 0 for y in ys)
            ax.plot(
                [row["epoch"] for row in h],
                [max(y, FLOOR) for y in ys],
                marker=marker,
                color=color,
                label=_label(summary, name),
                markersize=4,
            )
    titles = (
        "vs exact gradient of the computation run\n(autograd through the same "
        "forward iterations)",
        "vs IFT gradient at a tightly solved equilibrium\n"
        f"(same f; tol {summary['config']['deq']['probe_tol']:.0e})",
    )
    for ax, title in zip(axes[0], titles):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("relative error of the parameter gradient")
        ax.set_title(title, fontsize=8)
        if any_zero:
            ax.axhline(FLOOR, **{"color": "black", "linestyle": "--", "linewidth": 1})
    if any_zero:
        axes[0][0].text(
            0.02,
            0.04,
            f"dashed: exactly 0 (drawn at {FLOOR:.0e})",
            transform=axes[0][0].transAxes,
            fontsize=7,
        )
    axes[0][1].legend(fontsize=7)
    fig.suptitle(
        f"{summary['task']}: gradient error on a fixed probe batch", fontsize=9
    )
    return save(fig, path)


def memory_vs_steps(sweep: dict, task: str, path: Path | None) -> str | None:
    """Bytes saved for backward against the number of solver steps N."""
    fig, axes = figure(size=(5.6, 4.0))
    ax = axes[0][0]
    labels = {
        "revdeq": ("(a) RevDEQ, N steps", "revdeq"),
        "unrolled_reversible": ("same iteration, stored-trajectory backprop", None),
        "tied": ("(d) explicit weight-tied, 1+2N evaluations", "tied"),
        "deq_ift": ("(b) Anderson N steps + IFT", "deq_ift"),
    }
    for key, (label, style) in labels.items():
        ys = sweep.get(key)
        if not ys:
            continue
        color, marker = STYLE.get(style, ("tab:gray", "x"))
        ax.plot(
            sweep["N"], [y / 2**20 for y in ys], marker=marker, color=color, label=label
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("solver steps N")
    ax.set_ylabel("memory saved for backward (MB)")
    ax.set_title(f"{task}: memory of one training step vs N", fontsize=9)
    ax.legend(fontsize=7)
    return save(fig, path)

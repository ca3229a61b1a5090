"""Figures of the training experiments (``deq-dynamics train``), drawn from the
summary that :func:`dynamics.training.trainer.run_task` writes."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from dynamics.training.trainer import reference_converged

from . import figure, save, style, theory_hline

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


@style()
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
    data = textwrap.shorten(summary["data"], width=230, placeholder=" ...")
    fig.suptitle(
        "\n".join(
            textwrap.wrap(
                f"{summary['task']} ({summary['scale']} scale, seed "
                f"{summary['seed']}): {data}",
                width=130,
            )
        ),
        fontsize=7,
    )
    return save(fig, path)


@style()
def gradient_error(summary: dict, path: Path | None) -> str | None:
    """Relative gradient error of each DEQ arm along training, against the exact
    gradient of its own forward computation and against the IFT gradient at a tightly
    solved equilibrium. Where that reference solve did not reach its tolerance the
    marker is hollow: the reference is then not an equilibrium gradient at all."""
    fig, axes = figure(ncols=2, size=(5.2, 3.8))
    zero = {"grad_err_unrolled": False, "grad_err_equilibrium": False}
    any_unconverged = False
    tol = summary["config"]["deq"]["probe_tol"]
    worst_res = 0.0
    for name, r in summary["arms"].items():
        h = [row for row in r["history"] if "grad_err_unrolled" in row]
        if not h:
            continue
        color, marker = STYLE.get(name, (None, "o"))
        xs = [row["epoch"] for row in h]
        for ax, key in zip(axes[0], ("grad_err_unrolled", "grad_err_equilibrium")):
            ys = [max(row.get(key, math.nan), FLOOR) for row in h]
            zero[key] |= any(row.get(key) == 0 for row in h)
            ax.plot(xs, ys, color=color, label=_label(summary, name))
            bad = [not reference_converged(row, tol) for row in h]
            if key == "grad_err_equilibrium" and any(bad):
                any_unconverged = True
                worst_res = max(
                    [worst_res] + [row.get("probe_eq_residual", 0) or 0 for row in h]
                )
            for x, y, b in zip(xs, ys, bad):
                hollow = b and key == "grad_err_equilibrium"
                ax.plot(
                    [x],
                    [y],
                    marker=marker,
                    color=color,
                    markersize=5,
                    markerfacecolor="none" if hollow else color,
                    linestyle="",
                )
    titles = (
        "vs exact gradient of the computation run\n(autograd through the same "
        "forward iterations)",
        "vs IFT gradient at a tightly solved equilibrium\n"
        f"(same f; tol {summary['config']['deq']['probe_tol']:.0e})",
    )
    for ax, title, key in zip(axes[0], titles, zero):
        ax.set_yscale("log")
        ax.set_ylim(FLOOR / 10, 10)  # the same scale in both panels
        ax.set_xlabel("epoch")
        ax.set_ylabel("relative error of the parameter gradient")
        ax.set_title(title, fontsize=8)
        if zero[key]:
            theory_hline(ax, FLOOR, linewidth=1)
            ax.text(
                0.02,
                0.07,
                f"dashed: exactly 0 (drawn at {FLOOR:.0e})",
                transform=ax.transAxes,
                fontsize=7,
            )
    if any_unconverged:
        axes[0][1].text(
            0.02,
            0.1,
            "hollow: the reference solve did not converge (forward\n"
            f"residual up to {worst_res:.1e}, or the adjoint hit its cap):\n"
            "no equilibrium gradient to compare with",
            transform=axes[0][1].transAxes,
            fontsize=7,
        )
    axes[0][1].legend(fontsize=7, loc="center right")
    fig.suptitle(
        f"{summary['task']}: gradient error on a fixed probe batch", fontsize=9
    )
    return save(fig, path)


@style()
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
    for key, (label, arm) in labels.items():
        ys = sweep.get(key)
        if not ys:
            continue
        color, marker = STYLE.get(arm, ("tab:gray", "x"))
        ax.plot(
            sweep["N"], [y / 2**20 for y in ys], marker=marker, color=color, label=label
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("solver steps N")
    ax.set_ylabel("memory saved for backward (MB)")
    ax.set_title(f"{task}: memory of one training step vs N", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return save(fig, path)

"""REPRO-APX, part ``replay``: each written P-APX-LIN run is the method its label
names.

The record of method ``neumann-2`` must be GD with the direction c(v) grad R and
c(v) = 1 - v^2, and likewise for the other labels (§4; the closed forms below are
written from the label, independently of the engine's gradient objects). Each
recorded step theta_{k+1} is recomputed from the recorded theta_k with the model's
exact gradient; a method whose series is one term short, or a record that mixes up
methods, fails here even though its JSON round-trips bit for bit.
"""

from __future__ import annotations

import re

import numpy as np

from dynamics.instances.single_index import APX_LIN_STARTS, apx_lin_model

from ..catalogue import tol
from ..protocols import ProtocolContext
from ..protocols.apx import run_apx_lin
from ..registry import CheckResult, Context, check, judged

#: Steps replayed per run (the first ones, where the risk is far above rounding).
STEPS = 400

#: One GD step recomputed in float64 from the same theta_k: a few ulps x the
#: condition of the closed-form gradient (1/(1 - v)^2 <= 1e2 on these runs).
TOL_STEP = tol("REPRO-APX", "replay")


def factor_from_label(label: str, v: float) -> float:
    """c(v) of the method named ``label`` (exact, jfb, neumann-m, damped-m(lam=l))."""
    if label.startswith("exact") or label in ("implicit", "ift"):
        return 1.0
    if label == "jfb":
        return 1.0 - v
    if m := re.fullmatch(r"neumann-(\d+)", label):
        return 1.0 - v ** int(m.group(1))
    if m := re.fullmatch(r"damped-(\d+)\(lam=([0-9.e-]+)\)", label):
        k, lam = int(m.group(1)), float(m.group(2))
        return 1.0 - (1.0 - lam * (1.0 - v)) ** k
    raise ValueError(f"no closed-form factor for method label {label!r}")


@check("REPRO-APX", part="replay", kind="numeric")
def repro_apx_replay(ctx: Context) -> CheckResult:
    """REPRO-APX: every P-APX-LIN record replays, step by step, as GD with the
    closed-form factor c(v) of its method label times the exact gradient."""
    starts = APX_LIN_STARTS if ctx.full else APX_LIN_STARTS[:1]
    lin = run_apx_lin(ProtocolContext(figures_dir=None), starts=starts, steps=STEPS)
    model = apx_lin_model()
    per, worst = [], 0.0
    for r in lin["runs"]:
        th, eta = np.asarray(r["thetas"], float), float(r["eta"])
        k = min(STEPS, len(th) - 1)
        err = 0.0
        for j in range(k):
            _, g = model.value_and_grad(th[j])
            nxt = th[j] - eta * factor_from_label(r["method"], float(th[j, -1])) * g
            err = max(
                err,
                float(np.linalg.norm(th[j + 1] - nxt))
                / max(1.0, float(np.linalg.norm(nxt))),
            )
        worst = max(worst, err)
        per.append({"method": r["method"], "steps": k, "max_rel_error": err})
    return judged(
        worst <= TOL_STEP,
        measured=worst,
        predicted=0.0,
        worst_margin=1.0 - worst / TOL_STEP,
        tolerance=TOL_STEP,
        instances=len(per),
        reason=(
            f"{len(per)} P-APX-LIN records replayed over their first {STEPS} steps "
            f"as GD with c(v) of their label x exact gradient: worst step error "
            f"{worst:.2e} (tolerance {TOL_STEP:g})"
        ),
        details={"margin": "1 - worst relative step error / 1e-12", "per_run": per},
    )

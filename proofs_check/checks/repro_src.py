"""REPRO-LEG part ``src``: the authors' early scripts (P-SRC), judged.

The protocol ``src`` runs each script with the engine and with an independent
reference (:mod:`proofs_check.protocols.src_reference`); this check only judges that
data. The authors committed no output of these scripts (see
``proofs_check/published/src.json``), so agreement is measured against the reference.

Tolerances (rounding model):
* parameters: >= 10 significant digits, max_k ||theta_k - theta_k^ref|| /
  ||theta_k^ref||. The engine's roots carry a residual <= 1e-13 and the reference's
  a few ulps; each GD step moves that error by lr ||dg|| ~ 1e-13 and contracting runs
  do not amplify it, so ~13 digits are expected and 10 leaves 1000x.
* losses: |dL| <= 1e-10 (L + 2 sqrt(L) max|y|), ten digits of the loss or of the
  predictions it is made of (dL ~ 2 mean(r df)); a relative test alone would ask
  for digits a loss at 1e-20 does not have.
* the comparison horizon: a step is resolved while the engine's gradient norm
  exceeds the error its root tolerance can put into the gradient
  (``gradient_noise_floor``). Past that the trajectory is decided by solver noise
  (a ReLU run whose theta_1 decays to 0 picks its side of the kink from rounding),
  and is reported, not asserted.
* the scripts' own Brent (SciPy defaults, xtol 2e-12, rtol 4 eps) must agree with the
  engine's roots within BRENT_TOL.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dynamics import Result

from ..catalogue import tol
from ..registry import CheckResult, Context, check, judged

PUBLISHED = Path(__file__).resolve().parent.parent / "published" / "src.json"
#: Tolerances (values and reasons in the catalogue): digits of theta, loss scale,
#: and the gap to SciPy's brentq at the scripts' defaults (xtol 2e-12, rtol 4 eps64
#: |y| with |y| <= 10, plus the engine's residual 1e-13, times 2).
TOL_DIGITS = tol("REPRO-LEG", "src-theta-digits")
LOSS_REL = tol("REPRO-LEG", "src-loss-rel")
BRENT_TOL = tol("REPRO-LEG", "src-brent")
#: Digits reported for identical values.
EXACT_DIGITS = 17.0


def digits(err: float) -> float:
    """-log10 of a relative error (EXACT_DIGITS when it is 0)."""
    return EXACT_DIGITS if err <= 0 else min(EXACT_DIGITS, -math.log10(err))


def theta_error(a, b) -> float:
    a = np.asarray(a, float).reshape(len(a), -1)
    b = np.asarray(b, float).reshape(len(b), -1)
    if not len(a):
        return 0.0
    num = np.linalg.norm(a - b, axis=1)
    den = np.maximum(np.linalg.norm(b, axis=1), np.finfo(float).tiny)
    return float(np.max(num / den))


def loss_excess(a, b, ymax: float) -> float:
    """max over epochs of |dL| / (LOSS_REL (L + 2 sqrt(L) ymax)); <= 1 passes."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not len(a):
        return 0.0
    scale = LOSS_REL * (np.abs(b) + 2.0 * np.sqrt(np.abs(b)) * ymax)
    return float(np.max(np.abs(a - b) / np.maximum(scale, np.finfo(float).tiny)))


def rel_digits(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not len(a):
        return EXACT_DIGITS
    return digits(float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))))


def _horizon(eng: dict, compared: int) -> tuple[int, int | None]:
    """(epochs compared strictly, epoch where the gradient first fell to its noise
    floor or None): strict comparison stops there."""
    floor = eng.get("gradient_noise_floor")
    if floor is None:
        return compared, None
    below = np.nonzero(np.asarray(eng["grad_norms"])[:compared] <= floor[:compared])[0]
    return (int(below[0]), int(below[0])) if below.size else (compared, None)


def judge_nonlinear(rec: dict, ymax: float) -> dict:
    """Per-run agreement of engine and reference (see module doc)."""
    eng, ref = rec["engine"], rec["reference"]
    compared = min(len(eng["train_loss"]), len(ref["train_loss"]))
    H, floor_epoch = _horizon(eng, compared)
    problems = []
    th_err = theta_error(eng["thetas"][: H + 1], ref["thetas"][: H + 1])
    tr = loss_excess(eng["train_loss"][:H], ref["train_loss"][:H], ymax)
    nt = min(H, len(eng["test_loss"]), len(ref["test_loss"]))
    te = loss_excess(eng["test_loss"][:nt], ref["test_loss"][:nt], ymax)
    if digits(th_err) < TOL_DIGITS:
        problems.append(f"theta agrees to {digits(th_err):.1f} digits (< 10)")
    if tr > 1 or te > 1:
        problems.append(f"losses differ by {max(tr, te):.2g} x tolerance")
    # Stops: the engine refuses only a step whose fixed point is not unique, and
    # finds a root outside the scripts' bracket exactly where their brentq raises.
    if not Result(eng["result"]).ok and not rec.get(
        "multiple_root_samples_at_refusal"
    ):
        problems.append(f"engine stopped ({eng['result']}) at a unique fixed point")
    raised = ref.get("script_would_raise")
    ref_epoch = len(ref["train_loss"]) if raised else None
    if raised and "test set" in raised:
        ref_epoch = len(ref["test_loss"])
    first_out = eng.get("first_epoch_root_outside_script_bracket")
    if rec["model"] == "implicit":
        within = lambda k: k is not None and k <= H  # noqa: E731
        if (within(ref_epoch) or within(first_out)) and ref_epoch != first_out:
            problems.append(
                f"script's bracket fails at epoch {ref_epoch} (reference) but at "
                f"{first_out} (engine roots)"
            )
    gaps = [
        g["max_abs_difference"]
        for g in (eng.get("brent_gap_theta0"), eng.get("brent_gap_last"))
        if g
    ]
    if gaps and max(gaps) > BRENT_TOL:
        problems.append(f"Brent (script tolerances) differs by {max(gaps):.2e}")
    K = min(len(eng["thetas"]), len(ref["thetas"])) - 1
    return {
        "run": f"{rec['activation']}/{rec['model']}/{rec['config']}",
        "epochs": rec["epochs"],
        "lr": rec["lr"],
        "engine_result": eng["result"],
        "engine_steps": eng["steps_taken"],
        "script_would_raise": raised,
        "compared_epochs": H,
        "noise_floor_epoch": floor_epoch,
        "theta_digits": digits(th_err),
        "train_loss_digits": rel_digits(eng["train_loss"][:H], ref["train_loss"][:H]),
        "test_loss_digits": rel_digits(eng["test_loss"][:nt], ref["test_loss"][:nt]),
        "loss_excess": max(tr, te),
        "theta_final_engine": np.asarray(eng["thetas"][-1]).tolist(),
        "theta_digits_at_last_common_epoch": digits(
            theta_error(eng["thetas"][K : K + 1], ref["thetas"][K : K + 1])
        ),
        "brent_gap": max(gaps) if gaps else None,
        "multiple_root_samples_at_refusal": rec.get("multiple_root_samples_at_refusal"),
        "kink_evaluations_reference": ref["kink_evaluations"],
        "first_epoch_theta_exactly_zero": eng.get("first_epoch_at_exactly_zero"),
        "problems": problems,
    }


def judge_linear(rec: dict) -> dict:
    ref = rec["reference"]
    th_err = theta_error(rec["thetas"], ref["thetas"])
    ymax = 2.0
    lx = loss_excess(rec["train_loss"], ref["train_loss"], ymax)
    problems = []
    if digits(th_err) < TOL_DIGITS:
        problems.append(f"theta agrees to {digits(th_err):.1f} digits (< 10)")
    if lx > 1:
        problems.append(f"losses differ by {lx:.2g} x tolerance")
    if not ref["max_abs_root"] < 100.0:
        problems.append("a root left Brent's bracket [-100, 100]")
    return {
        "run": "linear",
        "theta_digits": digits(th_err),
        "theta_final": np.asarray(rec["theta_final"]).tolist(),
        "theta_final_digits": digits(
            theta_error(rec["thetas"][-1:], ref["thetas"][-1:])
        ),
        "train_loss_digits": rel_digits(rec["train_loss"], ref["train_loss"]),
        "loss_excess": lx,
        "max_abs_root": ref["max_abs_root"],
        "sign_flip": rec["sign_flip"],
        "min_distance_to_singular_point": rec["min_distance_to_singular_point"],
        "problems": problems,
    }


def provenance_problems(published: dict) -> list[str]:
    """The protocol's constants must be the ones read from the authors' scripts."""
    from ..protocols import src as P

    lin, non = published["protocol"]["linear"], published["protocol"]["nonlinear"]
    mine = {
        "linear seed": (P.SEED, lin["seed"]),
        "linear n": (P.N, lin["n"]),
        "linear lr": (P.LINEAR_LR, lin["learning_rate"]),
        "linear epochs": (P.LINEAR_EPOCHS, lin["epochs"]),
        "linear init": (
            [P.LINEAR_INIT_SCALE, *P.LINEAR_INIT_SHIFT],
            [lin["init_scale"], *lin["init_shift"]],
        ),
        "linear bracket": (list(P.ref.LINEAR_BRACKET), lin["bracket"]),
        "nonlinear seeds": ([P.SEED, P.TEST_SEED], [non["seed"], non["test_seed"]]),
        "nonlinear sizes": ([P.N, P.N_TEST], [non["n"], non["n_test"]]),
        "c_true": (P.C_TRUE, non["c_true"]),
        "inits": (
            [*P.IMPLICIT_INIT, P.EXPLICIT_INIT, P.INIT_SCALE],
            [*non["implicit_init"], non["explicit_init"], non["init_scale"]],
        ),
        "nonlinear bracket": (list(P.ref.NONLINEAR_BRACKET), non["bracket"]),
        "configs": (
            {k: list(v) for k, v in P.CONFIGS.items()},
            non["configs"],
        ),
        "activations": (list(P.ACTIVATION_NAMES), non["activations"]),
        "leaky slope": (P.ref.LEAKY_ALPHA, non["leaky_slope"]),
    }
    return [f"{k}: ours {a}, scripts {b}" for k, (a, b) in mine.items() if a != b]


def judge_src(payload: dict, published: dict, figures_dir=None) -> CheckResult:
    """The verdict on one ``src`` protocol payload."""
    from ..protocols import src as P

    rows, problems = [], provenance_problems(published)
    if "linear" in payload:
        rows.append(judge_linear(payload["linear"]))
    for rec in payload["runs"]:
        act = P.get_activation(rec["activation"])
        x = P.nonlinear_data()["x"]
        ymax = float(np.max(np.abs(act.sigma(P.C_TRUE * x))))
        rows.append(judge_nonlinear(rec, ymax))
    problems += [f"{r['run']}: {p}" for r in rows for p in r["problems"]]
    if figures_dir is not None:
        want = ["src-linear"] if "linear" in payload else []
        want += sorted(
            {f"src-{r['activation']}-{r['config']}" for r in payload["runs"]}
        )
        for name in want:
            path = payload["figures"].get(name)
            if not path or Path(path).read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
                problems.append(f"figure {name} not written as PNG")
    worst = min(r["theta_digits"] for r in rows)
    refused = [
        r["run"]
        for r in rows
        if r.get("engine_result") is not None and not Result(r["engine_result"]).ok
    ]
    raises = [r["run"] for r in rows if r.get("script_would_raise")]
    short = [r["run"] for r in rows if r.get("noise_floor_epoch") is not None]
    return judged(
        not problems,
        measured=worst,
        predicted=EXACT_DIGITS,
        tolerance=TOL_DIGITS,
        worst_margin=worst - TOL_DIGITS,
        instances=len(rows),
        reason=(
            f"P-SRC: {len(rows)} runs (linear script; 5 activations x implicit/"
            "explicit x both epoch/lr defaults) agree with an independent reference "
            f"to >= {worst:.1f} significant digits in theta (required 10) and losses "
            "within 1e-10 of their scale. The authors committed no output of these "
            "scripts (proofs_check/published/src.json), so the reference is the "
            f"oracle. Engine refused non-unique fixed points in {refused or 'none'}; "
            f"the scripts' brentq would raise in {raises or 'none'}; compared only up "
            f"to the gradient noise floor in {short or 'none'}"
            + (f"; problems: {problems}" if problems else "")
        ),
        details={
            "margin": "worst theta digits - 10",
            "published": {
                "repository": published["repository"],
                "commit": published["commit"],
                "published_outputs": published["published_outputs"],
                "why_no_outputs": published["why_no_outputs"],
            },
            "runs": rows,
            "problems": problems,
        },
    )


@check("REPRO-LEG", part="src", kind="benchmark")
def repro_leg_src(ctx: Context) -> CheckResult:
    """REPRO-LEG, P-SRC: the authors' early linear and nonlinear scripts, run by the
    engine, agree with an independent reference (Brent / Illinois roots, own
    activation formulas) to >= 10 digits in theta while the run is resolved by the
    forward tolerance; stops (non-unique roots, roots outside the scripts' brackets)
    agree; figures render when ``ctx.figures_dir`` is set."""
    from ..protocols import protocol_data

    payload = protocol_data(ctx, "src")
    published = json.loads(PUBLISHED.read_text())
    return judge_src(payload, published, ctx.figures_dir)

"""P-SRC: the authors' early scripts (linear and nonlinear), run by the engine.

* Linear script: legacy global seed 42; x ~ U[0, 1] (n = 1000) drawn first, target
  2x, then theta0 = 0.1 randn(2) + (0, 1), next to the singular point (0, 1); lr
  0.01, full batch, 200 epochs. The script solves the forward pass by Brent on
  [-100, 100]; the engine uses the closed form, equivalent while every root lies
  inside that bracket (recorded: the largest |root|).
* Nonlinear script: seed 42, x ~ N(0, 1) (n = 1000), target sigma(2x); test set seed
  123, n = 200; then the seed is reset to 42 before the initialisation is drawn, so
  the implicit theta0 = (-0.1, 0) + 0.01 randn(2) and the explicit baseline's
  theta0 = -0.1 + 0.01 randn reuse the first draws of the data stream. Activations
  tanh, sigmoid, ReLU, leaky ReLU (0.01) and GELU (tanh form); both the command-line
  defaults (400 epochs, lr 0.1) and the ``train()`` defaults (4000 epochs, lr 0.5).
  Per epoch the script records the train loss at theta_k, updates, then records the
  test loss at theta_{k+1}; so does this protocol.

The engine runs the implicit model (:class:`SingleIndexDEQ`: safeguarded Newton,
exact IFT gradient, gradient-descent driver, well-posedness enforced) and the
explicit baseline f = sigma(theta x) with the engine's activation table. Every run
is repeated by the independent reference of :mod:`.src_reference`; the check
(REPRO-LEG part ``src``) compares the two. The engine refuses a step where the fixed
point is no longer guaranteed unique; the reference then records how many inputs
have several roots in the script's bracket.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from dynamics import Result
from dynamics.flows.descent import gradient_descent
from dynamics.models.activations import get_activation
from dynamics.models.linear_deq import LinearDEQ
from dynamics.models.scalar_root import ROOT_TOL
from dynamics.models.single_index import SingleIndexDEQ

from .. import sim_tools as st
from ..cases.lin_gd import analyse_gd
from ..figures import figure, save, style, theory, theory_hline
from . import ProtocolContext, protocol, src_reference as ref
from .leg_linear import run_record

SEED, TEST_SEED, N, N_TEST = 42, 123, 1000, 200
LINEAR_LR, LINEAR_EPOCHS, LINEAR_SLOPE = 0.01, 200, 2.0
LINEAR_INIT_SCALE, LINEAR_INIT_SHIFT = 0.1, (0.0, 1.0)
C_TRUE = 2.0
IMPLICIT_INIT, EXPLICIT_INIT, INIT_SCALE = (-0.1, 0.0), -0.1, 0.01
#: (epochs, lr): the command-line defaults and the train() defaults.
CONFIGS = {"cli": (400, 0.1), "train": (4000, 0.5)}
ACTIVATION_NAMES = ("tanh", "sigmoid", "relu", "leaky_relu", "gelu")
MODELS = ("implicit", "explicit")


def linear_data() -> tuple[np.ndarray, np.ndarray]:
    """(x, theta0) of the linear script: draw order of its legacy global seed."""
    rs = np.random.RandomState(SEED)
    x = rs.uniform(0.0, 1.0, N)
    theta0 = rs.randn(2) * LINEAR_INIT_SCALE + np.array(LINEAR_INIT_SHIFT)
    return x, theta0


def nonlinear_data() -> dict:
    """Train and test inputs and both initialisations of the nonlinear script."""
    x = np.random.RandomState(SEED).randn(N)
    x_test = np.random.RandomState(TEST_SEED).randn(N_TEST)
    # The script re-seeds with 42 before building the model, so the first model
    # draws repeat the first training inputs.
    implicit = (
        np.array(IMPLICIT_INIT) + np.random.RandomState(SEED).randn(2) * INIT_SCALE
    )
    explicit = EXPLICIT_INIT + np.random.RandomState(SEED).randn() * INIT_SCALE
    return {"x": x, "x_test": x_test, "implicit": implicit, "explicit": float(explicit)}


def _brent_gap(act, theta, x) -> dict:
    """max |engine root - Brent root| with the script's bracket and SciPy's default
    tolerances (xtol 2e-12): how closely the script itself resolves the roots; and
    how many roots lie outside that bracket (where the script's brentq raises)."""
    mine = SingleIndexDEQ(x[:, None], np.zeros_like(x), act, warm_start=False)
    y = mine.predict(theta)
    lo, hi = ref.NONLINEAR_BRACKET
    inside = (y > lo) & (y < hi)
    theirs = np.array(
        [
            brentq(lambda z, xi=xi: z - act.sigma(theta[0] * xi + theta[1] * z), lo, hi)
            for xi in x[inside]
        ]
    )
    gap = float(np.max(np.abs(y[inside] - theirs))) if inside.any() else 0.0
    return {"max_abs_difference": gap, "roots_outside_bracket": int((~inside).sum())}


def _noise_floor(sol, x, y, v) -> float:
    """Size of the gradient error that root errors within the solver's tolerance can
    cause: a residual tol leaves |df| <= tol / D (D = 1 - v sigma'), and
    d(w z)/df is bounded by 2 (p / D) |z| + |w| (sigma'' = 0 a.e. for ReLU-type;
    for smooth sigma this first-order floor is what the trajectory can resolve)."""
    p = sol.slope
    D = 1.0 - v * p
    w = 2.0 * (sol.y - y) * p / D
    z = np.hypot(x, sol.y)
    return float(ROOT_TOL * np.mean((2.0 * np.abs(p / D) * z + np.abs(w)) / np.abs(D)))


def _implicit_engine(act, data, lr, epochs) -> dict:
    x, xt = data["x"], data["x_test"]
    y, yt = act.sigma(C_TRUE * x), act.sigma(C_TRUE * xt)
    model = SingleIndexDEQ(x[:, None], y, act)
    floors, roots = [], []

    def direction(theta):
        out = model.value_and_grad(theta)
        sol = model.solve(theta)  # warm-started at this very root: one evaluation
        floors.append(_noise_floor(sol, x, y, float(theta[-1])))
        roots.append(float(np.max(np.abs(sol.y))))
        return out

    traj = gradient_descent(model, data["implicit"], lr, epochs, direction=direction)
    taken = int(traj.stats["steps_taken"])
    refused = taken < epochs
    thetas = traj.thetas[: taken + 1]
    # A refused iterate has no (unique) fixed point: no loss, root or Brent there.
    good = thetas[:-1] if refused else thetas
    test, test_roots = [], []
    for th in good[1:]:
        yt_hat = model.predict(th, xt[:, None])
        test.append(float(np.mean((yt_hat - yt) ** 2)))
        test_roots.append(float(np.max(np.abs(yt_hat))))
    lo, hi = ref.NONLINEAR_BRACKET
    # Epoch at which the script's brentq would first meet a root outside its bracket
    # (train solve at theta_k, or test solve at theta_{k+1}).
    out_train = [k for k, r in enumerate(roots[:taken]) if not lo < r < hi]
    out_test = [k for k, r in enumerate(test_roots) if not lo < r < hi]
    first_out = min(out_train[:1] + out_test[:1], default=None)
    return {
        "result": traj.result.value,
        "message": traj.message,
        "steps_taken": taken,
        "thetas": thetas,
        "train_loss": traj.risks[:taken],
        "test_loss": np.array(test),
        "grad_norms": traj.grad_norms[:taken],
        "gradient_noise_floor": np.array(floors[:taken]),
        "max_abs_root_train": np.array(roots[:taken]),
        "max_abs_root_test": np.array(test_roots),
        "first_epoch_root_outside_script_bracket": first_out,
        "refused_at": thetas[-1] if refused else None,
        "brent_gap_theta0": _brent_gap(act, data["implicit"], x),
        "brent_gap_last": _brent_gap(act, good[-1], x),
    }


def _explicit_engine(act, data, lr, epochs) -> dict:
    """f = sigma(theta x), GD on the no-1/2 MSE with the table's sigma and sigma'."""
    x, xt = data["x"], data["x_test"]
    y, yt = act.sigma(C_TRUE * x), act.sigma(C_TRUE * xt)
    theta = data["explicit"]
    thetas, train, test = [theta], [], []
    for _ in range(epochs):
        s = theta * x
        f = act.sigma(s)
        train.append(float(np.mean((f - y) ** 2)))
        theta = theta - lr * float(np.mean(2.0 * (f - y) * act.dsigma(s) * x))
        thetas.append(theta)
        test.append(float(np.mean((act.sigma(theta * xt) - yt) ** 2)))
    zero = [k for k, t in enumerate(thetas) if t == 0.0]
    return {
        "result": Result.fixed_steps_completed.value,
        "message": "",
        "steps_taken": epochs,
        "thetas": np.array(thetas)[:, None],
        "train_loss": np.array(train),
        "test_loss": np.array(test),
        "first_epoch_at_exactly_zero": zero[0] if zero else None,
    }


def nonlinear_run(name: str, model: str, config: str, data: dict) -> dict:
    """One (activation, model, config) run by the engine and by the reference."""
    epochs, lr = CONFIGS[config]
    act = get_activation(name)
    eng = (_implicit_engine if model == "implicit" else _explicit_engine)(
        act, data, lr, epochs
    )
    other = ref.nonlinear_run(
        name, model, data["x"], data["x_test"], data[model], lr, epochs, C_TRUE
    )
    rec = {
        "activation": name,
        "model": model,
        "config": config,
        "epochs": epochs,
        "lr": lr,
        "theta0": np.atleast_1d(data[model]),
        "engine": eng,
        "reference": other,
    }
    if eng.get("refused_at") is not None:
        rec["multiple_root_samples_at_refusal"] = ref.multiple_root_samples(
            name, eng["refused_at"], data["x"]
        )
    return rec


def _task(task: tuple) -> dict:
    name, model, config = task
    return nonlinear_run(name, model, config, nonlinear_data())


def linear_run() -> dict:
    """The linear script by the engine (closed form) and the reference (Brent)."""
    x, theta0 = linear_data()
    model = LinearDEQ(x[:, None], LINEAR_SLOPE * x)
    run = analyse_gd(model, theta0, LINEAR_LR, LINEAR_EPOCHS)
    rec = run_record(run, "src-linear")
    rec["thetas"] = run.thetas
    rec["train_loss"] = run.risks[:LINEAR_EPOCHS]
    rec["reference"] = ref.linear_run(x, theta0, LINEAR_LR, LINEAR_EPOCHS)
    return rec


# ----------------------------------------------------------------------- figures


@style()
def _linear_figure(ctx, rec) -> str | None:
    th = np.asarray(rec["thetas"])
    fig, axes = figure(1, 4, size=(4.2, 3.4))
    ax = axes[0]
    ax[0].semilogy(rec["train_loss"], color="C0")
    ax[0].set(xlabel="epoch", ylabel="train loss", title="loss")
    grid = np.linspace(0.0, 1.0, 200)
    theory(ax[1], grid, LINEAR_SLOPE * grid, label="target f(x)=2x")
    ax[1].plot(grid, th[-1, 0] / (1 - th[-1, 1]) * grid, color="C1", label="learned")
    ax[1].set(xlabel="x", ylabel="y", title="learned function")
    ax[1].legend(fontsize=8)
    alpha = np.linspace(-2, 3, 100)
    ax[2].plot(
        alpha * LINEAR_SLOPE, 1 - alpha, "k--", lw=1, label=r"$(\alpha\xi, 1-\alpha)$"
    )
    ax[2].plot(0, 1, "r*", label="trivial solution (0, 1)")
    sc = ax[2].scatter(th[:, 0], th[:, 1], c=np.arange(len(th)), s=8)
    fig.colorbar(sc, ax=ax[2], label="epoch")
    pad = 0.05
    ax[2].set_xlim(min(th[:, 0].min(), 0) - pad, max(th[:, 0].max(), 0) + pad)
    ax[2].set_ylim(min(th[:, 1].min(), 1) - pad, max(th[:, 1].max(), 1) + pad)
    ax[2].set(xlabel=r"$\theta_1$", ylabel=r"$\theta_2$", title="GD iterates")
    ax[2].legend(fontsize=7)
    ax[3].plot(rec["distance_to_singular_point"], color="C2")
    ax[3].set(xlabel="epoch", ylabel="distance", title="distance from (0, 1)")
    return save(fig, ctx.figure_path("src-linear"))


@style()
def _nonlinear_figure(ctx, name, config, runs) -> str | None:
    imp = next(r for r in runs if r["model"] == "implicit")
    exp = next(r for r in runs if r["model"] == "explicit")
    act = get_activation(name)
    fig, axes = figure(1, 4, size=(4.2, 3.4))
    ax = axes[0]
    for r, c in ((exp, "C0"), (imp, "C1")):
        e = r["engine"]
        ax[0].semilogy(e["train_loss"], color=c, label=f"{r['model']} train")
        ax[0].semilogy(e["test_loss"], color=c, ls=":", label=f"{r['model']} test")
    ax[0].set(xlabel="epoch", ylabel="loss", title=f"{name}, {config} defaults")
    ax[0].legend(fontsize=7)
    grid = np.linspace(-2.0, 2.0, 200)
    theory(ax[1], grid, act.sigma(C_TRUE * grid), label=r"target $\sigma(2x)$")
    ax[1].plot(
        grid,
        act.sigma(exp["engine"]["thetas"][-1, 0] * grid),
        "--",
        color="C0",
        label="explicit",
    )
    # A refused run's last iterate has no unique fixed point: draw the one before.
    refused = imp["engine"]["refused_at"] is not None
    th = imp["engine"]["thetas"][-2 if refused else -1]
    y_imp = SingleIndexDEQ(grid[:, None], grid, act).predict(th)
    ax[1].plot(grid, y_imp, ":", color="C1", label="implicit")
    ax[1].set(xlabel="x", ylabel="y", title="function comparison")
    ax[1].legend(fontsize=7)
    ax[2].semilogy(
        np.abs(exp["engine"]["thetas"][:, 0] - C_TRUE),
        color="C0",
        label=r"explicit $|\theta-2|$",
    )
    ax[2].semilogy(
        np.linalg.norm(imp["engine"]["thetas"] - [C_TRUE, 0.0], axis=1),
        color="C1",
        label=r"implicit $\|\theta-(2,0)\|$",
    )
    ax[2].set(xlabel="epoch", ylabel="distance", title="distance to the target")
    ax[2].legend(fontsize=7)
    ax[3].plot(imp["engine"]["thetas"][:, 0], label=r"$\theta_1$")
    ax[3].plot(imp["engine"]["thetas"][:, 1], label=r"$\theta_2$")
    theory_hline(ax[3], C_TRUE, label="target (2, 0)")
    theory_hline(ax[3], 0.0)
    ax[3].set(xlabel="epoch", ylabel="value", title="implicit parameters")
    ax[3].legend(fontsize=7)
    return save(fig, ctx.figure_path(f"src-{name}-{config}"))


@protocol(
    "src",
    "P-SRC",
    "the authors' early scripts: linear (Brent on [-100, 100], seed 42, 200 epochs) "
    "and nonlinear (5 activations, implicit vs explicit, both epoch/lr defaults)",
)
def src(
    ctx: ProtocolContext,
    activations=ACTIVATION_NAMES,
    configs=tuple(CONFIGS),
    linear: bool = True,
    workers: int | None = None,
) -> dict:
    """Run P-SRC (all of it by default); ``workers`` processes share the nonlinear
    runs (default DEQ_WORKERS or the CPU count; results do not depend on it)."""
    out: dict = {"spec_id": "P-SRC", "runs": [], "figures": {}}
    if linear:
        ctx.progress("P-SRC linear: lr 0.01, 200 epochs")
        out["linear"] = linear_run()
        if ctx.figures_dir is not None:
            out["figures"]["src-linear"] = _linear_figure(ctx, out["linear"])
    data = nonlinear_data()
    out["nonlinear_theta0"] = {
        "implicit": data["implicit"],
        "explicit": data["explicit"],
    }
    tasks = [(n, m, c) for c in configs for n in activations for m in MODELS]
    out["runs"] = st.run_pool(
        _task,
        tasks,
        workers=workers,
        progress=ctx.progress,
        describe=lambda t, r: f"P-SRC {t[0]}/{t[1]}, {t[2]} defaults {CONFIGS[t[2]]}",
    )
    if ctx.figures_dir is not None:
        for config in configs:
            for name in activations:
                runs = [
                    r
                    for r in out["runs"]
                    if r["activation"] == name and r["config"] == config
                ]
                key = f"src-{name}-{config}"
                out["figures"][key] = _nonlinear_figure(ctx, name, config, runs)
    out["figures"] = {k: v for k, v in out["figures"].items() if v}
    return out

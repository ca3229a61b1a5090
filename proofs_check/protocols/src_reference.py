"""Independent reference for P-SRC: the early scripts' algorithm, re-derived.

The authors' early scripts (repository ``sanjitdp/single-index-deq``, ``src/``) print
their final parameters and save images, but no numbers were committed, so the
engine's P-SRC runs are compared with this second implementation instead. It shares
nothing with the engine except NumPy and SciPy:

* its own activation formulas (not the engine's table), with the scripts'
  convention relu'(0) = leaky'(0) = 1 and the sigmoid written as 1 / (1 + e^-z) on
  z clipped to [-500, 500];
* the linear forward pass by SciPy's Brent (``brentq``) per sample on the scripts'
  bracket [-100, 100], gradients accumulated sample by sample (the engine uses the
  closed form, vectorised);
* the nonlinear forward pass by a vectorised Illinois (modified regula falsi) solve
  on the scripts' bracket [-10, 10], run until the bracket is a few ulps wide (the
  engine uses safeguarded Newton from its own bracket rule, to residual 1e-13);
* the implicit-function gradient per sample, 2 (f - y) sigma'(s) (x, f) / (1 -
  v sigma'(s)), and the explicit baseline's 2 (f - y) sigma'(theta x) x, averaged.

It records what the scripts record: per epoch the train loss at theta_k, then the
update, then the test loss at theta_{k+1}.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

#: The scripts' root brackets.
LINEAR_BRACKET = (-100.0, 100.0)
NONLINEAR_BRACKET = (-10.0, 10.0)
#: Slope of the scripts' leaky ReLU.
LEAKY_ALPHA = 0.01
#: Bracket width at which the Illinois solve stops, in units of eps64 |y|.
ILLINOIS_ULPS = 4.0
#: ... plus this absolute width, for roots at (or within 1e-30 of) 0: ReLU's y = 0.
ILLINOIS_ABS = 1e-30
ILLINOIS_MAX_ITER = 300
#: Relative half-width of the bracket tried around a guess.
GUESS_WIDTH = 1e-4


class BracketError(ValueError):
    """No sign change on the scripts' bracket (their ``brentq`` would raise)."""


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0)))


def _gelu(z):
    return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))


def _gelu_prime(z):
    c = math.sqrt(2.0 / math.pi)
    t = np.tanh(c * (z + 0.044715 * z**3))
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * z**2)


#: name -> (sigma, sigma'), written from the formulas (kink convention: slope 1 at 0).
ACTIVATIONS = {
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    "relu": (
        lambda z: np.maximum(z, 0.0),
        lambda z: np.where(z < 0, 0.0, 1.0),
    ),
    "leaky_relu": (
        lambda z: np.where(z > 0, z, LEAKY_ALPHA * z),
        lambda z: np.where(z < 0, LEAKY_ALPHA, 1.0),
    ),
    "gelu": (_gelu, _gelu_prime),
}


def illinois_roots(
    F, lo: float, hi: float, n: int, guess: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Roots of the vectorised ``F`` (shape (n,)) bracketed by [lo, hi].

    Modified regula falsi (Illinois): the retained end's value is halved when the same
    end survives twice, which keeps the convergence superlinear; stops when the
    bracket is ILLINOIS_ULPS eps64 |y| + ILLINOIS_ABS wide, or |F| is at its rounding
    level (ILLINOIS_ULPS eps64 (|y| + |sigma|)), or F is exactly 0.
    Raises BracketError where F(lo), F(hi) have the same sign. Returns (roots,
    iterations).

    ``guess`` (e.g. last epoch's roots) only speeds the solve up: where
    [guess -+ GUESS_WIDTH (1 + |guess|)] lies in [lo, hi] and F changes sign on it,
    the solve starts from that bracket instead. A sign change brackets a root, and
    for the monotone F of a well-posed model that root is the only one.
    """
    a, b = np.full(n, lo), np.full(n, hi)
    fa, fb = F(a), F(b)
    if np.any(np.sign(fa) * np.sign(fb) > 0):
        bad = int(np.argmax(np.sign(fa) * np.sign(fb) > 0))
        raise BracketError(
            f"no sign change on [{lo}, {hi}] for sample {bad}: "
            f"F(lo) = {fa[bad]:.3e}, F(hi) = {fb[bad]:.3e}"
        )
    if guess is not None:
        w = GUESS_WIDTH * (1.0 + np.abs(guess))
        ga, gb = np.maximum(guess - w, lo), np.minimum(guess + w, hi)
        fga, fgb = F(ga), F(gb)
        use = np.sign(fga) * np.sign(fgb) < 0
        a, fa = np.where(use, ga, a), np.where(use, fga, fa)
        b, fb = np.where(use, gb, b), np.where(use, fgb, fb)
    x = np.where(fa == 0, a, b)
    done = (fa == 0) | (fb == 0)
    side = np.zeros(n, dtype=int)  # which end survived last (-1: a, +1: b)
    eps = np.finfo(float).eps
    for it in range(1, ILLINOIS_MAX_ITER + 1):
        scale = np.maximum(np.abs(a), np.abs(b))
        done |= np.abs(b - a) <= ILLINOIS_ULPS * eps * scale + ILLINOIS_ABS
        if done.all():
            return x, it - 1
        c = (a * fb - b * fa) / (fb - fa)
        # Keep c strictly inside; fall back to the midpoint when it is not.
        inside = (c > np.minimum(a, b)) & (c < np.maximum(a, b))
        c = np.where(inside, c, 0.5 * (a + b))
        fc = F(c)
        x = np.where(done, x, c)
        zero = fc == 0
        same_as_a = np.sign(fc) == np.sign(fa)
        # Replace a (and halve fb if b survived twice), or replace b likewise.
        new_a = np.where(same_as_a, c, a)
        new_fa = np.where(same_as_a, fc, np.where(side == -1, fa / 2, fa))
        new_b = np.where(same_as_a, b, c)
        new_fb = np.where(same_as_a, np.where(side == 1, fb / 2, fb), fc)
        keep = done
        a, fa = np.where(keep, a, new_a), np.where(keep, fa, new_fa)
        b, fb = np.where(keep, b, new_b), np.where(keep, fb, new_fb)
        side = np.where(keep, side, np.where(same_as_a, 1, -1))
        # Or F(c) is at its rounding level: |F| <= 4 eps (|c| + |sigma(s)|), with
        # sigma(s) = c - F(c); the root is then known to ~4 eps / F' relative.
        done |= zero | (
            np.abs(fc) <= ILLINOIS_ULPS * eps * (np.abs(c) + np.abs(c - fc))
        )
    raise ArithmeticError("Illinois solve did not shrink its bracket")


def linear_run(x: np.ndarray, theta0: np.ndarray, lr: float, epochs: int) -> dict:
    """The linear script's GD: y = t1 x + t2 y solved per sample by Brent on
    [-100, 100]; the gradient accumulated sample by sample, then averaged."""
    theta = np.array(theta0, dtype=float)
    history, losses, max_root = [theta.copy()], [], 0.0
    for _ in range(epochs):
        total, grad = 0.0, np.zeros(2)
        for xi in x:
            root = brentq(
                lambda y, xi=xi: y - (theta[0] * xi + theta[1] * y), *LINEAR_BRACKET
            )
            max_root = max(max_root, abs(root))
            r = root - 2.0 * xi
            total += r * r
            grad += 2.0 * r * np.array([xi, root]) / (1.0 - theta[1])
        theta = theta - lr * grad / x.size
        history.append(theta.copy())
        losses.append(total / x.size)
    return {
        "thetas": np.array(history),
        "train_loss": np.array(losses),
        "max_abs_root": max_root,
    }


def _implicit_forward(name, theta, x, guess=None):
    sigma, _ = ACTIVATIONS[name]
    return illinois_roots(
        lambda y: y - sigma(theta[0] * x + theta[1] * y),
        *NONLINEAR_BRACKET,
        x.size,
        guess,
    )[0]


def predict(name: str, model: str, theta, x: np.ndarray, guess=None) -> np.ndarray:
    """The reference prediction of the implicit or explicit model at ``theta``."""
    if model == "explicit":
        return ACTIVATIONS[name][0](float(theta) * x)
    return _implicit_forward(name, np.asarray(theta, float), x, guess)


def _gradient(name, model, theta, x, y, guess=None):
    sigma, dsigma = ACTIVATIONS[name]
    if model == "explicit":
        s = theta * x
        f = sigma(s)
        return f, float(np.sum(2.0 * (f - y) * dsigma(s) * x) / x.size)
    f = _implicit_forward(name, theta, x, guess)
    s = theta[0] * x + theta[1] * f
    p = dsigma(s)
    w = 2.0 * (f - y) * p / (1.0 - theta[1] * p)
    return f, np.array([np.sum(w * x), np.sum(w * f)]) / x.size


def nonlinear_run(
    name: str,
    model: str,
    x: np.ndarray,
    x_test: np.ndarray,
    theta0,
    lr: float,
    epochs: int,
    c_true: float = 2.0,
) -> dict:
    """The nonlinear script's GD for ``model`` in {"implicit", "explicit"}."""
    sigma = ACTIVATIONS[name][0]
    y, y_test = sigma(c_true * x), sigma(c_true * x_test)
    theta = np.array(theta0, dtype=float) if model == "implicit" else float(theta0)
    history, train, test, kink = [np.copy(theta)], [], [], 0
    stopped, f, ft = None, None, None
    for epoch in range(epochs):
        try:
            f, g = _gradient(name, model, theta, x, y, f)
        except BracketError as exc:
            # Where the script's brentq would raise and end the run.
            stopped = f"epoch {epoch}, train set: {exc}"
            break
        s = theta * x if model == "explicit" else theta[0] * x + theta[1] * f
        kink += int(np.count_nonzero(s == 0.0))
        train.append(float(np.mean((f - y) ** 2)))
        theta = theta - lr * g
        history.append(np.copy(theta))
        try:
            ft = predict(name, model, theta, x_test, ft)
        except BracketError as exc:
            stopped = f"epoch {epoch}, test set: {exc}"
            break
        test.append(float(np.mean((ft - y_test) ** 2)))
    return {
        "thetas": np.array(history, dtype=float).reshape(len(history), -1),
        "train_loss": np.array(train),
        "test_loss": np.array(test),
        "kink_evaluations": kink,
        "script_would_raise": stopped,
    }


def multiple_root_samples(name: str, theta, x: np.ndarray, points: int = 20001) -> int:
    """How many inputs have more than one fixed point y = sigma(t1 x + t2 y) in the
    scripts' bracket, counted by sign changes of y - sigma(...) on a uniform grid
    (a lower bound: two roots closer than the grid spacing are missed)."""
    sigma = ACTIVATIONS[name][0]
    grid = np.linspace(*NONLINEAR_BRACKET, points)
    count = 0
    for xi in x:
        F = grid - sigma(theta[0] * xi + theta[1] * grid)
        sgn = np.sign(F)
        sgn = sgn[sgn != 0]
        count += int(np.count_nonzero(sgn[1:] != sgn[:-1]) > 1)
    return count

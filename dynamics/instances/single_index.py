"""Seeded single-index and approximate-backprop instances (docs/theory/protocols.md).

The protocol data generators reproduce the order of random draws of the authors'
scripts (``experiments/synthetic/*.py`` at commit 028e65b, read for the protocol only):

- P-LEG sigmoid: x = default_rng(42).uniform(0, 1, 1000), target expit(2x),
  p = default_rng(43).normal(0, 0.1, 2) (shared with :mod:`dynamics.instances`);
- P-APX-LIN: population risk (c/(1-b) - 1)^2, i.e. the linear DEQ on the single sample
  x = 1, y = 1; starts (sqrt 8, 0) and the four axis offsets +-0.025 in c, then in b;
- P-APX-TANH: rng = default_rng(seed); xi ~ N(0, I_20) normalised; delta ~ N(0, I_20)
  scaled to norm 0.2; theta0 = (xi + delta, 0.15); X_train, then X_eval ~ N(0, I);
- P-WEAK: rng = default_rng(seed); xi ~ N(0, I_10) normalised; X_train; X_eval; a
  transverse Gaussian vector projected off xi and normalised; theta0 = (xi, 0)
  + 0.1 (-xi, 1)/sqrt 2 + 0.03 (v_perp, 0). All epsilons share data and theta0.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.special import expit

from ..models.activations import Activation, get_activation
from ..models.linear_deq import LinearDEQ
from ..models.single_index import SingleIndexDEQ
from .linear import LEG_DATA_SEED, LEG_N, leg_perturbation

__all__ = [
    "LEG_SIGMOID_XI",
    "LEG_SIGMOID_RUNS",
    "leg_sigmoid_model",
    "leg_sigmoid_theta0",
    "APX_LIN_ETA",
    "APX_LIN_STEPS",
    "APX_LIN_STARTS",
    "apx_lin_model",
    "APX_TANH_SEEDS",
    "APX_TANH",
    "apx_tanh_data",
    "WEAK_SEEDS",
    "WEAK",
    "weak_data",
    "LocalInstance",
    "local_instance",
]

# ------------------------------------------------------------------ P-LEG sigmoid

#: Target slope of the sigmoid legacy runs: y = expit(2 x), theta* = (2, 0).
LEG_SIGMOID_XI = 2.0
#: name -> (offset added to p, eta, steps, plot window in updates or None) (§6.1).
LEG_SIGMOID_RUNS: dict[str, tuple[tuple[float, float], float, int, int | None]] = {
    "sigmoid": ((0.0, 0.0), 0.1, 4000, 12000),
    "sigmoid-far": ((20.0, 0.0), 2.0, 4000, 8000),
    "sigmoid-extended": ((0.0, 0.0), 0.1, 40000, None),
    "sigmoid-far-extended": ((20.0, 0.0), 2.0, 40000, None),
}


def leg_sigmoid_model(**kwargs) -> SingleIndexDEQ:
    """P-LEG sigmoid: y = expit(theta_1 x + theta_2 y), x ~ U[0, 1], seed 42, n 1000."""
    x = np.random.default_rng(LEG_DATA_SEED).uniform(0.0, 1.0, LEG_N)
    return SingleIndexDEQ(x[:, None], expit(LEG_SIGMOID_XI * x), "sigmoid", **kwargs)


def leg_sigmoid_theta0(run: str) -> np.ndarray:
    """p + offset for the named P-LEG sigmoid run."""
    return leg_perturbation() + np.asarray(LEG_SIGMOID_RUNS[run][0])


# ---------------------------------------------------------------------- P-APX-LIN

APX_LIN_ETA, APX_LIN_STEPS = 0.02, 5000
#: (sqrt 8, 0), so r0 = 3 about (0, 1), then offsets of +-0.025 in c and in b.
APX_LIN_STARTS: tuple[tuple[float, float], ...] = (
    (math.sqrt(8.0), 0.0),
    (math.sqrt(8.0) - 0.025, 0.0),
    (math.sqrt(8.0) + 0.025, 0.0),
    (math.sqrt(8.0), -0.025),
    (math.sqrt(8.0), 0.025),
)


def apx_lin_model() -> LinearDEQ:
    """R(c, b) = (c/(1 - b) - 1)^2: E x^2 = 1, beta* = 1 (one sample x = 1, y = 1)."""
    return LinearDEQ(np.ones((1, 1)), np.ones(1))


# --------------------------------------------------------------------- P-APX-TANH

APX_TANH_SEEDS = (100, 101, 102, 103, 104)
#: Protocol constants of §6.4 (eval_stride from the authors' config: every 20 steps).
APX_TANH = {
    "d": 20,
    "n_train": 8000,
    "n_eval": 8000,
    "eta": 0.2,
    "steps": 40000,
    "delta_norm": 0.2,
    "v0": 0.15,
    "eval_stride": 20,
}


def apx_tanh_data(
    seed: int,
    d: int = 20,
    n_train: int = 8000,
    n_eval: int = 8000,
    delta_norm: float = 0.2,
    v0: float = 0.15,
) -> dict:
    """P-APX-TANH data and start, in the authors' draw order (module docstring)."""
    rng = np.random.default_rng(seed)
    xi = rng.normal(size=d)
    xi /= np.linalg.norm(xi)
    delta = rng.normal(size=d)
    delta *= delta_norm / np.linalg.norm(delta)
    theta0 = np.r_[xi + delta, v0]
    X = rng.normal(size=(n_train, d))
    X_eval = rng.normal(size=(n_eval, d))
    return {
        "xi": xi,
        "theta0": theta0,
        "X": X,
        "y": np.tanh(X @ xi),
        "X_eval": X_eval,
        "y_eval": np.tanh(X_eval @ xi),
    }


# -------------------------------------------------------------------------- P-WEAK

WEAK_SEEDS = (1729, 1730, 1731, 1732, 1733)
WEAK = {
    "d": 10,
    "n_train": 4096,
    "n_eval": 16384,
    "eta": 0.05,
    "updates": 60000,
    "record_every": 100,
    "epsilons": (0.5, 0.25, 0.125),
}


def weak_data(seed: int, d: int = 10, n_train: int = 4096, n_eval: int = 16384) -> dict:
    """P-WEAK inputs, xi and theta0 (shared by every epsilon of a seed)."""
    rng = np.random.default_rng(seed)
    xi = rng.normal(size=d)
    xi /= np.linalg.norm(xi)
    X = rng.normal(size=(n_train, d))
    X_eval = rng.normal(size=(n_eval, d))
    perp = rng.normal(size=d)
    perp -= (perp @ xi) * xi
    perp /= np.linalg.norm(perp)
    theta0 = np.r_[xi, 0.0] + 0.1 * np.r_[-xi, 1.0] / math.sqrt(2.0)
    theta0 = theta0 + 0.03 * np.r_[perp, 0.0]
    return {"xi": xi, "theta0": theta0, "X": X, "X_eval": X_eval}


# ------------------------------------------------------------ random local instances


@dataclasses.dataclass(frozen=True)
class LocalInstance:
    """A realizable single-index instance and a start near theta* = (xi, 0)."""

    model: SingleIndexDEQ
    xi: np.ndarray
    theta_star: np.ndarray
    theta0: np.ndarray


def local_instance(
    rng: np.random.Generator,
    activation: str | Activation,
    d: int,
    n: int,
    radius: float = 0.1,
    xi_norm: float = 1.0,
    **model_kwargs,
) -> LocalInstance:
    """x ~ N(0, I_d), xi a random vector of norm ``xi_norm``, y = sigma(<xi, x>), and
    theta0 at distance ``radius`` from theta* in a random direction."""
    act = get_activation(activation)
    xi = rng.normal(size=d)
    xi *= xi_norm / np.linalg.norm(xi)
    X = rng.normal(size=(n, d))
    direction = rng.normal(size=d + 1)
    theta_star = np.r_[xi, 0.0]
    theta0 = theta_star + radius * direction / np.linalg.norm(direction)
    model = SingleIndexDEQ(X, act.sigma(X @ xi), act, **model_kwargs)
    return LocalInstance(model, xi, theta_star, theta0)

"""First-order optimisers as objects: heavy-ball, Nesterov, Adam, RMSProp.

Each optimiser says where the gradient is taken (``lookahead``) and turns that
gradient into the step ``Delta_k = theta_{k+1} - theta_k`` (``update``). The driver
(:mod:`.driver`) owns the loop, the failure handling and the record, so every
optimiser runs through the same code as plain gradient descent does.

Conventions (the ones of ``torch.optim``, so results can be compared with it):

* heavy ball: ``Delta_k = mu Delta_{k-1} - eta g(theta_k)``;
* Nesterov: ``Delta_k = mu Delta_{k-1} - eta g(theta_k + mu Delta_{k-1})``;
* Adam: ``m = b1 m + (1-b1) g``, ``s = b2 s + (1-b2) g^2``,
  ``Delta = -eta m_hat / (sqrt(s_hat) + eps)`` with the bias corrections
  ``m_hat = m / (1 - b1^t)``, ``s_hat = s / (1 - b2^t)``;
* RMSProp: ``s = alpha s + (1-alpha) g^2``, ``Delta = -eta g / (sqrt(s) + eps)``.

Every run starts from rest (zero velocity, zero moments).
"""

from __future__ import annotations

import abc
import dataclasses
import math

import numpy as np

from .._validate import positive_step
from ..errors import HyperparameterError


def _unit_interval(name: str, value, *, open_right: bool = True) -> float:
    """``value`` as a float in [0, 1) (the range of a momentum or decay factor)."""
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise HyperparameterError(f"{name} must be a number; got {value!r}") from exc
    if not math.isfinite(x) or x < 0.0 or (x >= 1.0 if open_right else x > 1.0):
        raise HyperparameterError(
            f"{name} must lie in [0, 1); got {value!r} (a factor >= 1 makes the "
            "velocity or moment estimate grow without bound)"
        )
    return x


def _positive(name: str, value) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise HyperparameterError(f"{name} must be a number; got {value!r}") from exc
    if not math.isfinite(x) or x <= 0.0:
        raise HyperparameterError(
            f"{name} must be a positive finite number; got {value!r} (eps keeps the "
            "per-coordinate division finite when a gradient entry vanishes)"
        )
    return x


class Optimizer(abc.ABC):
    """A first-order update rule; state is a dict of arrays, never shared."""

    #: Short name used in records and figure legends.
    name: str = "optimizer"

    def init_state(self, n_params: int) -> dict:
        """The state at rest: zero velocity / zero moments."""
        return {"velocity": np.zeros(n_params), "t": 0}

    def lookahead(self, theta: np.ndarray, state: dict) -> np.ndarray:
        """Where the gradient of step k is evaluated (``theta_k`` by default)."""
        return theta

    @abc.abstractmethod
    def update(self, grad: np.ndarray, state: dict) -> np.ndarray:
        """The step ``Delta_k`` from the lookahead gradient; updates ``state``."""

    def describe(self) -> dict:
        """The hyperparameters, JSON-able."""
        return {"name": self.name, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class HeavyBall(Optimizer):
    """Polyak heavy ball: theta_{k+1} = theta_k - eta g_k + mu (theta_k - theta_{k-1}).

    ``mu = 0`` is plain gradient descent, step for step and bit for bit.
    """

    eta: float
    mu: float = 0.9
    name = "heavy-ball"

    def __post_init__(self):
        object.__setattr__(self, "eta", positive_step("eta", self.eta))
        object.__setattr__(self, "mu", _unit_interval("mu", self.mu))

    def update(self, grad, state):
        step = self.mu * state["velocity"] - self.eta * grad
        state["velocity"] = step
        state["t"] += 1
        return step


@dataclasses.dataclass(frozen=True)
class Nesterov(Optimizer):
    """Nesterov momentum: the gradient is taken at theta_k + mu (theta_k - theta_{k-1}).

    ``theta_{k+1} = y_k - eta g(y_k)`` with ``y_k = theta_k + mu Delta_{k-1}``: a GD
    step from the lookahead point.
    """

    eta: float
    mu: float = 0.9
    name = "nesterov"

    def __post_init__(self):
        object.__setattr__(self, "eta", positive_step("eta", self.eta))
        object.__setattr__(self, "mu", _unit_interval("mu", self.mu))

    def lookahead(self, theta, state):
        return theta + self.mu * state["velocity"]

    def update(self, grad, state):
        step = self.mu * state["velocity"] - self.eta * grad
        state["velocity"] = step
        state["t"] += 1
        return step


@dataclasses.dataclass(frozen=True)
class Adam(Optimizer):
    """Adam (Kingma and Ba) with bias correction, as ``torch.optim.Adam``."""

    eta: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    name = "adam"

    def __post_init__(self):
        object.__setattr__(self, "eta", positive_step("eta", self.eta))
        object.__setattr__(self, "beta1", _unit_interval("beta1", self.beta1))
        object.__setattr__(self, "beta2", _unit_interval("beta2", self.beta2))
        object.__setattr__(self, "eps", _positive("eps", self.eps))

    def init_state(self, n_params):
        return {"m": np.zeros(n_params), "s": np.zeros(n_params), "t": 0}

    def update(self, grad, state):
        state["t"] += 1
        t = state["t"]
        state["m"] = self.beta1 * state["m"] + (1.0 - self.beta1) * grad
        state["s"] = self.beta2 * state["s"] + (1.0 - self.beta2) * grad * grad
        m_hat = state["m"] / bias_correction(self.beta1, t)
        s_hat = state["s"] / bias_correction(self.beta2, t)
        return -self.eta * m_hat / (np.sqrt(s_hat) + self.eps)


@dataclasses.dataclass(frozen=True)
class RMSProp(Optimizer):
    """RMSProp (Hinton), as ``torch.optim.RMSprop`` without momentum or centring."""

    eta: float
    alpha: float = 0.99
    eps: float = 1e-8
    name = "rmsprop"

    def __post_init__(self):
        object.__setattr__(self, "eta", positive_step("eta", self.eta))
        object.__setattr__(self, "alpha", _unit_interval("alpha", self.alpha))
        object.__setattr__(self, "eps", _positive("eps", self.eps))

    def init_state(self, n_params):
        return {"s": np.zeros(n_params), "t": 0}

    def update(self, grad, state):
        state["t"] += 1
        state["s"] = self.alpha * state["s"] + (1.0 - self.alpha) * grad * grad
        return -self.eta * grad / (np.sqrt(state["s"]) + self.eps)


def bias_correction(beta: float, t: int) -> float:
    """1 - beta^t, Adam's correction of a moment estimate started at zero."""
    return 1.0 - beta**t

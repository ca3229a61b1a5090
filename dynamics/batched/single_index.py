"""Autograd reference for the single-index DEQ: the risk through a torch Newton solve.

The NumPy model's IFT gradient and analytic Hessian (claims SIM-GRAD, SIM-HESS) are
checked against derivatives that torch takes *through the iterations* of a
safeguarded Newton solve, with no implicit-function formula anywhere:

1. a bracketed Newton phase from the cold start sigma(a) (``torch.where`` picks the
   Newton step or the bisection point, as in the NumPy solver), run for a fixed
   number of iterations (found by an untraced pre-pass: until max |F| <= 1e-15) so
   that ``torch.func`` transforms can trace it;
2. ``polish`` plain Newton steps. The Newton map N(y) = y - F(y)/F'(y) has
   dN/dy = 0 at the root, so after the solve has converged each step squares the
   error of the derivatives carried through it: first and second derivatives are
   exact (to rounding) after two such steps.

float64 throughout. Reverse-mode and forward-over-reverse (``torch.func.hessian``)
are both correct here: no ``torch.linalg.solve`` is involved (pitfall P10).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch

from ..errors import WellPosednessError, reject_unknown
from ..models.activations import LEAKY_SLOPE, Activation

_GELU_C = float(np.sqrt(2.0 / np.pi))
_GELU_K = 0.044715

#: Cap on the bracketed iterations (bisection alone reaches 1e-16 of a width-10
#: bracket in 57).
NEWTON_ITERS = 80
#: Residual at which the pre-pass stops counting iterations.
PREPASS_TOL = 1e-15
#: Plain Newton steps after convergence (derivatives of order <= 3 are then exact).
POLISH_STEPS = 3


def torch_sigma(act: Activation) -> tuple[Callable, Callable]:
    """(sigma, sigma') of a table entry as torch functions."""
    name = act.name
    if name == "sigmoid":
        return torch.sigmoid, lambda s: torch.sigmoid(s) * (1 - torch.sigmoid(s))
    if name == "tanh":
        return torch.tanh, lambda s: 1 - torch.tanh(s) ** 2
    if name == "sigma_eps":
        eps = act.eps
        return (
            lambda s: s + eps * torch.tanh(s),
            lambda s: 1 + eps * (1 - torch.tanh(s) ** 2),
        )
    if name == "identity":
        return (lambda s: s), (lambda s: torch.ones_like(s))
    if name == "gelu":

        def gelu(z):
            return 0.5 * z * (1 + torch.tanh(_GELU_C * (z + _GELU_K * z**3)))

        def dgelu(z):
            t = torch.tanh(_GELU_C * (z + _GELU_K * z**3))
            hp = _GELU_C * (1 + 3 * _GELU_K * z * z)
            return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * hp

        return gelu, dgelu
    if name == "leaky_relu":
        return (
            lambda z: torch.where(z >= 0, z, LEAKY_SLOPE * z),
            lambda z: torch.where(
                z >= 0, torch.ones_like(z), torch.full_like(z, LEAKY_SLOPE)
            ),
        )
    raise reject_unknown(
        "activation",
        name,
        ["sigmoid", "tanh", "sigma_eps", "identity", "gelu", "leaky_relu"],
    )


def newton_fixed_point(
    act: Activation,
    a: torch.Tensor,
    v: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    *,
    iters: int = NEWTON_ITERS,
    polish: int = POLISH_STEPS,
) -> torch.Tensor:
    """Differentiable roots of y = sigma(a + v y) inside [lo, hi] (see module doc)."""
    sigma, dsigma = torch_sigma(act)
    y = torch.clamp(sigma(a), lo, hi)
    for _ in range(iters):
        s = a + v * y
        F = y - sigma(s)
        prop = y - F / (1 - v * dsigma(s))
        pos = F > 0
        hi = torch.where(pos, y, hi)
        lo = torch.where(pos, lo, y)
        ok = (prop >= lo) & (prop <= hi)
        y = torch.where(ok, prop, 0.5 * (lo + hi))
    for _ in range(polish):
        s = a + v * y
        y = y - (y - sigma(s)) / (1 - v * dsigma(s))
    return y


def _iterations_needed(act, a, v, lo, hi) -> int:
    sigma, _ = torch_sigma(act)
    for k in range(1, NEWTON_ITERS + 1):
        y = newton_fixed_point(act, a, v, lo, hi, iters=k, polish=0)
        if float(torch.max(torch.abs(y - sigma(a + v * y)))) <= PREPASS_TOL:
            return k
    return NEWTON_ITERS


def risk_function(
    X: np.ndarray, y: np.ndarray, act: Activation, theta0: np.ndarray
) -> Callable[[torch.Tensor], torch.Tensor]:
    """theta -> (1/n) sum (f_theta(x_i) - y_i)^2 in torch, for theta near ``theta0``.

    The bracket is fixed from ``theta0`` (NumPy table rule, widened by 1) so that the
    function stays traceable by ``torch.func``; derivatives are taken at theta0.
    """
    if not act.well_posed(float(theta0[-1])):
        raise WellPosednessError(
            f"{act.label}: v = {theta0[-1]!r} violates {act.condition_text()}"
        )
    a0 = X @ theta0[:-1]
    lo_np, hi_np = act.bracket(a0, float(theta0[-1]))
    lo0 = torch.as_tensor(np.broadcast_to(lo_np, a0.shape) - 1.0, dtype=torch.float64)
    hi0 = torch.as_tensor(np.broadcast_to(hi_np, a0.shape) + 1.0, dtype=torch.float64)
    Xt = torch.as_tensor(X, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64)
    with torch.no_grad():
        iters = _iterations_needed(
            act,
            Xt @ torch.as_tensor(theta0[:-1]),
            torch.tensor(float(theta0[-1])),
            lo0,
            hi0,
        )

    def risk(theta: torch.Tensor) -> torch.Tensor:
        f = newton_fixed_point(act, Xt @ theta[:-1], theta[-1], lo0, hi0, iters=iters)
        return torch.mean((f - yt) ** 2)

    return risk


def autograd_grad(X, y, act: Activation, theta: np.ndarray) -> np.ndarray:
    """Reverse-mode gradient of the risk through the torch Newton solve."""
    th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    risk_function(X, y, act, theta)(th).backward()
    return th.grad.numpy().copy()


def autograd_hessian(X, y, act: Activation, theta: np.ndarray) -> np.ndarray:
    """``torch.func.hessian`` (forward-over-reverse) of the risk through the solve.
    Raises NonSmoothActivationError for a non-C^2 activation."""
    act.require_smooth("the autograd Hessian of the risk")
    fn = risk_function(X, y, act, theta)
    with warnings.catch_warnings():
        # torch.func's forward mode scripts a helper on first use, and torch 2.13
        # flags torch.jit.script as deprecated; nothing of ours is scripted.
        warnings.filterwarnings(
            "ignore",
            message=".*torch.jit.script.*deprecated",
            category=DeprecationWarning,
        )
        return torch.func.hessian(fn)(torch.tensor(theta, dtype=torch.float64)).numpy()

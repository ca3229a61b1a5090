"""A-priori bounds and rate constants of the linear DEQ (spec R3, R4, R6).

Every function is a pure function of a model (:class:`LinearDEQ`, or
:class:`MatrixLinearDEQ` **without** readout) and the initial parameters ``theta0``.
The formulas are project derivations ([D] in the spec), so the constants are kept in
one place (:func:`linear_constants`) and the loss normalisation is a parameter:

* ``loss_factor`` is the factor in front of the residual in the gradient of the loss
  being trained: 2.0 for the spec's no-1/2 MSE (the default, ``LOSS_FACTOR``), 1.0
  for a 1/2-MSE. Gradient-based constants (PL constant, GF rate, ``ell``, GD factor)
  scale with it (pitfall P7).
* ``R0`` below is always the model's no-1/2 MSE at ``theta0`` **minus its minimum**
  (``model.min_risk``), so that non-realizable data are handled as
  docs/theory/linear.md says; the effective target is the least-squares solution
  ``model.beta_star`` / ``M_star``.

Notation (docs/theory/linear.md): ``lam = lambda_min(Sigma_hat)``, ``Lam =
lambda_max(Sigma_hat)``,
``Q0 = ||u0||^2 + (1 - v0)^2 = r0^2``, ``C0 = A0 A0^T + U0 U0^T``.

Functions (result, claim):

* :func:`beta_bar`, :func:`m_bar`: bound on ||beta(t)|| or ||M(t)||_2 (R3, LIN-COND);
* :func:`delta`, :func:`cond_lower_bound`: conditioning floor (R3, LIN-COND);
* :func:`gf_rate`, :func:`gf_envelope`: GF exponential rate (R4, LIN-GF-RATE);
* :func:`gf_limit`: GF limit point (R4, LIN-GF-LIMIT);
* :func:`smoothness_ell`, :func:`gd_step_bound`: Hessian bound and eta <= 1/ell
  (R6, LIN-GD-RATE, LIN-GD-STEP);
* :func:`gd_rate_factor`, :func:`gd_envelope`: GD contraction factor (R6,
  LIN-GD-RATE).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._validate import param_vector, positive_step
from .errors import InvalidInputError, RankDeficientError, ShapeError
from .models.base import LOSS_FACTOR
from .models.linear_deq import LinearDEQ
from .models.matrix_deq import MatrixLinearDEQ

__all__ = [
    "LinearConstants",
    "linear_constants",
    "excess_risk",
    "beta_bar",
    "m_bar",
    "delta",
    "smoothness_ell",
    "gd_step_bound",
    "gf_rate",
    "gf_envelope",
    "gd_rate_factor",
    "gd_envelope",
    "gf_limit",
    "cond_lower_bound",
]


@dataclasses.dataclass(frozen=True)
class LinearConstants:
    """Every data- and initialisation-dependent constant of R3, R4 and R6.

    Attributes:
        scalar: True for the scalar-state model, False for the matrix one.
        lam: lambda_min(Sigma_hat).
        Lam: lambda_max(Sigma_hat).
        R0: excess risk at theta0 (no-1/2 MSE minus its minimum).
        target_norm: ||beta*|| (scalar) or ||M*||_2 (matrix).
        bound_norm: beta_bar (scalar) or M_bar (matrix) = target_norm + sqrt(R0/lam).
        c0_max: Q0 (scalar) or lambda_max(C0) (matrix).
        c0_min: Q0 (scalar) or lambda_min(C0) (matrix).
    """

    scalar: bool
    lam: float
    Lam: float
    R0: float
    target_norm: float
    bound_norm: float
    c0_max: float
    c0_min: float


def _check_model(model) -> bool:
    """True for the scalar model; rejects a matrix model with a trained readout."""
    if isinstance(model, LinearDEQ):
        return True
    if isinstance(model, MatrixLinearDEQ):
        if model.readout:
            raise ShapeError(
                "the R3/R4/R6 bounds are derived for the matrix DEQ without "
                "readout (the loss controls B M, not M); build the model "
                "with readout=False"
            )
        return False
    raise InvalidInputError(
        f"expected a LinearDEQ or MatrixLinearDEQ; got {type(model).__name__}"
    )


#: lambda_min(Sigma_hat) at or below this multiple of d eps64 lambda_max counts as 0:
#: eigvalsh's backward error is ~d eps64 ||Sigma_hat||, so a smaller value is rounding.
RANK_RTOL = 10.0


def _check_lam(model) -> float:
    """lambda_min(Sigma_hat), after checking that the data have full column rank."""
    lam, Lam = float(model.lambda_min), float(model.lambda_max)
    if model.n < model.d:
        raise RankDeficientError(
            f"the data have n = {model.n} samples but d = {model.d} features, so "
            "Sigma_hat = X^T X / n is singular and the R3/R4/R6 bounds (which divide "
            "by lambda_min) do not apply; use n >= d samples with full-rank inputs"
        )
    floor = RANK_RTOL * model.d * np.finfo(np.float64).eps * max(Lam, 0.0)
    if not lam > floor:
        raise RankDeficientError(
            f"lambda_min(Sigma_hat) = {lam:.3e} is not positive beyond rounding "
            f"(floor {floor:.1e} = {RANK_RTOL:g} d eps lambda_max): the inputs are "
            "rank-deficient and the bounds need full-rank inputs with n >= d; drop "
            "collinear features or add samples"
        )
    return lam


def _check_loss_factor(loss_factor) -> float:
    c = float(loss_factor)
    if not (math.isfinite(c) and c > 0.0):
        raise InvalidInputError(
            f"loss_factor must be positive and finite; got {loss_factor!r}"
        )
    return c


def excess_risk(model, theta) -> float:
    """Risk minus its minimum over predictors (0 for realizable data up to rounding)."""
    return max(float(model.risk(theta)) - float(model.min_risk), 0.0)


def linear_constants(model, theta0) -> LinearConstants:
    """All constants of R3/R4/R6 at ``theta0``; the single place they are computed."""
    scalar = _check_model(model)
    theta0 = param_vector(theta0, model.n_params)
    lam = _check_lam(model)
    R0 = excess_risk(model, theta0)
    if scalar:
        target = float(np.linalg.norm(model.beta_star))
        q0 = float(model.Q(theta0))
        c_max = c_min = q0
    else:
        target = float(np.linalg.norm(model.M_star, 2))
        eig = np.linalg.eigvalsh(model.C(theta0))
        c_min, c_max = float(eig[0]), float(eig[-1])
    return LinearConstants(
        scalar,
        lam,
        float(model.lambda_max),
        R0,
        target,
        target + math.sqrt(R0 / lam),
        c_max,
        c_min,
    )


# --------------------------------------------------------------------------- R3


def beta_bar(model, theta0) -> float:
    """beta_bar = ||beta*|| + sqrt(R0 / lam), a bound on ||beta|| while R <= R0.

    R3, claim LIN-COND (scalar). Uses R >= lam ||beta - beta*||^2 (+ min risk).
    """
    k = linear_constants(model, theta0)
    if not k.scalar:
        raise ShapeError(
            "beta_bar is the scalar-model bound; use m_bar for the matrix DEQ"
        )
    return k.bound_norm


def m_bar(model, theta0) -> float:
    """M_bar = ||M*||_2 + sqrt(R0 / lam), a bound on ||M||_2 while R <= R0.

    R3, claim LIN-COND (matrix, no readout).
    """
    k = linear_constants(model, theta0)
    if k.scalar:
        raise ShapeError("m_bar is the matrix-model bound; use beta_bar for LinearDEQ")
    return k.bound_norm


def delta(model, theta0) -> float:
    """delta = r0 / sqrt(1 + beta_bar^2): the floor of |1 - v| along GF (R3, R6).

    Claims LIN-COND (a) and LIN-GD-RATE (a). Scalar model only.
    """
    k = linear_constants(model, theta0)
    if not k.scalar:
        raise ShapeError("delta is defined for the scalar model; use cond_lower_bound")
    return math.sqrt(k.c0_max) / math.sqrt(1.0 + k.bound_norm**2)


def cond_lower_bound(model, theta0) -> float:
    """The R3 conditioning floor (claim LIN-COND).

    Scalar: a lower bound on |1 - v(t)|, namely r0 / sqrt(1 + beta_bar^2) (= delta).
    Matrix (no readout): a lower bound on sigma_min(I - W(t))^2, namely
    lambda_min(C0) / (1 + M_bar^2). Both hold along GF and along any GD run whose risk
    never increases (R3, R5).
    """
    k = linear_constants(model, theta0)
    if k.scalar:
        return math.sqrt(k.c0_max) / math.sqrt(1.0 + k.bound_norm**2)
    return k.c0_min / (1.0 + k.bound_norm**2)


# --------------------------------------------------------------------------- R4


def gf_rate(model, theta0, loss_factor: float = LOSS_FACTOR) -> float:
    """kappa with R(t) - R_min <= (R0) exp(-kappa t) along GF (R4, claim LIN-GF-RATE).

    Scalar: kappa = 2 c lam / Q0; matrix: kappa = 2 c lam / lambda_max(C0), with
    c = ``loss_factor`` (so 4 lam / Q0 for the no-1/2 MSE). From the PL inequality
    ||grad R||^2 >= 2 c lam R / Q (claim LIN-PL) and conservation of Q (or C).
    """
    c = _check_loss_factor(loss_factor)
    k = linear_constants(model, theta0)
    return 2.0 * c * k.lam / k.c0_max


def gf_envelope(model, theta0, t, loss_factor: float = LOSS_FACTOR):
    """The R4 envelope R_min + R0 exp(-kappa t) of the risk along GF (LIN-GF-RATE).

    ``t`` may be a scalar or an array of times; the return value has its shape.
    """
    kappa = gf_rate(model, theta0, loss_factor)
    R0 = excess_risk(model, theta0)
    out = float(model.min_risk) + R0 * np.exp(-kappa * np.asarray(t, dtype=float))
    return float(out) if np.ndim(out) == 0 else out


def gf_limit(model, theta0) -> np.ndarray:
    """theta_inf = (beta* (1 - v_inf), v_inf), the GF limit of the scalar model (R4).

    1 - v_inf = sign(1 - v0) r0 / sqrt(1 + ||beta*||^2): where the zero-risk line meets
    the initial sphere on the starting branch (claim LIN-GF-LIMIT).
    """
    if not isinstance(model, LinearDEQ):
        raise ShapeError("gf_limit is derived for the scalar model (LinearDEQ)")
    theta0 = param_vector(theta0, model.n_params)
    gap0 = model.one_minus_v(theta0)
    r0 = math.sqrt(model.Q(theta0))
    bs = np.asarray(model.beta_star, dtype=float)
    gap = math.copysign(r0 / math.sqrt(1.0 + float(bs @ bs)), gap0)
    return np.concatenate([bs * gap, [1.0 - gap]])


# --------------------------------------------------------------------------- R6


def smoothness_ell(model, theta0, loss_factor: float = LOSS_FACTOR) -> float:
    """ell of R6 (a): ||Hessian|| <= ell on {|1-v| >= delta/2, ||beta|| <= beta_bar}.

    ell = c [Lam (1 + beta_bar^2) + sqrt(Lam R0) (1 + 2 beta_bar)] / (delta/2)^2 with
    c = ``loss_factor``; for the no-1/2 MSE this is the spec's
    [2 Lam (1 + beta_bar^2) + 2 sqrt(Lam R0)(1 + 2 beta_bar)] / (delta/2)^2.
    Scalar model only (no explicit matrix threshold is derived). Claims LIN-GD-RATE (a),
    LIN-GD-STEP.
    """
    c = _check_loss_factor(loss_factor)
    k = linear_constants(model, theta0)
    if not k.scalar:
        raise ShapeError(
            "R6 derives an explicit smoothness constant only for the scalar "
            "model; the matrix GD rate is conditional (gd_rate_factor)"
        )
    bb = k.bound_norm
    dlt = math.sqrt(k.c0_max) / math.sqrt(1.0 + bb**2)
    num = k.Lam * (1.0 + bb**2) + math.sqrt(k.Lam * k.R0) * (1.0 + 2.0 * bb)
    return c * num / (dlt / 2.0) ** 2


def gd_step_bound(model, theta0, loss_factor: float = LOSS_FACTOR) -> float:
    """1 / ell: the R6 (a) step-size condition (claims LIN-GD-RATE, LIN-GD-STEP)."""
    return 1.0 / smoothness_ell(model, theta0, loss_factor)


def gd_rate_factor(model, theta0, eta, loss_factor: float = LOSS_FACTOR) -> float:
    """Per-step GD contraction factor q of R6, R_k - R_min <= q^k R0 (LIN-GD-RATE).

    q = 1 - c eta lam / (K0 + c eta R0) with c = ``loss_factor`` and K0 = Q0 (scalar)
    or lambda_max(C0) (matrix); for the no-1/2 MSE, 1 - 2 eta lam / (K0 + 2 eta R0).
    R0 is the no-1/2 excess risk, so c eta R0 is 2 eta times the trained loss (the
    cumulative-drift bound of R5).

    * Scalar with eta <= 1/ell: unconditional (R6 a).
    * Otherwise (scalar or matrix): valid while every step so far satisfied the
      descent inequality R_{j+1} <= R_j - (eta/2) ||grad R_j||^2 (R6 b); callers check
      that per step. For the scalar model lambda_max(C0) = Q0, so (a) and (b) agree.
    """
    c = _check_loss_factor(loss_factor)
    eta = positive_step("eta", eta)
    k = linear_constants(model, theta0)
    return 1.0 - c * eta * k.lam / (k.c0_max + c * eta * k.R0)


def gd_envelope(model, theta0, eta, steps, loss_factor: float = LOSS_FACTOR):
    """R_min + q^k R0 for k in ``steps`` (scalar or array), q = gd_rate_factor (R6)."""
    q = gd_rate_factor(model, theta0, eta, loss_factor)
    R0 = excess_risk(model, theta0)
    out = float(model.min_risk) + R0 * q ** np.asarray(steps, dtype=float)
    return float(out) if np.ndim(out) == 0 else out

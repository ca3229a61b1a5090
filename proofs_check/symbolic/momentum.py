"""Certificates for the linear DEQs under heavy-ball and Nesterov momentum (LIN-MOM-*).

Notation. ``c = (0_d, 1)`` is the singular point, ``Q(theta) = ||theta - c||^2``,
``p = theta_k - theta_{k-1}`` the incoming velocity, ``Delta = theta_{k+1} - theta_k``
the step, ``P = <theta_k - c, p>`` the radial velocity and
``E = Q + 2 mu / (1 - mu) P`` the velocity-corrected quantity. Matrix case:
``Phi = [I - W, U]``, ``C = Phi Phi^T``, velocity ``V_Phi = [-V_W, V_U]`` (A = I - W
moves opposite to W), ``P = Phi V_Phi^T`` (m x m), and with a readout
``Psi = [I - W; B]``, ``C' = Psi^T Psi``.

Every derivation starts from the model (the fixed point solved by SymPy, the risk an
undefined loss ``ell``), lets SymPy differentiate it, builds theta_{k+1} from the
update rule, and reduces ``left side - right side`` to 0. The first-order term
``-2 eta <theta - c, grad R>`` vanishes by the generator identity
``<u, grad_u R> - (1-v) d_v R = 0`` (matrix: ``G_W A^T = G_U U^T``), which each
certificate also derives and reduces.

Heavy ball, ``Delta = mu p - eta g(theta)``:
    Q_{k+1} - Q_k = ||Delta||^2 + 2 mu P_k,    P_{k+1} = mu P_k + ||Delta||^2,
    E_{k+1} - E_k = (1 + mu) / (1 - mu) ||Delta||^2.
Nesterov, ``y = theta + mu p``, ``Delta = mu p - eta g(y)``:
    Q_{k+1} - Q_k = eta^2 ||g(y)||^2 + 2 mu P_k + mu^2 ||p||^2,
    P_{k+1} = mu P_k + mu^2 ||p||^2 - eta mu <g(y), p> + eta^2 ||g(y)||^2,
    E_{k+1} - E_k = (eta^2 ||g(y)||^2 + mu^2 ||p||^2 + mu ||Delta||^2) / (1 - mu).
The matrix statements are the same with ``a b^T`` in place of ``<a, b>``.
"""

from __future__ import annotations

import sympy as sp

from ._common import vec
from .certificate import Derivation
from .linear import (
    _matrix_header,
    _reduce_matrix_list,
    _scalar_header,
    matrix_linear_general,
    scalar_linear_gradient,
)

METHODS = ("heavy-ball", "nesterov")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown momentum method {method!r}; choose one of {METHODS}")


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def _scalar_q(theta):
    return sum(t**2 for t in theta[:-1]) + (1 - theta[-1]) ** 2


def lin_sym_mom_scalar(
    d: int = 2, method: str = "heavy-ball", cross_factor: int = 2
) -> Derivation:
    """LIN-MOM-DRIFT, scalar linear DEQ: the exact one-step change of Q, of the radial
    velocity P and of E = Q + 2 mu/(1-mu) P under heavy ball or Nesterov.

    ``cross_factor`` multiplies mu P in the claimed drift (2 is the claim); any other
    value must leave a non-zero residual.
    """
    _check_method(method)
    mdl = scalar_linear_gradient(d)
    u, v, theta, grad = mdl["u"], mdl["v"], mdl["theta"], mdl["grad"]
    eta, mu = sp.symbols("eta mu", positive=True)
    p = vec("p", d + 1)
    der = Derivation(
        "LIN-MOM-DRIFT",
        f"lin_sym_mom_scalar_{method.replace('-', '_')}",
        "scalar linear DEQ",
        f"d={d}",
        f"{method}: exact one-step change of Q = ||u||^2 + (1-v)^2, of the radial "
        "velocity P = <theta - c, p> and of E = Q + 2 mu/(1-mu) P, for any loss",
    )
    _scalar_header(der, mdl)
    c = [0] * d + [1]
    gen = _dot(u, grad[:-1]) - (1 - v) * grad[-1]
    der.step("generator identity <u, grad_u R> - (1-v) d_v R", gen)
    if method == "heavy-ball":
        der.step("heavy ball: Delta = mu p - eta grad R(theta)")
    else:
        # The symbols (u, v) stand for the lookahead y = theta + mu p, where the
        # gradient is taken; theta_k itself is y - mu p.
        theta = [t - mu * pi for t, pi in zip(theta, p, strict=True)]
        der.step(
            "Nesterov: (u, v) is the lookahead y = theta + mu p, so theta = y - mu p; "
            "Delta = mu p - eta grad R(y)"
        )
    gy = grad
    rel = [t - ci for t, ci in zip(theta, c, strict=True)]  # theta - c = (u, v - 1)
    step = [mu * pi - eta * gi for pi, gi in zip(p, gy, strict=True)]
    new = [t + s for t, s in zip(theta, step, strict=True)]
    new_rel = [t - ci for t, ci in zip(new, c, strict=True)]
    dq = _scalar_q(new) - _scalar_q(theta)
    step2, p2, g2 = _dot(step, step), _dot(p, p), _dot(gy, gy)
    P, P_new = _dot(rel, p), _dot(new_rel, step)
    kappa = 2 * mu / (1 - mu)
    dE = dq + kappa * (P_new - P)
    if method == "heavy-ball":
        claims = [
            (dq, step2 + cross_factor * mu * P, "Q+ - Q = ||Delta||^2 + 2 mu P"),
            (P_new, mu * P + step2, "P+ = mu P + ||Delta||^2"),
            (dE, (1 + mu) / (1 - mu) * step2, "E+ - E = (1+mu)/(1-mu) ||Delta||^2"),
        ]
    else:
        gp = _dot(gy, p)
        claims = [
            (dq, eta**2 * g2 + cross_factor * mu * P + mu**2 * p2,
             "Q+ - Q = eta^2 ||g(y)||^2 + 2 mu P + mu^2 ||p||^2"),
            (P_new, mu * P + mu**2 * p2 - eta * mu * gp + eta**2 * g2,
             "P+ = mu P + mu^2 ||p||^2 - eta mu <g(y), p> + eta^2 ||g(y)||^2"),
            (dE, (eta**2 * g2 + mu**2 * p2 + mu * step2) / (1 - mu),
             "E+ - E = (eta^2 ||g(y)||^2 + mu^2 ||p||^2 + mu ||Delta||^2)/(1-mu)"),
        ]
    der.step("Q+ - Q = 2 <theta - c, Delta> + ||Delta||^2, from the update rule", dq)
    res = [gen]
    for lhs, rhs, text in claims:
        der.step(f"claim {text}; right side", rhs)
        res.append(lhs - rhs)
    der.residual = sp.Matrix(res)
    der.data = {"eta": eta, "mu": mu, "p": p, "step": step, "dq": dq}
    return der


# --- matrix linear DEQ, general shapes ---------------------------------------------


def lin_sym_mom_matrix(
    method: str = "heavy-ball", readout: bool = False, cross_factor: int = 1
) -> Derivation:
    """LIN-MOM-DRIFT, matrix linear DEQ of general shapes: the exact one-step change of
    C = A A^T + U U^T (and C' = A^T A + B^T B with a readout) and of the radial
    velocity P = Phi V_Phi^T under heavy ball or Nesterov.

    ``cross_factor`` multiplies mu (P + P^T) in the claimed drift (1 is the claim).
    """
    _check_method(method)
    mdl = matrix_linear_general(readout)
    m, d, k = mdl["m"], mdl["d"], mdl["k"]
    A, U, B = mdl["A"], mdl["U"], mdl["B"]
    gW, gU, gB = mdl["gW"], mdl["gU"], mdl["gB"]
    eta, mu = sp.symbols("eta mu", positive=True)
    VW, VU = sp.MatrixSymbol("V_W", m, m), sp.MatrixSymbol("V_U", m, d)
    VB = sp.MatrixSymbol("V_B", k, m) if readout else None
    der = Derivation(
        "LIN-MOM-DRIFT",
        f"lin_sym_mom_matrix_{method.replace('-', '_')}"
        + ("_readout" if readout else ""),
        "matrix linear DEQ" + (" with readout" if readout else ""),
        "general m, d" + (", k" if readout else ""),
        f"{method}: C+ - C = "
        + ("D D^T + mu (P + P^T)" if method == "heavy-ball"
           else "eta^2 G G^T + mu (P + P^T) + mu^2 V V^T")
        + " with P = Phi V^T, and the recursion of P+ = Phi+ D^T"
        + (" (and the C' analogue)" if readout else ""),
    )
    _matrix_header(der, mdl)
    der.step("generator identity G_W A^T - G_U U^T", gW * A.T - gU * U.T)
    if method == "heavy-ball":
        # theta_k is (A, U, B); the gradient is taken there.
        A0, U0, B0 = A, U, B
        der.step("heavy ball: W+ = W + mu V_W - eta G_W, U+ = U + mu V_U - eta G_U")
    else:
        # The symbols A, U, B stand for the lookahead point y = theta + mu V, where
        # the gradient is taken; theta_k itself is y - mu V (A = I - W moves by -V_W).
        A0, U0 = A + mu * VW, U - mu * VU
        B0 = B - mu * VB if readout else None
        der.step(
            "Nesterov: the symbols A, U (, B) are the lookahead y = theta + mu V, so "
            "theta = (A + mu V_W, U - mu V_U); W+ = W_y - eta G_W(y), ..."
        )
    dA = -(mu * VW - eta * gW) if method == "heavy-ball" else A + eta * gW - A0
    dU = (mu * VU - eta * gU) if method == "heavy-ball" else U - eta * gU - U0
    A1, U1 = A0 + dA, U0 + dU
    P = A0 * (-VW).T + U0 * VU.T
    DD = dA * dA.T + dU * dU.T
    if method == "heavy-ball":
        rhs = DD + cross_factor * mu * (P + P.T)
        Pnew = mu * P + DD
    else:
        GG = gW * gW.T + gU * gU.T
        VV = VW * VW.T + VU * VU.T
        rhs = eta**2 * GG + cross_factor * mu * (P + P.T) + mu**2 * VV
        # Gamma V^T with Gamma = [-G_W, G_U] (the gradient in Phi) and V = [-V_W, V_U]
        cross = gW * VW.T + gU * VU.T
        Pnew = mu * P + mu**2 * VV - eta * mu * cross + eta**2 * GG
    parts = [
        gW * A.T - gU * U.T,
        A1 * A1.T + U1 * U1.T - (A0 * A0.T + U0 * U0.T) - rhs,
        A1 * dA.T + U1 * dU.T - Pnew,
    ]
    der.step("residual C(theta+) - C(theta) - claimed drift", parts[1])
    der.step("residual P+ - claimed recursion", parts[2])
    if readout:
        dB = (mu * VB - eta * gB) if method == "heavy-ball" else B - eta * gB - B0
        B1 = B0 + dB
        Pp = A0.T * (-VW) + B0.T * VB
        DDp = dA.T * dA + dB.T * dB
        if method == "heavy-ball":
            rhs_p = DDp + cross_factor * mu * (Pp + Pp.T)
        else:
            rhs_p = (
                eta**2 * (gW.T * gW + gB.T * gB)
                + cross_factor * mu * (Pp + Pp.T)
                + mu**2 * (VW.T * VW + VB.T * VB)
            )
        parts.append(A.T * gW - B.T * gB)
        parts.append(A1.T * A1 + B1.T * B1 - (A0.T * A0 + B0.T * B0) - rhs_p)
        der.step("generator identity A^T G_W - B^T G_B, and C'+ - C' residual")
    der.step("reduce: expand, cancel A^-1 A = I (and its transposes)")
    der.residual = parts
    der.reduce = _reduce_matrix_list
    return der

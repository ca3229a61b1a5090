"""Certificates for the linear DEQs (R1, R3-R5): LIN-SYM-CONS, LIN-SYM-GD, LIN-FACTOR.

Every derivation starts from the fixed-point equation (scalar: solved by SymPy;
matrix: z = W z + U x, whose solution M = (I - W)^-1 U is the definition), builds the
risk ell(beta), ell(M) or ell(B M) for an *arbitrary* smooth loss ell, lets SymPy
differentiate it, forms the flow or the GD step, and reduces the claim to 0.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from ._common import mat, name_partials, vec
from .certificate import Derivation, reduce_matrix_expression

# --- scalar-state linear DEQ -------------------------------------------------------


def scalar_linear_beta(d: int):
    """(u, v, beta): beta solved by SymPy from y = <u, x> + v y (docs/theory/linear.md).
    """
    u, x = vec("u", d), vec("x", d)
    v, y = sp.symbols("v y", real=True)
    y_star = sp.solve(sp.Eq(y, sum(ui * xi for ui, xi in zip(u, x)) + v * y), y)[0]
    beta = [sp.simplify(sp.diff(y_star, xi)) for xi in x]  # f(x) = <beta, x>
    return u, v, beta, y_star


def scalar_linear_gradient(d: int, loss: Callable | None = None):
    """Risk and its SymPy gradient for the scalar linear DEQ.

    Args:
        d: input dimension.
        loss: ``loss(beta_list) -> expr``; None means an undefined function ell(beta)
            whose partials are renamed g1..gd.

    Returns:
        dict with u, v, theta, beta, R, grad (list), g (partial symbols or None).
    """
    u, v, beta, y_star = scalar_linear_beta(d)
    g = None
    if loss is None:
        ell = sp.Function("ell")
        R = ell(*beta)
        g = vec("g", d)
        grad = [name_partials(sp.diff(R, t), ell, g) for t in (*u, v)]
    else:
        R = loss(beta)
        grad = [sp.diff(R, t) for t in (*u, v)]
    return dict(u=u, v=v, theta=[*u, v], beta=beta, y_star=y_star, R=R, grad=grad, g=g)


def _scalar_header(der: Derivation, mdl: dict) -> None:
    der.step("fixed point y = <u, x> + v y solved by SymPy: y", mdl["y_star"])
    der.step("effective predictor beta = d y / d x", sp.Matrix(mdl["beta"]).T)
    der.step("risk R = ell(beta) for an undefined smooth function ell")
    der.step(
        "SymPy gradient (ell's partials at beta renamed g_i): grad R",
        sp.Matrix(mdl["grad"]).T,
    )


def _Q(u, v):
    return sum(ui**2 for ui in u) + (1 - v) ** 2


def lin_sym_cons_scalar(d: int = 3, Q: Callable | None = None) -> Derivation:
    """LIN-SYM-CONS (R1), scalar: d/dt Q = 0 along GF for any loss ell(beta).

    ``Q(u, v)`` replaces the conserved quantity (default ||u||^2 + (1-v)^2); a wrong
    one must give a non-zero residual.
    """
    mdl = scalar_linear_gradient(d)
    u, v, theta, grad = mdl["u"], mdl["v"], mdl["theta"], mdl["grad"]
    der = Derivation(
        "LIN-SYM-CONS",
        "lin_sym_cons_scalar",
        "scalar linear DEQ",
        f"d={d}",
        "d/dt (||u||^2 + (1-v)^2) = 0 along gradient flow, "
        "and <u, grad_u R> - (1-v) d_v R = 0, for any loss ell(beta)",
    )
    _scalar_header(der, mdl)
    q = (Q or _Q)(u, v)
    flow = [-gi for gi in grad]
    dq = sum(sp.diff(q, t) * ft for t, ft in zip(theta, flow))
    der.step("gradient flow theta' = -grad R; quantity Q", q)
    der.step("dQ/dt = <grad Q, theta'>", dq)
    gen = sum(ui * gi for ui, gi in zip(u, grad[:-1])) - (1 - v) * grad[-1]
    der.step("generator identity <u, grad_u R> - (1-v) d_v R", gen)
    der.residual = sp.Matrix([dq, gen])
    return der


def lin_sym_gd_scalar(d: int = 3, eta_power: int = 2) -> Derivation:
    """LIN-SYM-GD (R5), scalar: Q(theta - eta grad R) - Q(theta) = eta^2 ||grad R||^2.

    ``eta_power`` is the power of eta on the right side (2 is the claim).
    """
    mdl = scalar_linear_gradient(d)
    u, v, theta, grad = mdl["u"], mdl["v"], mdl["theta"], mdl["grad"]
    eta = sp.Symbol("eta", positive=True)
    der = Derivation(
        "LIN-SYM-GD",
        "lin_sym_gd_scalar",
        "scalar linear DEQ",
        f"d={d}",
        "Q(theta - eta grad R) - Q(theta) = eta^2 ||grad R||^2 for any "
        "loss ell(beta) and any step eta",
    )
    _scalar_header(der, mdl)
    new = [t - eta * gi for t, gi in zip(theta, grad)]
    lhs = _Q(new[:-1], new[-1]) - _Q(u, v)
    rhs = eta**eta_power * sum(gi**2 for gi in grad)
    der.step("one GD step theta+ = theta - eta grad R; Q(theta+) - Q(theta)", lhs)
    der.step(f"claimed drift eta^{eta_power} ||grad R||^2", rhs)
    der.residual = lhs - rhs
    return der


def lin_factor_scalar(d: int = 3) -> Derivation:
    """LIN-FACTOR (R3), scalar: Q = (1-v)^2 (1 + ||beta||^2)."""
    u, v, beta, y_star = scalar_linear_beta(d)
    der = Derivation(
        "LIN-FACTOR",
        "lin_factor_scalar",
        "scalar linear DEQ",
        f"d={d}",
        "||u||^2 + (1-v)^2 = (1-v)^2 (1 + ||beta||^2)",
    )
    der.step("fixed point solved by SymPy: y", y_star)
    der.step("beta = d y / d x", sp.Matrix(beta).T)
    der.residual = _Q(u, v) - (1 - v) ** 2 * (1 + sum(b**2 for b in beta))
    return der


def lin_pl_identity_scalar(d: int = 3) -> Derivation:
    """LIN-FACTOR (R4's PL identity).

    ||grad R||^2 = (1 + |beta|^2)(|g|^2 + <g, beta>^2) / Q with g = grad ell(beta).
    """
    mdl = scalar_linear_gradient(d)
    u, v, beta, grad, g = mdl["u"], mdl["v"], mdl["beta"], mdl["grad"], mdl["g"]
    der = Derivation(
        "LIN-FACTOR",
        "lin_pl_identity_scalar",
        "scalar linear DEQ",
        f"d={d}",
        "||grad R||^2 = (1 + ||beta||^2)(||g||^2 + <g, beta>^2)"
        " / Q with g = grad ell(beta) (PL identity, R4)",
    )
    _scalar_header(der, mdl)
    nb2 = sum(b**2 for b in beta)
    gb = sum(gi * b for gi, b in zip(g, beta))
    rhs = (1 + nb2) * (sum(gi**2 for gi in g) + gb**2) / _Q(u, v)
    der.step("right side", rhs)
    der.residual = sum(gi**2 for gi in grad) - rhs
    return der


# --- matrix linear DEQ, general shapes (matrix calculus) ---------------------------


def matrix_linear_general(readout: bool):
    """Matrix symbols of general shape and the SymPy gradients of ell(M) or ell(B M).

    The chain rule gives grad_theta ell(Phi(theta)) = grad_theta tr(G^T Phi(theta)) with
    G = grad ell(Phi) held fixed, so SymPy differentiates the trace of the linearised
    loss with respect to the matrix symbols W, U (and B).
    """
    m, d, k = sp.symbols("m d k", integer=True, positive=True)
    W = sp.MatrixSymbol("W", m, m)
    U = sp.MatrixSymbol("U", m, d)
    Asym = sp.MatrixSymbol("A", m, m)
    M = sp.Inverse(sp.Identity(m) - W) * U
    B = sp.MatrixSymbol("B", k, m) if readout else None
    G = sp.MatrixSymbol("G", k if readout else m, d)  # grad of ell at Phi
    lin = sp.Trace(G.T * B * M) if readout else sp.Trace(G.T * M)

    def in_A(expr):
        # Write every I - W as the symbol A, so that A^-1 A = I can cancel after
        # expansion (expanding I - W first would hide the pair).
        return expr.xreplace({W: sp.Identity(m) - Asym}).doit()

    return dict(
        m=m,
        d=d,
        k=k,
        W=W,
        U=U,
        A=Asym,
        M=M,
        B=B,
        G=G,
        lin=lin,
        gW=in_A(lin.diff(W)),
        gU=in_A(lin.diff(U)),
        gB=in_A(lin.diff(B)) if readout else None,
        raw=dict(gW=lin.diff(W), gU=lin.diff(U), gB=lin.diff(B) if readout else None),
    )


def _matrix_header(der: Derivation, mdl: dict) -> None:
    der.step(
        "fixed point z = W z + U x with A = I - W invertible: z = M x, M", mdl["M"]
    )
    phi = "B M" if mdl["B"] is not None else "M"
    der.step(
        f"risk R = ell({phi}), ell arbitrary; chain rule: grad R = grad tr(G^T "
        f"{phi}) with G = grad ell({phi}) held fixed",
        mdl["lin"],
    )
    for name in ("W", "U", "B"):
        if mdl["g" + name] is not None:
            der.step(f"SymPy matrix calculus: grad_{name} R", mdl["raw"]["g" + name])
    der.step(
        "write I - W = A (a matrix symbol): grad_W R, grad_U R",
        sp.Tuple(mdl["gW"], mdl["gU"]),
    )


def lin_sym_cons_matrix(readout: bool = False) -> Derivation:
    """LIN-SYM-CONS (R1), matrix, general shapes: dC/dt = 0 (and dC'/dt = 0)."""
    mdl = matrix_linear_general(readout)
    A, U, B = mdl["A"], mdl["U"], mdl["B"]
    shapes = "general m, d" + (", k" if readout else "")
    stmt = (
        "d/dt[(I-W)(I-W)^T + U U^T] = 0"
        + (" and d/dt[(I-W)^T(I-W) + B^T B] = 0" if readout else "")
        + " along gradient flow, for any loss"
    )
    der = Derivation(
        "LIN-SYM-CONS",
        f"lin_sym_cons_matrix{'_readout' if readout else ''}",
        "matrix linear DEQ" + (" with readout" if readout else ""),
        shapes,
        stmt,
    )
    _matrix_header(der, mdl)
    Wd, Ud = -mdl["gW"], -mdl["gU"]
    Ad = -Wd
    dC = Ad * A.T + A * Ad.T + Ud * U.T + U * Ud.T
    der.step(
        "flow W' = -grad_W R, U' = -grad_U R, so A' = grad_W R; dC/dt = A'A^T + "
        "A A'^T + U'U^T + U U'^T",
        dC,
    )
    parts = [dC]
    if readout:
        Bd = -mdl["gB"]
        dCp = Ad.T * A + A.T * Ad + Bd.T * B + B.T * Bd
        der.step("dC'/dt = A'^T A + A^T A' + B'^T B + B^T B'", dCp)
        parts.append(dCp)
    der.step("reduce: expand, cancel A^-1 A = I (and its transposes)")
    der.residual = parts
    der.reduce = _reduce_matrix_list
    return der


def _reduce_matrix_list(parts):
    """Reduce each matrix expression; the residual is zero only if all are."""
    reduced = [reduce_matrix_expression(p) for p in parts]
    if all(isinstance(r, sp.ZeroMatrix) or r == 0 for r in reduced):
        return sp.Integer(0)
    return sp.Tuple(*reduced)


_reduce_matrix_list.__name__ = "reduce_matrix_expression"


def lin_sym_gd_matrix(readout: bool = False, eta_power: int = 2) -> Derivation:
    """LIN-SYM-GD (R5), matrix, general shapes: the one-step drift of C (and C')."""
    mdl = matrix_linear_general(readout)
    A, U, B = mdl["A"], mdl["U"], mdl["B"]
    gW, gU, gB = mdl["gW"], mdl["gU"], mdl["gB"]
    eta = sp.Symbol("eta", positive=True)
    c = eta**eta_power
    der = Derivation(
        "LIN-SYM-GD",
        f"lin_sym_gd_matrix{'_readout' if readout else ''}",
        "matrix linear DEQ" + (" with readout" if readout else ""),
        "general m, d" + (", k" if readout else ""),
        "C(theta - eta grad R) - C(theta) = eta^2 (G_W G_W^T + G_U G_U^T)"
        + (
            " and C'(theta+) - C'(theta) = eta^2 (G_W^T G_W + G_B^T G_B)"
            if readout
            else ""
        ),
    )
    _matrix_header(der, mdl)
    A1, U1 = A + eta * gW, U - eta * gU  # W+ = W - eta G_W  =>  A+ = A + eta G_W
    parts = [A1 * A1.T + U1 * U1.T - (A * A.T + U * U.T) - c * (gW * gW.T + gU * gU.T)]
    der.step(
        "GD step W+ = W - eta G_W, U+ = U - eta G_U (A+ = A + eta G_W); residual "
        "C(theta+) - C(theta) - eta^2 (G_W G_W^T + G_U G_U^T)",
        parts[0],
    )
    if readout:
        B1 = B - eta * gB
        parts.append(
            A1.T * A1 + B1.T * B1 - (A.T * A + B.T * B) - c * (gW.T * gW + gB.T * gB)
        )
        der.step(
            "residual C'(theta+) - C'(theta) - eta^2 (G_W^T G_W + G_B^T G_B)", parts[1]
        )
    der.residual = parts
    der.reduce = _reduce_matrix_list
    return der


def lin_factor_matrix() -> Derivation:
    """LIN-FACTOR (R3), matrix, general shapes: A A^T + U U^T = A (I + M M^T) A^T."""
    mdl = matrix_linear_general(False)
    A, U, m = mdl["A"], mdl["U"], mdl["m"]
    M = sp.Inverse(A) * U
    der = Derivation(
        "LIN-FACTOR",
        "lin_factor_matrix",
        "matrix linear DEQ",
        "general m, d",
        "A A^T + U U^T = A (I + M M^T) A^T with M = A^-1 U",
    )
    der.step("M", M)
    der.residual = [A * A.T + U * U.T - A * (sp.Identity(m) + M * M.T) * A.T]
    der.reduce = _reduce_matrix_list
    return der


# --- matrix linear DEQ, explicit small shapes (cross-check) ------------------------


def matrix_linear_explicit(
    m: int, d: int, k: int | None = None, loss: Callable | None = None
):
    """Explicit-entry matrix DEQ: M = (I - W)^-1 U by SymPy, gradients of ell(Phi).

    Args:
        m, d: state and input sizes; k: readout rows (None = no readout).
        loss: ``loss(Phi) -> expr``; None = an undefined ell of Phi's entries (its
            partials are renamed to the k x d (or m x d) matrix G).
    """
    W, U = mat("w", m, m), mat("u", m, d)
    B = mat("b", k, m) if k is not None else None
    A = sp.eye(m) - W
    M = (A.inv(method="ADJ") * U).applyfunc(sp.cancel)
    Phi = M if B is None else B * M
    params = list(W) + list(U) + (list(B) if B is not None else [])
    G = None
    if loss is None:
        ell = sp.Function("ell")
        R = ell(*Phi)
        G = mat("g", *Phi.shape)
        grad = [name_partials(sp.diff(R, t), ell, list(G)) for t in params]
    else:
        R = loss(Phi)
        grad = [sp.diff(R, t) for t in params]
    sizes = (m * m, m * d)
    gW = sp.Matrix(m, m, grad[: sizes[0]])
    gU = sp.Matrix(m, d, grad[sizes[0] : sizes[0] + sizes[1]])
    gB = sp.Matrix(k, m, grad[sizes[0] + sizes[1] :]) if B is not None else None
    return dict(
        W=W,
        U=U,
        B=B,
        A=A,
        M=M,
        Phi=Phi,
        params=params,
        R=R,
        grad=grad,
        gW=gW,
        gU=gU,
        gB=gB,
        G=G,
    )


def lin_sym_cons_matrix_explicit(
    m: int = 2, d: int = 1, k: int | None = None
) -> Derivation:
    """LIN-SYM-CONS (R1), explicit entries: every entry of dC/dt (and dC'/dt) is 0."""
    mdl = matrix_linear_explicit(m, d, k)
    A, U, B = mdl["A"], mdl["U"], mdl["B"]
    shapes = f"m={m}, d={d}" + (f", k={k}" if k is not None else "")
    der = Derivation(
        "LIN-SYM-CONS",
        "lin_sym_cons_matrix_explicit",
        "matrix linear DEQ" + (" with readout" if k is not None else ""),
        shapes,
        "every entry of dC/dt"
        + (" and dC'/dt" if k else "")
        + " vanishes for an undefined loss of the entries of the output map",
    )
    der.step("M = (I - W)^-1 U by SymPy's explicit inverse", mdl["M"])
    der.step(
        "R = ell(entries of "
        + ("B M" if B is not None else "M")
        + "); SymPy gradient with ell's partials renamed g_ij"
    )
    Ad, Ud = mdl["gW"], -mdl["gU"]
    dC = Ad * A.T + A * Ad.T + Ud * U.T + U * Ud.T
    der.step("dC/dt (entry (1,1))", dC[0, 0])
    res = list(dC)
    if B is not None:
        Bd = -mdl["gB"]
        dCp = Ad.T * A + A.T * Ad + Bd.T * B + B.T * Bd
        der.step("dC'/dt (entry (1,1))", dCp[0, 0])
        res += list(dCp)
    der.residual = sp.Matrix(res)
    return der

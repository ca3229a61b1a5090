"""Certificates for approximate backpropagation (docs/theory/approximate.md):
APX-NEUMANN-FACTOR, APX-JFB.

Every method is defined by what it does to the IFT, not by its factor: the exact
Jacobian is SymPy's derivative of the closed-form prediction; an approximate method
multiplies d_theta g(x, f*) (the layer's own derivative at the fixed point) by its
replacement P(J) for (1 - J)^-1, J = d_y g; phantom gradients differentiate m
unrolled damped steps started from the detached fixed point.
"""

from __future__ import annotations

import sympy as sp

from ._common import mat, name_partials, vec
from .certificate import Derivation
from .single_index import single_index_gradient

LAM = sp.Symbol("lambda", positive=True)

#: Method name -> claimed factor c(v) (docs/theory/approximate.md table); m is the
#: number of terms.
FACTORS = {
    "jfb": lambda v, m: 1 - v,
    "neumann": lambda v, m: 1 - v**m,
    "damped": lambda v, m: 1 - (1 - LAM * (1 - v)) ** m,
    "phantom": lambda v, m: 1 - (1 - LAM * (1 - v)) ** m,
}


def _replacement(method: str, J, m: int):
    """P(J) replacing (1 - J)^-1 (JFB: I; Neumann: sum J^k; damped: damped series)."""
    if method == "jfb":
        return sp.Integer(1)
    if method == "neumann":
        return sum(J**k for k in range(m))
    if method == "damped":
        return LAM * sum(((1 - LAM) + LAM * J) ** k for k in range(m))
    raise ValueError(method)


def scalar_linear_approx(method: str, m: int = 2, d: int = 2, n: int = 2, factor=None):
    """Exact and approximate gradients of ell(f_1..f_n) for the scalar linear DEQ.

    Returns (der-ready dict): theta, exact, approx, claimed factor.
    """
    u, v = vec("u", d), sp.Symbol("v", real=True)
    theta = [*u, v]
    X = mat("x", n, d)
    y = sp.Symbol("y")
    layer = [
        lambda yy, i=i: sum(X[i, j] * u[j] for j in range(d)) + v * yy for i in range(n)
    ]
    f = [sp.solve(sp.Eq(y, layer[i](y)), y)[0] for i in range(n)]  # fixed points
    ell = sp.Function("ell")
    gl = vec("l", n)  # ell's partials at the predictions
    L = ell(*f)
    exact = [name_partials(sp.diff(L, t), ell, gl) for t in theta]
    J = sp.diff(layer[0](y), y)  # d_y g = v
    approx = []
    for t in theta:
        total = 0
        for i in range(n):
            if method == "phantom":
                z0 = sp.Symbol("z0")  # the detached fixed point: a constant
                z = z0
                for _ in range(m):
                    z = (1 - LAM) * z + LAM * layer[i](z)
                dzi = sp.diff(z, t).subs(z0, f[i])
            else:
                dg = sp.diff(layer[i](y), t).subs(y, f[i])
                dzi = _replacement(method, J, m) * dg
            total += gl[i] * dzi
        approx.append(total)
    c = (factor or FACTORS[method])(v, m)
    return dict(theta=theta, f=f, J=J, exact=exact, approx=approx, c=c, v=v)


def apx_factor(
    method: str = "neumann", m: int = 2, d: int = 2, n: int = 2, factor=None
) -> Derivation:
    """APX-NEUMANN-FACTOR (§4): approximate gradient = c(v) x exact gradient.

    ``factor(v, m)`` overrides the claimed c(v) (a wrong one must fail).
    """
    mdl = scalar_linear_approx(method, m, d, n, factor)
    der = Derivation(
        "APX-NEUMANN-FACTOR",
        f"apx_factor_{method}",
        "scalar linear DEQ",
        f"{method}, m={m}, d={d}, n={n}",
        f"{method} gradient = c(v) x exact gradient, c = {mdl['c']}",
    )
    der.step("fixed points f_i solved by SymPy from y = <u, x_i> + v y", mdl["f"][0])
    der.step(
        "loss ell(f_1..f_n), ell arbitrary; exact SymPy gradient (partials "
        "renamed l_i), d/dv",
        mdl["exact"][-1],
    )
    if method == "phantom":
        der.step(
            f"phantom: differentiate {m} unrolled steps z <- (1-lam) z + lam g(z)"
            " from the detached fixed point z0, then set z0 = f_i"
        )
    else:
        der.step(
            f"replacement for (1 - J)^-1 with J = d_y g = {mdl['J']}",
            _replacement(method, mdl["J"], m),
        )
    der.step("approximate gradient, d/dv", mdl["approx"][-1])
    der.residual = sp.Matrix(
        [a - mdl["c"] * e for a, e in zip(mdl["approx"], mdl["exact"])]
    )
    return der


def apx_neumann_general_m() -> Derivation:
    """APX-NEUMANN-FACTOR for symbolic m: (1 - v) sum_{k<m} v^k = 1 - v^m."""
    v = sp.Symbol("v", real=True)
    k, m = sp.symbols("k m", integer=True, positive=True)
    der = Derivation(
        "APX-NEUMANN-FACTOR",
        "apx_neumann_general_m",
        "scalar linear DEQ",
        "symbolic m",
        "(1 - v) x sum_{k<m} v^k = 1 - v^m for every m (the Neumann "
        "factor is the truncated series times the exact (1-v)^-1's inverse)",
    )
    series = sp.summation(v**k, (k, 0, m - 1))
    der.step("SymPy sum_{k<m} v^k", series)
    lam = LAM
    damped = lam * sp.summation(((1 - lam) + lam * v) ** k, (k, 0, m - 1))
    der.step("SymPy lam sum_{k<m} ((1-lam) + lam v)^k", damped)
    der.residual = sp.Matrix(
        [
            sp.piecewise_fold((1 - v) * series - (1 - v**m)),
            sp.piecewise_fold((1 - v) * damped - (1 - (1 - lam * (1 - v)) ** m)),
        ]
    )
    der.reduce = _reduce_piecewise
    return der


def _reduce_piecewise(res):
    return res.applyfunc(lambda e: sp.simplify(sp.piecewise_fold(e)))


_reduce_piecewise.__name__ = "simplify(piecewise_fold)"


def apx_jfb_linear(d: int = 2, n: int = 2) -> Derivation:
    """APX-JFB (§4), scalar linear: grad_JFB = (1 - v) grad R and <grad_JFB, grad R> =
    (1 - v) ||grad R||^2 (so descent on v < 1, ascent on v > 1)."""
    mdl = scalar_linear_approx("jfb", 1, d, n)
    v, exact, approx = mdl["v"], mdl["exact"], mdl["approx"]
    der = Derivation(
        "APX-JFB",
        "apx_jfb_linear",
        "scalar linear DEQ",
        f"d={d}, n={n}",
        "grad_JFB = (1 - v) grad R; <grad_JFB, grad R> = (1-v) ||grad R||^2",
    )
    der.step("JFB: d_theta g(x_i, f_i) (no inverse), d/dv", approx[-1])
    inner = sum(a * e for a, e in zip(approx, exact))
    sq = sum(e**2 for e in exact)
    der.residual = sp.Matrix(
        [*(a - (1 - v) * e for a, e in zip(approx, exact)), inner - (1 - v) * sq]
    )
    p = sp.Symbol("p", positive=True)
    sgn = (1 - v) * sq
    der.condition(
        "<grad_JFB, grad R> >= 0 on v < 1 (v = 1 - p, p > 0)",
        sgn.subs(v, 1 - p).is_nonnegative,
    )
    der.condition(
        "<grad_JFB, grad R> <= 0 on v > 1 (v = 1 + p, p > 0)",
        sgn.subs(v, 1 + p).is_nonpositive,
    )
    return der


def apx_jfb_single_index(d: int = 2, n: int = 2) -> Derivation:
    """APX-JFB (§4), single-index: JFB drops 1/(1 - v sigma'(s)); equal at v = 0.

    Per sample i, JFB differentiates the layer sigma(<u, x_i> + v y) at y = f_i
    (no inverse); the exact per-sample gradient uses SymPy's implicit derivative.
    """
    mdl, R, exact = single_index_gradient(d, n)
    u, v, theta, X, y, sigma, fs = (
        mdl[k] for k in ("u", "v", "theta", "X", "y", "sigma", "fs")
    )
    der = Derivation(
        "APX-JFB",
        "apx_jfb_single_index",
        "single-index DEQ, undefined sigma",
        f"d={d}, n={n}",
        "per sample, JFB = (1 - v sigma'(s_i)) "
        "x exact; the JFB gradient equals the exact gradient at v = 0",
    )
    yy, z = sp.Symbol("yy"), sp.Dummy("z")
    res, approx = [], [0] * len(theta)
    for i in range(n):
        s_i = sum(X[i, j] * u[j] for j in range(d)) + v * yy
        sig_p = sp.Subs(sp.Derivative(sigma(z), z), z, s_i.subs(yy, fs[i]))
        for j, t in enumerate(theta):
            jfb = 2 * (fs[i] - y[i]) * sp.diff(sigma(s_i), t).subs(yy, fs[i])
            ift = 2 * (fs[i] - y[i]) * mdl["d1"][i][j].xreplace(dict(zip(mdl["f"], fs)))
            res.append(jfb - (1 - v * sig_p) * ift)
            approx[j] += jfb / n
    der.step("implicit (IFT) gradient by SymPy, d/dv", exact[-1])
    der.step(
        "JFB: (2/n) sum (f_i - y_i) d_theta sigma(<u, x_i> + v y)|_{y = f_i}, d/dv",
        approx[-1],
    )
    res += [a.subs(v, 0) - e.subs(v, 0) for a, e in zip(approx, exact)]
    der.residual = sp.Matrix(res)
    return der

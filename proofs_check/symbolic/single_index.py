"""Certificates for the deep equilibrium single-index model (R7): SIM-NONCONS, SIM-HESS.

The prediction f_i is an undefined function of theta tied to theta by the fixed-point
equation f_i = sigma(<u, x_i> + v f_i) with an undefined activation sigma. SymPy
differentiates that equation and solves the linearised equations for the derivatives
of f_i (implicit differentiation), so no IFT formula is typed in.
"""

from __future__ import annotations

import sympy as sp

from ._common import mat, vec
from .certificate import Derivation

#: Digits used to decide the sign of a closed-form witness value (SymPy/mpmath
#: evaluation with that working precision).
WITNESS_DIGITS = 50


def solve_linear(expr, unknown):
    """Solve ``expr = 0`` for ``unknown``, in which it is linear (a derivative object).

    The unknown is swapped for a plain symbol t, so expr = a t + b, t = -b / a.
    """
    t = sp.Dummy("t")
    lin = expr.xreplace({unknown: t})
    a = sp.diff(lin, t)
    if a == 0 or sp.diff(a, t) != 0:
        raise ValueError(f"{unknown} does not enter {expr} linearly")
    return -lin.subs(t, 0) / a


def single_index_model(d: int, n: int, order: int = 1):
    """Symbols and implicit derivatives of f_i(theta) up to ``order`` (1 or 2).

    Returns a dict: u, v, theta, X (n x d), y, sigma, f (functions f_i(theta)),
    fs (plain symbols for the values f_i), s (pre-activations, in terms of fs),
    eqs (fixed-point residuals), d1[i][j] = df_i/dtheta_j, d2[i][(j, k)].
    """
    u, v = vec("u", d), sp.Symbol("v", real=True)
    theta = [*u, v]
    X, y = mat("x", n, d), vec("y", n)
    sigma = sp.Function("sigma")
    f = [sp.Function(f"f{i + 1}")(*theta) for i in range(n)]
    fs = vec("f", n)
    eqs, d1, d2 = [], [], []
    for i in range(n):
        s_i = sum(X[i, j] * u[j] for j in range(d)) + v * f[i]
        eq = f[i] - sigma(s_i)
        eqs.append(eq)
        first = {}
        for j, tj in enumerate(theta):
            dfi = sp.Derivative(f[i], tj)
            first[j] = solve_linear(sp.diff(eq, tj), dfi)
        d1.append(first)
        second = {}
        if order >= 2:
            subs1 = {sp.Derivative(f[i], tj): first[j] for j, tj in enumerate(theta)}
            for j, tj in enumerate(theta):
                for k_, tk in enumerate(theta):
                    if k_ < j:
                        continue
                    d2f = sp.Derivative(f[i], tj, tk)
                    t = sp.Dummy("t")
                    # Swap the unknown out first: subs would rewrite the second
                    # derivative through the first-derivative rule.
                    lin = sp.diff(eq, tj, tk).xreplace({d2f: t}).xreplace(subs1)
                    second[(j, k_)] = solve_linear(lin, t)
        d2.append(second)
    return dict(
        u=u, v=v, theta=theta, X=X, y=y, sigma=sigma, f=f, fs=fs, eqs=eqs, d1=d1, d2=d2
    )


def _to_values(expr, mdl):
    """Replace the functions f_i(theta) by the plain value symbols f_i."""
    return expr.xreplace(dict(zip(mdl["f"], mdl["fs"])))


def single_index_gradient(d: int, n: int):
    """SymPy gradient of R = (1/n) sum (f_i - y_i)^2 through the implicit f_i.

    Returns (mdl, grad) with grad in terms of u, v, x, y and the root values f_i.
    """
    mdl = single_index_model(d, n)
    theta, f, y = mdl["theta"], mdl["f"], mdl["y"]
    R = sum((f[i] - y[i]) ** 2 for i in range(n)) / n
    grad = []
    for j, tj in enumerate(theta):
        gj = sp.diff(R, tj)
        gj = gj.subs({sp.Derivative(f[i], tj): mdl["d1"][i][j] for i in range(n)})
        grad.append(_to_values(gj, mdl))
    return mdl, R, grad


def _sigma_prime(sigma, at):
    z = sp.Dummy("z")
    return sp.Subs(sp.Derivative(sigma(z), z), z, at)


def sim_noncons(d: int = 2, n: int = 2, scale=1) -> Derivation:
    """SIM-NONCONS (R7): dQ/dt = -(2/n) sum_i w_i (s_i - sigma(s_i)) along GF.

    Residuals: the derived dQ/dt minus the formula (undefined sigma); the formula
    with sigma = id (must vanish); the formula with sigma_eps = z + eps tanh z minus
    (2 eps / n) sum w_i tanh s_i. Side conditions: exact witnesses where dQ/dt != 0
    for tanh and sigmoid. ``scale`` multiplies the claimed formula (1 is the claim; a
    wrong one must fail).
    """
    mdl, R, grad = single_index_gradient(d, n)
    u, v, theta, X, y, sigma, fs = (
        mdl[k] for k in ("u", "v", "theta", "X", "y", "sigma", "fs")
    )
    der = Derivation(
        "SIM-NONCONS",
        "sim_noncons",
        "single-index DEQ, undefined sigma",
        f"d={d}, n={n}",
        "dQ/dt = -(2/n) sum_i w_i (s_i - sigma(s_i)), "
        "w_i = 2(f_i - y_i) sigma'(s_i)/(1 - v sigma'(s_i)); zero for "
        "sigma = id, (2 eps/n) sum w_i tanh s_i for sigma_eps",
    )
    der.step(
        "fixed-point equations f_i(theta) - sigma(<u, x_i> + v f_i(theta)) = 0",
        mdl["eqs"][0],
    )
    der.step(
        "SymPy solves the differentiated equation for d f_1 / d u_1", mdl["d1"][0][0]
    )
    der.step(
        "risk R = (1/n) sum (f_i - y_i)^2; SymPy gradient (chain rule through "
        "f_i), d R / d v",
        grad[-1],
    )
    Q = sum(ui**2 for ui in u) + (1 - v) ** 2
    dq = sum(sp.diff(Q, t) * (-g) for t, g in zip(theta, grad))
    der.step("dQ/dt = <grad Q, -grad R>", dq)
    s = [sum(X[i, j] * u[j] for j in range(d)) + v * fs[i] for i in range(n)]

    def formula(sig, sigp):
        w = [2 * (fs[i] - y[i]) * sigp(s[i]) / (1 - v * sigp(s[i])) for i in range(n)]
        return -sp.Rational(2, n) * sum(w[i] * (s[i] - sig(s[i])) for i in range(n)), w

    claimed, _ = formula(sigma, lambda z: _sigma_prime(sigma, z))
    claimed = scale * claimed
    der.step("claimed formula", claimed)
    fixed_point = {sigma(s[i]): fs[i] for i in range(n)}
    der.step("use the fixed-point equations sigma(s_i) = f_i in the formula")
    res_general = dq - claimed.xreplace(fixed_point)
    ident = sp.Lambda(sp.Symbol("z"), sp.Symbol("z"))
    res_id, _ = formula(ident, lambda z: sp.Integer(1))
    der.step("formula with sigma = id (must vanish)", res_id)
    eps = sp.Symbol("epsilon", positive=True)
    z = sp.Symbol("z")
    sig_eps = sp.Lambda(z, z + eps * sp.tanh(z))
    sigp_eps = sp.Lambda(z, sp.diff(sig_eps(z), z))
    val_eps, w_eps = formula(sig_eps, sigp_eps)
    res_eps = val_eps - 2 * eps / n * sum(w_eps[i] * sp.tanh(s[i]) for i in range(n))
    der.step(
        "formula with sigma_eps = z + eps tanh z, minus (2 eps/n) sum w_i tanh s_i",
        res_eps,
    )
    der.residual = sp.Matrix([res_general, res_id, res_eps])
    # Exact witnesses of non-conservation (n = 1 sample, d = 1): choose s = 1 and
    # v = 1/4, so f = sigma(1) and u x = 1 - f/4; the target is sigma(2 x), x = 1.
    for name, sig in (
        ("tanh", sp.Lambda(z, sp.tanh(z))),
        ("sigmoid", sp.Lambda(z, 1 / (1 + sp.exp(-z)))),
    ):
        sigp = sp.Lambda(z, sp.diff(sig(z), z))
        s1, v1 = sp.Integer(1), sp.Rational(1, 4)
        f1, y1 = sig(s1), sig(sp.Integer(2))
        w1 = 2 * (f1 - y1) * sigp(s1) / (1 - v1 * sigp(s1))
        val = -2 * w1 * (s1 - sig(s1))
        num = sp.N(val, WITNESS_DIGITS)
        der.step(f"witness for {name}: s = 1, v = 1/4, x = 1, y = sigma(2): dQ/dt", val)
        der.condition(
            f"dQ/dt != 0 for sigma = {name} at the witness "
            f"(value {sp.N(val, 12)}, decided at {WITNESS_DIGITS} digits)",
            bool(abs(num) > sp.Float(10) ** (-WITNESS_DIGITS // 2)),
        )
    return der


def sim_hess(d: int = 2, n: int = 2) -> Derivation:
    """SIM-HESS (R7): the Hessian of R at theta* = (xi, 0) is (2/n) sum s'(z_i)^2 w w^T.

    Residuals: Hessian minus formula (undefined sigma); H*(-xi, 1) for sigma = id;
    <(-xi, 1), w_i> - eps tanh z_i for sigma_eps.
    """
    mdl = single_index_model(d, n, order=2)
    u, v, theta, X, y, sigma, f, fs = (
        mdl[k] for k in ("u", "v", "theta", "X", "y", "sigma", "f", "fs")
    )
    D = d + 1
    der = Derivation(
        "SIM-HESS",
        "sim_hess",
        "single-index DEQ, undefined sigma",
        f"d={d}, n={n}",
        "H* = (2/n) sum sigma'(z_i)^2 w_i w_i^T, w_i = "
        "(x_i, sigma(z_i)), z_i = <xi, x_i>; H*(-xi, 1) = 0 for sigma = id",
    )
    der.step("fixed-point equation", mdl["eqs"][0])
    der.step(
        "SymPy solves the twice-differentiated equation for d2 f_1/d u_1 d v",
        _to_values(mdl["d2"][0][(0, D - 1)], mdl),
    )
    R = sum((f[i] - y[i]) ** 2 for i in range(n)) / n
    xi = vec("xi", d)
    z = [sum(X[i, j] * xi[j] for j in range(d)) for i in range(n)]
    point = {**dict(zip(u, xi)), v: 0}
    values = {fs[i]: sigma(z[i]) for i in range(n)}
    targets = {y[i]: sigma(z[i]) for i in range(n)}
    H = sp.zeros(D, D)
    for j in range(D):
        for k in range(j, D):
            hjk = sp.diff(R, theta[j], theta[k])
            second = {
                sp.Derivative(f[i], theta[j], theta[k]): mdl["d2"][i][(j, k)]
                for i in range(n)
            }
            first = {
                sp.Derivative(f[i], theta[a]): mdl["d1"][i][a]
                for i in range(n)
                for a in (j, k)
            }
            hjk = _to_values(hjk.xreplace(second).xreplace(first), mdl)
            hjk = hjk.xreplace(targets).subs(point).xreplace(values)
            H[j, k] = H[k, j] = hjk
    der.step(
        "SymPy Hessian of R = (1/n) sum (f_i - y_i)^2, at u = xi, v = 0, "
        "f_i = y_i = sigma(z_i): H[1,1]",
        H[0, 0],
    )
    sp_z = [_sigma_prime(sigma, zi) for zi in z]
    wv = [sp.Matrix([*X.row(i), sigma(z[i])]) for i in range(n)]
    claimed = (
        sum((2 * sp_z[i] ** 2 * wv[i] * wv[i].T for i in range(n)), sp.zeros(D, D)) / n
    )
    der.step("claimed H*[1,1]", claimed[0, 0])
    q = sp.Matrix([*(-x for x in xi), 1])
    zz = sp.Symbol("z")
    H_id = claimed.subs(sigma, sp.Lambda(zz, zz)).doit()
    der.step("sigma = id: H* (-xi, 1)", H_id * q)
    eps = sp.Symbol("epsilon", positive=True)
    w_eps = [w.subs(sigma, sp.Lambda(zz, zz + eps * sp.tanh(zz))) for w in wv]
    res_eps = [(q.T * w_eps[i])[0] - eps * sp.tanh(z[i]) for i in range(n)]
    der.step("sigma_eps: <(-xi, 1), w_i> - eps tanh z_i", res_eps[0])
    der.residual = sp.Matrix([*(H - claimed), *(H_id * q), *res_eps])
    der.data.update(H=H, xi=xi, X=X)
    return der

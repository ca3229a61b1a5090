"""Consistency of the symbolic and numeric models (the one module here that imports
:mod:`dynamics`).

Every gradient that a certificate derives is lambdified and compared, at random
points, with the numeric engine's gradient on the same data, so that the SymPy model
and the NumPy model cannot drift apart:

- scalar linear DEQ: :func:`linear.scalar_linear_gradient` vs ``LinearDEQ``;
- matrix linear DEQ: the general-shape matrix-calculus gradients
  (:func:`linear.matrix_linear_general`, with G = dR/dM derived by SymPy from the MSE)
  and the explicit-entry gradients vs ``MatrixLinearDEQ``;
- single-index DEQ: :func:`single_index.single_index_gradient` (implicit
  differentiation) vs ``SingleIndexDEQ.value_and_grad``, and the SIM-HESS Hessian
  formula vs ``SingleIndexDEQ.hessian_at_target``;
- approximate backprop: the certificate's c(v) table vs ``dynamics.gradients``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import sympy as sp

from dynamics.measure import rel_error

from . import approx, linear, single_index

#: float64 agreement expected between a lambdified SymPy gradient and the engine's
#: closed form on well-conditioned instances (both are a few dozen flops deep).
CONSISTENCY_TOL = 1e-10


@dataclasses.dataclass(frozen=True)
class Agreement:
    """Worst relative disagreement of one derived quantity with the engine."""

    name: str
    shapes: str
    points: int
    max_rel_err: float

    @property
    def passed(self) -> bool:
        return self.max_rel_err <= CONSISTENCY_TOL


def _mse_beta(X, y):
    """loss(beta) = (1/n) sum (<beta, x_i> - y_i)^2 with the data as SymPy floats."""
    Xs, ys = sp.Matrix(X), sp.Matrix(y)

    def loss(beta):
        r = Xs * sp.Matrix(beta) - ys
        return (r.T * r)[0] / Xs.rows

    return loss


def scalar_linear(rng: np.random.Generator, d: int, points: int = 3) -> Agreement:
    from dynamics import LinearDEQ

    n = 2 * d + 3
    X, y = rng.normal(size=(n, d)), rng.normal(size=n)
    mdl = linear.scalar_linear_gradient(d, loss=_mse_beta(X, y))
    fn = sp.lambdify(mdl["theta"], mdl["grad"], "numpy")
    model = LinearDEQ(X, y)
    err = 0.0
    for _ in range(points):
        theta = np.concatenate([rng.normal(size=d), [rng.uniform(-1.5, 0.5)]])
        err = max(err, rel_error(fn(*theta), model.grad(theta)))
    return Agreement(
        "scalar linear DEQ gradient (SymPy vs LinearDEQ)", f"d={d}", points, err
    )


def matrix_general(
    rng: np.random.Generator, m: int, d: int, k: int | None, points: int = 3
) -> Agreement:
    """The general-shape matrix-calculus gradients, evaluated with numpy."""
    from dynamics import MatrixLinearDEQ

    readout = k is not None
    mdl = linear.matrix_linear_general(readout)
    n = 2 * d + 3
    kk = k if readout else m
    sizes = {mdl["m"]: m, mdl["d"]: d, mdl["k"]: kk}
    # G = dR/dPhi for R = (1/n) ||Phi X - Y||_F^2, derived by SymPy.
    nn = sp.Symbol("n", integer=True, positive=True)
    Phi = sp.MatrixSymbol("Phi", mdl["G"].rows, mdl["d"])
    Xs, Ys = sp.MatrixSymbol("X", mdl["d"], nn), sp.MatrixSymbol("Y", mdl["G"].rows, nn)
    E = Phi * Xs - Ys
    G_expr = (sp.Trace(E.T * E) / nn).diff(Phi)
    args = [mdl["A"], mdl["U"], mdl["G"]] + ([mdl["B"]] if readout else [])
    grads = [mdl["gW"], mdl["gU"]] + ([mdl["gB"]] if readout else [])
    fns = [sp.lambdify(args, g.subs(sizes), "numpy") for g in grads]
    g_fn = sp.lambdify([Phi, Xs, Ys, nn], G_expr.subs(sizes), "numpy")
    X, Y = rng.normal(size=(n, d)), rng.normal(size=(n, kk))
    model = MatrixLinearDEQ(X, Y, m, readout=readout)
    err = 0.0
    for _ in range(points):
        W, U = rng.normal(size=(m, m)) / m, rng.normal(size=(m, d))
        B = rng.normal(size=(kk, m)) if readout else None
        A = np.eye(m) - W
        M = np.linalg.solve(A, U)
        Phi_val = B @ M if readout else M
        G = np.asarray(g_fn(Phi_val, X.T, Y.T, n), float).reshape(kk, d)
        vals = [A, U, G] + ([B] if readout else [])
        sym = np.concatenate([np.asarray(f(*vals), float).ravel() for f in fns])
        err = max(err, rel_error(sym, model.grad(model.pack(W, U, B))))
    return Agreement(
        "matrix linear DEQ gradients, general-shape matrix calculus "
        "(SymPy vs MatrixLinearDEQ)",
        f"m={m}, d={d}" + (f", k={k}" if readout else ""),
        points,
        err,
    )


def matrix_explicit(
    rng: np.random.Generator, m: int, d: int, k: int | None, points: int = 2
) -> Agreement:
    from dynamics import MatrixLinearDEQ

    n = 2 * d + 3
    kk = k if k is not None else m
    X, Y = rng.normal(size=(n, d)), rng.normal(size=(n, kk))
    Xs, Ys = sp.Matrix(X.T), sp.Matrix(Y.T)

    def loss(Phi):
        E = Phi * Xs - Ys
        return sum(e**2 for e in E) / n

    mdl = linear.matrix_linear_explicit(m, d, k, loss=loss)
    fn = sp.lambdify(mdl["params"], mdl["grad"], "numpy")
    model = MatrixLinearDEQ(X, Y, m, readout=k is not None)
    err = 0.0
    for _ in range(points):
        theta = rng.normal(size=model.n_params)
        theta[: m * m] /= m
        err = max(err, rel_error(fn(*theta), model.grad(theta)))
    return Agreement(
        "matrix linear DEQ gradients, explicit entries (SymPy vs MatrixLinearDEQ)",
        f"m={m}, d={d}" + (f", k={k}" if k else ""),
        points,
        err,
    )


def _tanh_values(expr):
    z = sp.Symbol("z")
    return expr.subs(sp.Function("sigma"), sp.Lambda(z, sp.tanh(z))).doit()


def single_index_gradient(
    rng: np.random.Generator, d: int, n: int, points: int = 3
) -> Agreement:
    from dynamics.models.single_index import SingleIndexDEQ

    mdl, _, grad = single_index.single_index_gradient(d, n)
    grad = [_tanh_values(g) for g in grad]
    args = [*mdl["theta"], *mdl["fs"], *mdl["X"], *mdl["y"]]
    fn = sp.lambdify(args, grad, "numpy")
    X = rng.normal(size=(n, d))
    xi = rng.normal(size=d)
    y = np.tanh(X @ xi)
    model = SingleIndexDEQ(X, y, "tanh")
    err = 0.0
    for _ in range(points):
        theta = np.concatenate(
            [xi + 0.3 * rng.normal(size=d), [rng.uniform(-0.6, 0.6)]]
        )
        f = model.predict(theta)
        sym = fn(*theta, *f, *X.ravel(), *y)
        err = max(err, rel_error(sym, model.grad(theta)))
    return Agreement(
        "single-index DEQ gradient, implicit differentiation (SymPy vs "
        "SingleIndexDEQ, tanh)",
        f"d={d}, n={n}",
        points,
        err,
    )


def single_index_hessian(rng: np.random.Generator, d: int, n: int) -> Agreement:
    """SIM-HESS: SymPy's Hessian at theta* (tanh) vs ``hessian_at_target``."""
    from dynamics.models.single_index import SingleIndexDEQ

    der = single_index.sim_hess(d, n)
    H = _tanh_values(der.data["H"])  # SymPy's Hessian of R at theta*
    fn = sp.lambdify([*der.data["xi"], *der.data["X"]], H, "numpy")
    X = rng.normal(size=(n, d))
    xi = rng.normal(size=d)
    model = SingleIndexDEQ(X, np.tanh(X @ xi), "tanh")
    err = rel_error(fn(*xi, *X.ravel()), model.hessian_at_target(xi))
    return Agreement(
        "single-index Hessian at theta* (SymPy's Hessian vs "
        "SingleIndexDEQ.hessian_at_target, tanh)",
        f"d={d}, n={n}",
        1,
        err,
    )


def backprop_factors(rng: np.random.Generator, points: int = 5) -> Agreement:
    """The certificate's c(v) (APX-NEUMANN-FACTOR) vs ``dynamics.gradients``."""
    from dynamics.gradients import JFB, Damped, Neumann, Phantom

    v = sp.Symbol("v", real=True)
    cases = [
        ("jfb", 1, None, JFB()),
        ("neumann", 2, None, Neumann(2)),
        ("neumann", 3, None, Neumann(3)),
        ("damped", 2, 0.5, Damped(2, 0.5)),
        ("phantom", 3, 0.5, Phantom(3, 0.5)),
    ]
    err = 0.0
    for method, m, lam, obj in cases:
        c = approx.FACTORS[method](v, m)
        if lam is not None:
            c = c.subs(approx.LAM, lam)
        fn = sp.lambdify(v, c, "numpy")
        for vv in rng.uniform(-3, 3, size=points):
            err = max(err, rel_error(float(fn(vv)), float(obj.linear_factor(vv))))
    return Agreement(
        "approximate-backprop factors c(v) (certificate table vs dynamics.gradients)",
        "jfb, neumann-2/3, damped-2, phantom-3",
        points * len(cases),
        err,
    )


def run_all(rng: np.random.Generator, full: bool = False) -> list[Agreement]:
    """Every consistency comparison (the quick set, or a larger one when ``full``)."""
    out = [scalar_linear(rng, d) for d in ((1, 2, 3, 4) if full else (1, 3))]
    out += [
        matrix_general(rng, m, d, k)
        for m, d, k in ((2, 3, None), (3, 2, None), (2, 2, 3), (3, 1, 2))
    ]
    out += [
        matrix_explicit(rng, *s)
        for s in (((2, 1, None), (2, 1, 1), (2, 2, None)) if full else ((2, 1, None),))
    ]
    out += [
        single_index_gradient(rng, d, n)
        for d, n in (((1, 2), (2, 3), (3, 4)) if full else ((2, 3),))
    ]
    out += [single_index_hessian(rng, 2, 3), backprop_factors(rng)]
    return out

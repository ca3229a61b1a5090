"""Certificates for the reversible fixed-point step (reversible_deq.md §10.3-§10.5).

The step is y+ = (1 - beta) y + beta f(z), z+ = (1 - beta) z + beta f(y+). SymPy
builds its Jacobian from this definition (never from the typed-in block matrix) and
reduces REV-DET, REV-SYM and the symbolic part of REV-SHARP to 0.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions import MatrixExpr

from ._common import mat, vec
from .certificate import Derivation, reduce_matrix_expression

BETA = sp.Symbol("beta", positive=True)


def step_jacobian(f, d: int, beta=BETA):
    """Jacobian of one reversible step w.r.t. (y, z) for a map f: list -> list."""
    y, z = vec("y", d), vec("z", d)
    y1 = [(1 - beta) * yi + beta * fi for yi, fi in zip(y, f(z))]
    z1 = [(1 - beta) * zi + beta * fi for zi, fi in zip(z, f(y1))]
    return sp.Matrix([*y1, *z1]).jacobian([*y, *z]), (y, z, y1, z1)


def poly_det(M: sp.Matrix):
    """Determinant by exact elimination over the matrix's polynomial ring (fast)."""
    dm = M.to_DM()
    return dm.domain.to_sympy(dm.det())


def linear_map(A: sp.Matrix):
    return lambda z: list(A * sp.Matrix(z))


def rev_det_linear(d: int = 2) -> Derivation:
    """REV-DET (§10.5): det M = (1 - beta)^(2d) for f(z) = A z, A a generic d x d."""
    A = mat("a", d, d)
    M, _ = step_jacobian(linear_map(A), d)
    der = Derivation(
        "REV-DET",
        "rev_det_linear",
        "reversible step, linear f = A z",
        f"d={d}, generic A",
        "det M(beta) = (1 - beta)^(2d)",
    )
    der.step("step y+ = (1-b) y + b A z, z+ = (1-b) z + b A y+; SymPy Jacobian M", M)
    det = poly_det(M)
    der.step("det M", det)
    der.residual = det - (1 - BETA) ** (2 * d)
    return der


def rev_det_nonlinear(d: int = 2) -> Derivation:
    """REV-DET (§10.5): the same determinant for the Jacobian of a *nonlinear* step.

    f has d undefined component functions of d variables; its Jacobians at z and at
    y+ are renamed J1 and J2 (arbitrary matrices), then det - (1-beta)^(2d) -> 0.
    """
    fs = [sp.Function(f"f{i + 1}") for i in range(d)]
    M, (y, z, y1, _) = step_jacobian(lambda w: [fi(*w) for fi in fs], d)
    der = Derivation(
        "REV-DET",
        "rev_det_nonlinear",
        "reversible step, nonlinear f",
        f"d={d}, undefined f",
        "det of the step Jacobian = (1 - beta)^(2d)",
    )
    der.step("SymPy Jacobian of the step with f undefined; entry (d+1, 1)", M[d, 0])
    # Rename f's partials: SymPy leaves them as Derivative/Subs atoms.
    J = {}
    for atom in M.atoms(sp.Subs) | M.atoms(sp.Derivative):
        J.setdefault(atom, sp.Symbol(f"J_{len(J)}"))
    M = M.xreplace({k: v for k, v in J.items() if isinstance(k, sp.Subs)})
    M = M.xreplace({k: v for k, v in J.items() if not isinstance(k, sp.Subs)})
    der.step(f"partials of f renamed to {len(J)} free symbols")
    det = poly_det(M)
    der.residual = det - (1 - BETA) ** (2 * d)
    return der


def rev_det_block() -> Derivation:
    """REV-DET (§10.5), general d: the Schur complement of the (1,1) block is (1-b) I.

    With P = (1-b) I, det [[P, b J1], [b(1-b) J2, (1-b) I + b^2 J2 J1]] =
    det P * det(S - R P^-1 Q) = (1-b)^d (1-b)^d for arbitrary d x d J1, J2.
    """
    d = sp.Symbol("d", integer=True, positive=True)
    J1, J2 = sp.MatrixSymbol("J1", d, d), sp.MatrixSymbol("J2", d, d)
    Id = sp.Identity(d)
    c = 1 - BETA
    Qb, Rb, S = BETA * J1, BETA * c * J2, c * Id + BETA**2 * J2 * J1
    der = Derivation(
        "REV-DET",
        "rev_det_block",
        "reversible step, any f",
        "general d (matrix symbols)",
        "Schur complement S - R P^-1 Q of the step Jacobian equals "
        "(1 - beta) I, so det = (1 - beta)^d (1 - beta)^d",
    )
    der.step(
        "blocks P = (1-b) I, Q = b J1, R = b (1-b) J2, S = (1-b) I + b^2 J2 J1 "
        "(J1 = J_f(z_n), J2 = J_f(y_n+1))"
    )
    schur = S - Rb * (Id / c) * Qb
    der.step("Schur complement S - R P^-1 Q", schur)
    der.residual = schur - c * Id
    der.reduce = _reduce_block
    return der


def _reduce_block(expr: MatrixExpr):
    out = reduce_matrix_expression(expr)
    return sp.Integer(0) if isinstance(out, sp.ZeroMatrix) or out == 0 else out


_reduce_block.__name__ = "reduce_matrix_expression"


def charpoly_scalar():
    """(p(lambda), M) for the scalar map f(z) = a z, from SymPy's charpoly."""
    a, lam = sp.Symbol("a", real=True), sp.Symbol("lambda")
    M, _ = step_jacobian(lambda z: [a * z[0]], 1)
    return a, lam, M, M.charpoly(lam).as_expr()


def rev_sym() -> Derivation:
    """REV-SYM (§10.4): p(lambda), Jury conditions for every beta in (0,2), |a| < 1.

    Residuals: the characteristic polynomial, p(1), p(-1), the eigen-reduction for a
    generic 2 x 2 A, the example a = -0.9, beta = 1.5 (relaxed factor 1.85, root
    modulus 0.5). Conditions: the Jury inequalities, proven by SymPy's assumptions
    after the substitutions beta = 2b/(1+b), a = (c-1)/(c+1) with b, c > 0 (which
    cover exactly beta in (0, 2) and |a| < 1).
    """
    a, lam, M, p = charpoly_scalar()
    b = BETA
    der = Derivation(
        "REV-SYM",
        "rev_sym",
        "reversible step, f = a z (eigen-block)",
        "scalar a; 2 x 2 A for the reduction",
        "p(l) = l^2 - (2(1-b) + b^2 a^2) l + (1-b)^2; Jury conditions hold "
        "for every beta in (0, 2) when |a| < 1",
    )
    der.step("SymPy Jacobian of the step for f = a z", M)
    der.step("characteristic polynomial det(l I - M)", sp.expand(p))
    claimed = lam**2 - (2 * (1 - b) + b**2 * a**2) * lam + (1 - b) ** 2
    p1, pm1 = p.subs(lam, 1), p.subs(lam, -1)
    der.step("p(1)", sp.factor(p1))
    der.step("p(-1)", sp.expand(pm1))
    # Eigen-reduction: for any A, det(l I - M) = det((l - c)^2 I - b^2 l A^2).
    A = mat("a", 2, 2)
    M2, _ = step_jacobian(linear_map(A), 2)
    c = 1 - b
    red = (
        M2.charpoly(lam).as_expr()
        - ((lam - c) ** 2 * sp.eye(2) - b**2 * lam * A * A).det()
    )
    der.step("2 x 2 A: det(l I - M) - det((l - (1-b))^2 I - b^2 l A^2)", red)
    # The example.
    ex = {a: sp.Rational(-9, 10), b: sp.Rational(3, 2)}
    relaxed = sp.Abs(1 - b + b * a).subs(ex)
    roots = sp.Poly(claimed.subs(ex), lam).all_roots()
    der.step("example a = -0.9, beta = 1.5: relaxed factor |1 - b + b a|", relaxed)
    der.step("example roots of p", roots)
    moduli = [sp.Abs(r) for r in roots]
    der.residual = sp.Matrix(
        [
            p - claimed,
            p1 - b**2 * (1 - a**2),
            pm1 - ((2 - b) ** 2 + b**2 * a**2),
            red,
            relaxed - sp.Rational(37, 20),
            *(mu - sp.Rational(1, 2) for mu in moduli),
        ]
    )
    bb, cc = sp.symbols("b c", positive=True)
    sub = {b: 2 * bb / (1 + bb), a: (cc - 1) / (cc + 1)}
    for label, expr in (
        ("p(1) > 0", b**2 * (1 - a**2)),
        ("p(-1) > 0", (2 - b) ** 2 + b**2 * a**2),
        ("1 - (1-beta)^2 > 0", 1 - (1 - b) ** 2),
    ):
        val = sp.factor(sp.cancel(expr.subs(sub)))
        if val.is_positive is not True:
            # Factor term by term: a positive plus a non-negative factored term is
            # decided positive by SymPy's assumptions.
            val = sp.Add(
                *(sp.factor(sp.cancel(t.subs(sub))) for t in sp.Add.make_args(expr))
            )
        der.step(f"{label}: with beta = 2b/(1+b), a = (c-1)/(c+1)", val)
        der.condition(f"{label} for every beta in (0, 2), |a| < 1", val.is_positive)
    der.condition(
        "example: the roots are complex (p has negative discriminant)",
        sp.discriminant(claimed.subs(ex), lam).is_negative,
    )
    return der


def rev_sharp() -> Derivation:
    """REV-SHARP (§10.3), symbolic part: for A = L [[0, -1], [1, 0]], p(-1) = 0 at
    beta = 2/(1+L), i.e. det(-I - M) = 0 for the 4 x 4 step Jacobian."""
    L = sp.Symbol("L", positive=True)
    A = L * sp.Matrix([[0, -1], [1, 0]])
    M, _ = step_jacobian(linear_map(A), 2)
    der = Derivation(
        "REV-SHARP",
        "rev_sharp",
        "reversible step, rotation f = L J z",
        "d=2",
        "lambda = -1 is an eigenvalue of the step Jacobian at beta = 2/(1+L)",
    )
    der.step("SymPy Jacobian of the step", M)
    at = {BETA: 2 / (1 + L)}
    det = poly_det(-sp.eye(4) - M)
    der.step("det(-I - M)", sp.factor(det))
    a, lam, _, p = charpoly_scalar()
    pm1 = p.subs(lam, -1).subs(a**2, -(L**2))
    der.step("eigen-block polynomial p(-1) with a^2 = -L^2", sp.factor(pm1))
    der.residual = sp.Matrix([det.subs(at), pm1.subs(at)])
    return der

"""Exact search for polynomial conservation laws up to a given degree.

A function h is conserved by the gradient flow of **every** loss ell(phi(theta)) iff
<grad h, grad phi_j> = 0 for every output j (the flow is a combination of the fields
grad phi_j with arbitrary coefficients). For h = sum_a c_a m_a over the monomials m_a
of degree 1..k, that is a linear system on the coefficients c:

1. evaluate the rows sum_l d_l m_a(p) d_l phi_j(p) **exactly** (Python fractions) at
   random rational points p: the kernel K of the sampled system contains every law;
2. compute the kernel modulo the prime 2^31 - 1 (NumPy integer elimination) and
   lift each reduced-echelon entry back to a small rational (rational
   reconstruction); the kernel mod p has dimension >= dim K;
3. verify every lifted law symbolically: with phi_j = N_j / Delta_j (polynomials),
   Delta_j <grad h, grad N_j> - N_j <grad h, grad Delta_j> must be the zero
   polynomial, which is <grad h, grad phi_j> = 0.
   Verified, independent laws numbering dim(kernel mod p) >= dim K >= dim(laws) span
   the whole space of laws of that degree. If any check fails, more points are added
   and the search repeats.

The result is exact (no tolerance anywhere). Implicit maps are out of scope here.
"""

from __future__ import annotations

import dataclasses
import time
from fractions import Fraction

import numpy as np
import sympy as sp
from sympy.polys.domains import QQ
from sympy.polys.matrices import DomainMatrix
from sympy.printing.pycode import PythonCodePrinter

from .maps import ModelMap


class _ExactPrinter(PythonCodePrinter):
    """Python code whose rational constants stay exact (``Fraction(p, q)``)."""

    def _print_Rational(self, expr):
        return f"Fraction({expr.p}, {expr.q})"

    def _print_Half(self, expr):
        return "Fraction(1, 2)"

    def _print_Float(self, expr):
        raise ValueError(
            "the exact law search needs rational coefficients; "
            f"the map contains the float {expr}"
        )


def exact_function(args, exprs):
    """Lambdify ``exprs`` to plain Python that is exact on Fraction inputs."""
    return sp.lambdify(
        list(args), list(exprs), modules=[{"Fraction": Fraction}], printer=_ExactPrinter
    )


@dataclasses.dataclass(frozen=True)
class PolynomialLaws:
    """Outcome of :func:`polynomial_laws`.

    Attributes:
        degree: the largest monomial degree searched (constants excluded).
        n_monomials: number of unknown coefficients.
        laws: a basis of the conserved polynomials (reduced row echelon form).
        verified: every law passed the symbolic check <grad h, grad phi_j> = 0.
        functionally_independent: rank of the laws' Jacobian at a random rational
            point (exact); equals len(laws) when they are independent functions.
        known_span_equal: the laws span exactly the known laws (minus constants);
            None when the map lists no known laws.
        n_points, seconds: sampled points and wall time.
    """

    degree: int
    n_monomials: int
    laws: tuple[sp.Expr, ...]
    verified: bool
    functionally_independent: int
    known_span_equal: bool | None
    n_points: int
    seconds: float


def _monomials(params, degree):
    """Exponent tuples of every monomial of degree 1..degree, in a fixed order."""
    mons = sorted(
        sp.itermonomials(params, degree, 1),
        key=lambda m: (sp.Poly(m, *params).total_degree(), sp.default_sort_key(m)),
    )
    return [sp.Poly(m, *params).monoms()[0] for m in mons], mons


def _rational_point(rng: np.random.Generator, D: int):
    """A random point with small rational coordinates (denominators 1, 2, 3)."""
    nums = rng.integers(-4, 5, size=D)
    dens = rng.integers(1, 4, size=D)
    return [Fraction(int(a), int(b)) for a, b in zip(nums, dens)]


def _grad_monomial_rows(exps, p, J):
    """Rows r_j[a] = sum_i d_i m_a(p) J[j][i] for each output j."""
    D = len(p)
    grads = []
    for e in exps:
        g = []
        for i in range(D):
            if e[i] == 0:
                g.append(Fraction(0))
                continue
            val = Fraction(e[i])
            for t in range(D):
                power = e[t] - (1 if t == i else 0)
                if power:
                    val *= p[t] ** power
            g.append(val)
        grads.append(g)
    return [
        [
            sum((ga[i] * Jj[i] for i in range(D) if ga[i] and Jj[i]), Fraction(0))
            for ga in grads
        ]
        for Jj in J
    ]


#: The prime of the modular kernel computation (2^31 - 1): products of two residues
#: fit in int64, so the elimination runs in NumPy. Lifted coefficients must have
#: numerator and denominator below sqrt(p / 2) ~ 32768, ample for these laws; a law
#: that does not lift triggers a resample, and every lifted law is verified exactly.
PRIME = 2**31 - 1


def _mod(x: Fraction) -> int:
    return x.numerator % PRIME * pow(x.denominator % PRIME, -1, PRIME) % PRIME


def rational_reconstruction(c: int, m: int = PRIME) -> Fraction:
    """The fraction a/b with |a|, |b| <= sqrt(m/2) and a = b c (mod m)."""
    bound = int((m // 2) ** 0.5)
    r0, r1, s0, s1 = m, c % m, 0, 1
    while r1 > bound:
        q = r0 // r1
        r0, r1, s0, s1 = r1, r0 - q * r1, s1, s0 - q * s1
    if s1 == 0 or abs(s1) > bound:
        raise ArithmeticError(f"{c} has no small rational preimage mod {m}")
    return Fraction(r1, s1)


def rref_mod(A: np.ndarray, p: int = PRIME) -> tuple[np.ndarray, list[int]]:
    """Reduced row echelon form of an int64 matrix over GF(p), and its pivots."""
    A = np.array(A, dtype=np.int64) % p
    nrows, ncols = A.shape
    pivots: list[int] = []
    r = 0
    for c in range(ncols):
        if r == nrows:
            break
        nz = np.nonzero(A[r:, c])[0]
        if nz.size == 0:
            continue
        k = r + int(nz[0])
        A[[r, k]] = A[[k, r]]
        A[r] = A[r] * pow(int(A[r, c]), p - 2, p) % p
        others = np.nonzero(A[:, c])[0]
        others = others[others != r]
        if others.size:
            A[others] = (A[others] - np.outer(A[others, c], A[r]) % p) % p
        pivots.append(c)
        r += 1
    return A[:r], pivots


def _kernel_mod_p(rows, N) -> list[list[Fraction]]:
    """Reduced-echelon kernel basis of ``rows`` mod PRIME, lifted to rationals."""
    R, piv = rref_mod(np.array([[_mod(x) for x in r] for r in rows], dtype=np.int64))
    free = [c for c in range(N) if c not in set(piv)]
    if not free:
        return []
    K = np.zeros((len(free), N), dtype=np.int64)
    for i, f in enumerate(free):
        K[i, f] = 1
        K[i, piv] = (-R[:, f]) % PRIME
    K, _ = rref_mod(K)
    return [[rational_reconstruction(int(x)) for x in row] for row in K]


def coefficient_vector(expr, exps, params) -> list:
    """Coefficients of ``expr`` (constant term dropped) on the monomials ``exps``."""
    poly = sp.Poly(sp.expand(expr), *params)
    coeffs = dict(zip(poly.monoms(), poly.coeffs()))
    extra = set(coeffs) - set(exps) - {(0,) * len(params)}
    if extra:
        raise ValueError(f"{expr} has monomials above the search degree")
    return [QQ.convert(coeffs.get(e, 0)) for e in exps]


def output_fractions(model: ModelMap):
    """Each output as (N_j, Delta_j), polynomials over Q in the parameters."""
    out = []
    for o in model.outputs:
        num, den = sp.fraction(sp.cancel(sp.together(o)))
        out.append(
            (
                sp.Poly(num, *model.params, domain=QQ),
                sp.Poly(den, *model.params, domain=QQ),
            )
        )
    return out


def verify_law(h, model: ModelMap, fractions=None) -> bool:
    """Symbolic check that <grad h, grad phi_j> = 0 for every output j.

    With phi_j = N / Delta: Delta <grad h, grad N> - N <grad h, grad Delta> must be
    the zero polynomial (exact polynomial arithmetic over Q).
    """
    params = model.params
    H = sp.Poly(h, *params, domain=QQ)
    gh = [H.diff(t) for t in params]
    for num, den in fractions or output_fractions(model):
        a = sum((g * num.diff(t) for g, t in zip(gh, params)), sp.Poly(0, *params))
        b = sum((g * den.diff(t) for g, t in zip(gh, params)), sp.Poly(0, *params))
        if not (den * a - num * b).is_zero:
            return False
    return True


def polynomial_laws(
    model: ModelMap,
    degree: int = 2,
    seed: int = 0,
    oversample: float = 1.3,
    max_rounds: int = 4,
) -> PolynomialLaws:
    """Every polynomial law of degree <= ``degree`` of an explicit rational map."""
    if not model.rational:
        raise ValueError(
            f"{model.name}: the exact polynomial search needs an explicit "
            "map with rational-function outputs"
        )
    t0 = time.perf_counter()
    params = list(model.params)
    D = len(params)
    exps, mons = _monomials(params, degree)
    N = len(exps)
    J_sym = sp.Matrix(model.outputs).jacobian(params)
    J_fn = exact_function(params, list(J_sym))
    P = model.P
    rng = np.random.default_rng(seed)
    rows: list[list] = []
    n_points = 0
    target = int(oversample * N / max(P, 1)) + 3
    fractions = output_fractions(model)
    for _ in range(max_rounds):
        while n_points < target:
            p = _rational_point(rng, D)
            try:
                vals = J_fn(*p)
            except ZeroDivisionError:
                continue
            J = [vals[j * D : (j + 1) * D] for j in range(P)]
            rows += _grad_monomial_rows(exps, p, J)
            n_points += 1
        try:
            vecs = _kernel_mod_p(rows, N)
        except ArithmeticError:
            target *= 2  # coefficients too large to lift: resample
            continue
        laws = tuple(
            sp.expand(
                sum(
                    sp.Rational(c.numerator, c.denominator) * m for c, m in zip(v, mons)
                )
            )
            for v in vecs
        )
        verified = all(verify_law(h, model, fractions) for h in laws)
        if verified:
            break
        target *= 2
    fi = _functional_rank(laws, params, rng)
    known = None
    if model.known_laws and laws:
        K = [coefficient_vector(h, exps, params) for _, h in model.known_laws]
        F = [[QQ(x.numerator, x.denominator) for x in v] for v in vecs]
        rk = lambda M: DomainMatrix(M, (len(M), N), QQ).rank() if M else 0  # noqa: E731
        known = rk(F) == rk(K) == rk(F + K)
    elif model.known_laws:
        known = False
    return PolynomialLaws(
        degree, N, laws, verified, fi, known, n_points, time.perf_counter() - t0
    )


def _functional_rank(laws, params, rng) -> int:
    if not laws:
        return 0
    Jh = sp.Matrix(laws).jacobian(params)
    p = _rational_point(rng, len(params))
    vals = exact_function(params, list(Jh))(*p)
    M = [
        [
            QQ.convert(
                sp.Rational(
                    vals[i * len(params) + j].numerator,
                    vals[i * len(params) + j].denominator,
                )
            )
            if isinstance(vals[i * len(params) + j], Fraction)
            else QQ.convert(vals[i * len(params) + j])
            for j in range(len(params))
        ]
        for i in range(len(laws))
    ]
    return DomainMatrix(M, (len(laws), len(params)), QQ).rank()

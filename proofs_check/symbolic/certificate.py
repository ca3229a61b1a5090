"""Symbolic certificates: a derivation that must reduce exactly to zero.

A certificate function (named after its claim, e.g. ``lin_sym_cons_scalar``) starts
from the model definition, lets SymPy differentiate it, forms the claimed identity as
a *residual* (left side minus right side) and returns a :class:`Derivation`. The
runner :func:`certify` reduces the residual, times the whole derivation and freezes
the outcome in a :class:`Certificate`. A certificate passes only when the reduced
residual is exactly 0 (every entry, for a matrix residual) and every side condition
(an exact sign statement, decided by SymPy) holds; anything else fails.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import sympy as sp
from sympy.matrices.expressions import Inverse, MatAdd, MatMul, MatrixExpr

#: Longest rendering of one expression inside a step line; longer ones are elided so
#: that ``deq-dynamics prove`` stays readable (the residual itself is never elided).
STEP_EXPR_CHARS = 240


class CertificateError(AssertionError):
    """A certificate whose residual is not exactly zero, or a failed side condition."""


def show(expr, limit: int = STEP_EXPR_CHARS) -> str:
    """A one-line rendering of ``expr`` for a derivation step."""
    text = " ".join(sp.sstr(expr).split())
    return text if len(text) <= limit else text[:limit] + f" ... ({len(text)} chars)"


@dataclasses.dataclass
class Derivation:
    """What a certificate function returns: the residual and how it was reached.

    Attributes:
        claim_id: catalogue ID (``LIN-SYM-CONS`` ...).
        name: the certificate function's name.
        model: the model the derivation starts from.
        shapes: the sizes it was done for ("d=3", "general m, d").
        statement: the identity in words.
        residual: left side minus right side (scalar, explicit matrix, or matrix
            expression); it must reduce to 0.
        steps: the derivation, one human-readable line each.
        reduce: how to reduce the residual (default :func:`reduce_residual`).
        conditions: side conditions (statement, proven) decided exactly by SymPy.
        data: intermediate SymPy objects (derived gradients, Hessians) that the
            consistency checks lambdify; not part of the certificate.
    """

    claim_id: str
    name: str
    model: str
    shapes: str
    statement: str
    residual: object = None
    steps: list[str] = dataclasses.field(default_factory=list)
    reduce: Callable | None = None
    conditions: list[tuple[str, bool]] = dataclasses.field(default_factory=list)
    data: dict = dataclasses.field(default_factory=dict)

    def step(self, text: str, expr=None) -> None:
        """Record one derivation line, optionally followed by ``= expr``."""
        self.steps.append(text if expr is None else f"{text} = {show(expr)}")

    def condition(self, statement: str, proven) -> None:
        """Record a side condition; only a literal ``True`` from SymPy counts."""
        self.conditions.append((statement, proven is True))


@dataclasses.dataclass(frozen=True)
class Certificate:
    """The frozen outcome of one derivation.

    Attributes:
        claim_id: as in :class:`Derivation`.
        name: as in :class:`Derivation`.
        model: as in :class:`Derivation`.
        shapes: as in :class:`Derivation`.
        statement: as in :class:`Derivation`.
        residual: the residual after reduction, as text (``"0"`` when it vanished).
        residual_is_zero: whether every entry reduced exactly to 0.
        steps: the derivation lines, the reduction last.
        conditions: ``(statement, proven)`` pairs.
        sympy_version: the SymPy that did the algebra.
        seconds: wall time of derivation plus reduction.
    """

    claim_id: str
    name: str
    model: str
    shapes: str
    statement: str
    residual: str
    residual_is_zero: bool
    steps: tuple[str, ...]
    conditions: tuple[tuple[str, bool], ...]
    sympy_version: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.residual_is_zero and all(ok for _, ok in self.conditions)

    def require(self) -> Certificate:
        """Return self, or raise :class:`CertificateError` if it did not pass."""
        if not self.passed:
            bad = [s for s, ok in self.conditions if not ok]
            raise CertificateError(
                f"{self.claim_id} / {self.name} ({self.shapes}) failed: residual "
                f"{self.residual}" + (f"; unproven: {bad}" if bad else "")
            )
        return self

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["passed"] = self.passed
        out["conditions"] = [
            {"statement": s, "proven": ok} for s, ok in self.conditions
        ]
        return out

    def render(self) -> str:
        """A readable derivation: header, numbered steps, conditions, verdict."""
        lines = [
            f"{self.claim_id}  [{self.name}]  {self.model}; {self.shapes}",
            f"  claim: {self.statement}",
        ]
        lines += [f"  {i:>2}. {s}" for i, s in enumerate(self.steps, 1)]
        lines += [
            f"      condition: {s}: {'proven' if ok else 'NOT proven'}"
            for s, ok in self.conditions
        ]
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(
            f"  residual after reduction: {self.residual}   -> {verdict} "
            f"({self.seconds:.2f} s, sympy {self.sympy_version})"
        )
        return "\n".join(lines)


# --- reduction ---------------------------------------------------------------------


def cancel_inverses(expr):
    """Cancel adjacent ``X**-1 * X`` and ``X * X**-1`` factors in a matrix product."""
    if isinstance(expr, MatAdd):
        return MatAdd(*[cancel_inverses(a) for a in expr.args]).doit()
    if isinstance(expr, MatMul):
        coeff, mats = expr.as_coeff_matrices()
        out: list = []
        for mat in mats:
            if out and (
                (isinstance(mat, Inverse) and mat.arg == out[-1])
                or (isinstance(out[-1], Inverse) and out[-1].arg == mat)
            ):
                out.pop()
                continue
            out.append(mat)
        if not out:
            return coeff * sp.Identity(expr.rows)
        return (coeff * MatMul(*out)).doit()
    return expr


def reduce_matrix_expression(expr):
    """Expand a matrix expression and cancel ``A^-1 A = I`` until it stops changing."""
    cur = sp.expand(expr.doit())
    for _ in range(8):
        nxt = sp.expand(cancel_inverses(cur).doit())
        if nxt == cur:
            break
        cur = nxt
    return cur


#: ``simplify`` is tried on a non-zero remainder only below this operation count: it
#: can take minutes on large rational functions, and a wrong identity's remainder is
#: often large.
SIMPLIFY_MAX_OPS = 400


def reduce_scalar(expr):
    """Cancel to a single reduced fraction; try ``simplify`` on a small remainder."""
    out = sp.cancel(sp.sympify(expr))
    if out != 0 and sp.count_ops(out) <= SIMPLIFY_MAX_OPS:
        out = sp.simplify(out)
    return out


def reduce_residual(residual):
    """Default reduction for a scalar, an explicit matrix or a matrix expression."""
    if isinstance(residual, MatrixExpr) and not isinstance(residual, sp.MatrixBase):
        return reduce_matrix_expression(residual)
    if isinstance(residual, sp.MatrixBase):
        return residual.applyfunc(reduce_scalar)
    return reduce_scalar(sp.sympify(residual))


def is_zero(reduced) -> bool:
    """Exactly zero: a literal 0, a ZeroMatrix, or an explicit matrix of zeros."""
    if isinstance(reduced, sp.MatrixBase):
        return all(e == 0 for e in reduced)
    if isinstance(reduced, MatrixExpr):
        return isinstance(reduced, sp.ZeroMatrix) or reduced == 0
    return reduced == 0


def certify(fn: Callable[..., Derivation], **kwargs) -> Certificate:
    """Run certificate function ``fn(**kwargs)``, reduce its residual, freeze it."""
    t0 = time.perf_counter()
    der = fn(**kwargs)
    reducer = der.reduce or reduce_residual
    reduced = reducer(der.residual)
    zero = is_zero(reduced)
    steps = tuple(der.steps) + (
        f"reduce the residual ({reducer.__name__}): {'0' if zero else show(reduced)}",
    )
    return Certificate(
        claim_id=der.claim_id,
        name=der.name,
        model=der.model,
        shapes=der.shapes,
        statement=der.statement,
        residual="0" if zero else sp.sstr(reduced),
        residual_is_zero=zero,
        steps=steps,
        conditions=tuple(der.conditions),
        sympy_version=sp.__version__,
        seconds=time.perf_counter() - t0,
    )

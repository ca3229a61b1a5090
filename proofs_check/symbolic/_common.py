"""Shared SymPy building blocks: symbols, undefined losses and their partials."""

from __future__ import annotations

import sympy as sp


def vec(name: str, n: int, **assumptions) -> list[sp.Symbol]:
    """Symbols name1..name_n (real by default)."""
    assumptions.setdefault("real", True)
    return list(sp.symbols(f"{name}1:{n + 1}", **assumptions))


def mat(name: str, rows: int, cols: int, **assumptions) -> sp.Matrix:
    """An explicit rows x cols matrix of real symbols name_ij (1-based)."""
    assumptions.setdefault("real", True)
    return sp.Matrix(
        rows, cols, lambda i, j: sp.Symbol(f"{name}{i + 1}{j + 1}", **assumptions)
    )


def name_partials(expr, fn: sp.FunctionClass, names: list[sp.Symbol]):
    """Replace each first partial of the undefined function ``fn`` by a symbol.

    SymPy writes d/dx ell(a(x), b(x)) with ``Subs(Derivative(ell(xi, b), xi), xi, a)``
    atoms; the i-th partial (whatever point it is evaluated at) becomes ``names[i]``.
    That is legitimate because the loss is arbitrary: its partials at the current
    point are arbitrary numbers, the same in every occurrence.
    """

    def partial_index(deriv: sp.Derivative) -> int:
        call = deriv.expr
        ((var, order),) = deriv.variable_count
        if call.func != fn or order != 1:
            raise ValueError(f"unexpected derivative {deriv}")
        return list(call.args).index(var)

    repl = {}
    for sub in expr.atoms(sp.Subs):
        deriv = sub.expr
        if isinstance(deriv, sp.Derivative) and deriv.expr.func == fn:
            repl[sub] = names[partial_index(deriv)]
    out = expr.xreplace(repl)
    for deriv in out.atoms(sp.Derivative):
        if deriv.expr.func == fn:
            out = out.xreplace({deriv: names[partial_index(deriv)]})
    return out

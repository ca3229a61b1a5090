"""Build a SymPy expression from a string without evaluating it as Python.

``sympy.sympify`` and ``parse_expr`` (even with ``evaluate=False``) run the string
through ``eval``, so ``"__import__('os').system('...')"`` in a map's ``OUTPUTS``
would run. Here the string is parsed by :func:`ast.parse` (which only builds a syntax
tree) and the tree is walked under a whitelist: numbers, the map's own symbols, the
arithmetic operators and a fixed set of elementary functions. Anything else is
refused with :class:`~dynamics.errors.InvalidInputError`.
"""

from __future__ import annotations

import ast
import operator

import sympy as sp

from dynamics.errors import InvalidInputError

#: Functions and constants a string expression may use.
FUNCTIONS = {
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "atan": sp.atan,
    "Abs": sp.Abs,
    "Rational": sp.Rational,
}
CONSTANTS = {"pi": sp.pi, "E": sp.E}

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
#: Longest string accepted (a guard against pathological input, not a limit of use).
MAX_LENGTH = 100_000
#: Largest numeric exponent (polynomial maps of interest have small degrees).
MAX_EXPONENT = 64


def parse_expression(text: str, symbols) -> sp.Expr:
    """The SymPy expression ``text`` over ``symbols`` (an iterable of SymPy symbols,
    looked up by name). ``^`` is read as a power, as in SymPy."""
    if len(text) > MAX_LENGTH:
        raise InvalidInputError(
            f"expression string of {len(text)} characters is too long"
        )
    names = {str(s): s for s in symbols}
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise InvalidInputError(
            f"cannot parse the expression {text!r}: {exc.msg}"
        ) from exc
    return _build(tree.body, names, text)


def _refuse(node: ast.AST, text: str) -> InvalidInputError:
    return InvalidInputError(
        f"expression {text!r} uses {ast.unparse(node)!r}, which is not allowed in a "
        "string: only numbers, the map's symbols, + - * / ** and "
        f"{', '.join(sorted(FUNCTIONS))} ({', '.join(CONSTANTS)}) are; write "
        "other outputs as SymPy expressions in the map file instead of strings"
    )


def _build(node: ast.AST, names: dict, text: str):
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise _refuse(node, text)
        return (
            sp.Integer(node.value)
            if isinstance(node.value, int)
            else sp.Float(node.value)
        )
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise InvalidInputError(
            f"expression {text!r} uses the name {node.id!r}, which is not a symbol "
            f"of the map ({', '.join(names) or 'none'}); add it to PARAMS or fix "
            "the spelling"
        )
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _build(node.left, names, text), _build(node.right, names, text)
        if (
            isinstance(node.op, ast.Pow)
            and right.is_Number
            and abs(right) > MAX_EXPONENT
        ):
            # 9**9**9 would be expanded exactly by SymPy and never finish
            raise InvalidInputError(
                f"expression {text!r}: exponent {right} exceeds {MAX_EXPONENT}"
            )
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_build(node.operand, names, text))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in FUNCTIONS
        and not node.keywords
    ):
        return FUNCTIONS[node.func.id](*(_build(a, names, text) for a in node.args))
    raise _refuse(node, text)

"""Model maps for conservation-law discovery: phi(theta) as SymPy expressions.

A :class:`ModelMap` is either *explicit* (``outputs`` are expressions in ``params``)
or *implicit* (``unknowns`` f are tied to ``params`` by ``equations`` F(theta, f) = 0,
and the outputs are the unknowns), which covers the single-index DEQ at probe inputs.
Built-in maps follow docs/theory/discovery.md; :func:`from_file` loads a user-supplied
one.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sympy as sp

from dynamics.errors import InvalidInputError

from .safe_expr import parse_expression


@dataclasses.dataclass(frozen=True)
class ModelMap:
    """phi: R^D -> R^P whose gradient fields generate the Lie algebra.

    Attributes:
        name: short name, e.g. ``matrix-linear(m=2,d=3)``.
        params: the D parameter symbols theta.
        outputs: P expressions (explicit map), or the unknowns (implicit map).
        unknowns: for an implicit map, the unknown symbols f (else empty).
        equations: for an implicit map, F(theta, f) = 0 (same length as unknowns).
        known_laws: (label, polynomial) pairs of the laws known in closed form.
        expected_laws: the count from the spec table, when there is one.
        sampler: rng -> a random point where the map is defined and generic.
        initial_guess: theta -> starting values for the implicit solve.
        native: ``(builder name, args)`` of an equivalent vectorised torch map in
            :mod:`dynamics.lie` (faster nested AD); it is checked against the SymPy
            map (value and Jacobian) before use.
    """

    name: str
    params: tuple[sp.Symbol, ...]
    outputs: tuple[sp.Expr, ...]
    unknowns: tuple[sp.Symbol, ...] = ()
    equations: tuple[sp.Expr, ...] = ()
    known_laws: tuple[tuple[str, sp.Expr], ...] = ()
    expected_laws: int | None = None
    sampler: Callable[[np.random.Generator], np.ndarray] | None = None
    initial_guess: Callable[[np.ndarray], np.ndarray] | None = None
    native: tuple | None = None

    def __post_init__(self):
        if len(self.unknowns) != len(self.equations):
            raise ValueError("an implicit map needs one equation per unknown")
        free = (
            set().union(*(_expr(o).free_symbols for o in self.outputs))
            if self.outputs
            else set()
        )
        allowed = set(self.params) | set(self.unknowns)
        if not free <= allowed:
            raise ValueError(
                f"outputs use symbols that are not parameters: "
                f"{sorted(map(str, free - allowed))}"
            )

    @property
    def D(self) -> int:
        return len(self.params)

    @property
    def P(self) -> int:
        return len(self.outputs)

    @property
    def implicit(self) -> bool:
        return bool(self.unknowns)

    @property
    def rational(self) -> bool:
        """Explicit with rational-function outputs (the exact law search applies)."""
        return not self.implicit and all(
            _expr(o).is_rational_function(*self.params) for o in self.outputs
        )

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        if self.sampler is not None:
            return np.asarray(self.sampler(rng), float)
        return rng.normal(size=self.D)


def _expr(obj) -> sp.Expr:
    """A SymPy object from ``obj``, never by evaluating a string (``sympify`` of a
    string runs ``eval``)."""
    if isinstance(obj, str):
        raise InvalidInputError(
            f"model map outputs must be SymPy expressions, not the string {obj!r} "
            "(use from_file, which parses strings safely)"
        )
    return sp.sympify(obj, strict=True)


def _syms(name: str, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(
        rows, cols, lambda i, j: sp.Symbol(f"{name}{i + 1}{j + 1}", real=True)
    )


def _flat_laws(label: str, M: sp.Matrix, symmetric: bool = True):
    out = []
    for i in range(M.rows):
        for j in range(i if symmetric else 0, M.cols):
            out.append((f"{label}[{i + 1},{j + 1}]", sp.expand(M[i, j])))
    return tuple(out)


def scalar_linear(d: int) -> ModelMap:
    """beta(theta) = u / (1 - v); the law Q = ||u||^2 + (1 - v)^2."""
    u = sp.symbols(f"u1:{d + 1}", real=True)
    v = sp.Symbol("v", real=True)
    Q = sum(x**2 for x in u) + (1 - v) ** 2

    def sampler(rng):
        return np.concatenate([rng.normal(size=d), [rng.uniform(-1.5, 0.5)]])

    return ModelMap(
        f"scalar-linear(d={d})",
        (*u, v),
        tuple(x / (1 - v) for x in u),
        known_laws=(("Q", sp.expand(Q)),),
        expected_laws=1,
        sampler=sampler,
    )


def _matrix_sampler(m: int, n_params: int):
    def sampler(rng):
        # W scaled so that I - W is well conditioned at generic points.
        th = rng.normal(size=n_params)
        th[: m * m] *= 0.5 / np.sqrt(m)
        return th

    return sampler


def matrix_linear(m: int, d: int) -> ModelMap:
    """M = (I - W)^-1 U; the laws are the entries of C = (I-W)(I-W)^T + U U^T."""
    W, U = _syms("w", m, m), _syms("u", m, d)
    A = sp.eye(m) - W
    M = A.adjugate() * U / A.det()
    C = A * A.T + U * U.T
    params = (*W, *U)
    return ModelMap(
        f"matrix-linear(m={m},d={d})",
        params,
        tuple(sp.cancel(x) for x in M),
        known_laws=_flat_laws("C", C),
        expected_laws=m * (m + 1) // 2,
        sampler=_matrix_sampler(m, len(params)),
        native=("matrix_deq_map", (m, d)),
    )


def matrix_linear_readout(m: int, d: int, k: int) -> ModelMap:
    """B (I - W)^-1 U; laws: entries of C and C' = (I-W)^T (I-W) + B^T B."""
    W, U, B = _syms("w", m, m), _syms("u", m, d), _syms("b", k, m)
    A = sp.eye(m) - W
    M = A.adjugate() * U / A.det()
    C, Cp = A * A.T + U * U.T, A.T * A + B.T * B
    params = (*W, *U, *B)
    degenerate = d == 1 and k == 1
    return ModelMap(
        f"matrix-linear-readout(m={m},d={d},k={k})",
        params,
        tuple(sp.cancel(x) for x in B * M),
        known_laws=_flat_laws("C", C) + _flat_laws("C'", Cp),
        expected_laws=len(params) - 1 if degenerate else m * (m + 1),
        sampler=_matrix_sampler(m, len(params)),
        native=("matrix_deq_map", (m, d, k)),
    )


def linear_net(widths: tuple[int, ...]) -> ModelMap:
    """W_L ... W_1 for widths (n_in, r_1, ..., n_out).

    Laws: the entries of W_i W_i^T - W_{i+1}^T W_{i+1}.
    """
    if len(widths) < 3:
        raise ValueError("a linear network needs at least (n_in, r, n_out)")
    Ws = [_syms(f"w{i + 1}_", widths[i + 1], widths[i]) for i in range(len(widths) - 1)]
    prod = Ws[0]
    for Wl in Ws[1:]:
        prod = Wl * prod
    laws = ()
    for i in range(len(Ws) - 1):
        laws += _flat_laws(
            f"W{i + 1}W{i + 1}^T-W{i + 2}^TW{i + 2}",
            Ws[i] * Ws[i].T - Ws[i + 1].T * Ws[i + 1],
        )
    params = tuple(s for Wl in Ws for s in Wl)
    expected = sum(r * (r + 1) // 2 for r in widths[1:-1])
    return ModelMap(
        f"linear-net{tuple(widths)}",
        params,
        tuple(sp.expand(x) for x in prod),
        known_laws=laws,
        expected_laws=expected,
        native=("linear_net_map", (tuple(widths),)),
    )


#: Activations of the single-index DEQ as SymPy lambdas (docs/theory/single_index.md).
def activation(name: str) -> sp.Lambda:
    z = sp.Symbol("z")
    if name == "tanh":
        return sp.Lambda(z, sp.tanh(z))
    if name == "sigmoid":
        return sp.Lambda(z, 1 / (1 + sp.exp(-z)))
    if name == "identity":
        return sp.Lambda(z, z)
    if name.startswith("sigma_eps"):
        _, _, eps = name.partition(":")
        return sp.Lambda(z, z + sp.Rational(eps or "1/2") * sp.tanh(z))
    raise ValueError(
        f"unknown activation {name!r}; choose tanh, sigmoid, identity or sigma_eps:EPS"
    )


def single_index(
    d: int, act: str = "tanh", n_probes: int | None = None, seed: int = 0
) -> ModelMap:
    """Predictions f_i of the single-index DEQ at random probe inputs (implicit map).

    f_i = sigma(<u, x_i> + v f_i) at n >= d + 1 generic (random) probes; for sigma = id
    the known law is Q. Points keep |v| <= 0.5 and u away from 0
    (docs/theory/discovery.md).
    """
    n = n_probes or d + 2
    rng = np.random.default_rng(seed)
    probes = rng.normal(size=(n, d))
    u = sp.symbols(f"u1:{d + 1}", real=True)
    v = sp.Symbol("v", real=True)
    f = sp.symbols(f"f1:{n + 1}", real=True)
    sig = activation(act)
    X = [[sp.Float(x, 17) for x in row] for row in probes]
    eqs = tuple(
        f[i] - sig(sum(X[i][j] * u[j] for j in range(d)) + v * f[i]) for i in range(n)
    )
    Q = sum(x**2 for x in u) + (1 - v) ** 2
    linear = act == "identity"

    def sampler(r):
        uu = r.normal(size=d)
        uu *= (0.7 + r.uniform()) / np.linalg.norm(uu)  # |u| in [0.7, 1.7]
        return np.concatenate([uu, [r.uniform(-0.5, 0.5)]])

    return ModelMap(
        f"single-index(d={d},sigma={act},probes={n})",
        (*u, v),
        tuple(f),
        unknowns=tuple(f),
        equations=eqs,
        known_laws=(("Q", sp.expand(Q)),) if linear else (),
        expected_laws=1 if linear else 0,
        sampler=sampler,
    )


def from_file(path: str | Path) -> ModelMap:
    """Load a user map: a Python file defining ``PARAMS`` and ``OUTPUTS`` (SymPy).

    **The file is trusted code**: it is imported, so it runs with your permissions,
    like any Python script; load only maps you wrote or have read. Strings among
    ``OUTPUTS``, ``EQUATIONS`` and ``KNOWN_LAWS`` are *not* evaluated: they are
    parsed by :func:`proofs_check.discovery.safe_expr.parse_expression` (numbers,
    the map's symbols, arithmetic and elementary functions only).

    Optional names: ``NAME`` (str), ``KNOWN_LAWS`` (list of (label, expr)),
    ``EXPECTED_LAWS`` (int). An implicit map defines ``UNKNOWNS`` and ``EQUATIONS``
    (F(theta, f) = 0, one per unknown) instead of ``OUTPUTS``; its outputs are the
    unknowns, solved by Newton from 0 at each evaluation point.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(
            f"map file {path} not found; pass the path of a Python file defining "
            "PARAMS and OUTPUTS (see proofs_check/discovery/example_map.py)"
        )
    spec = importlib.util.spec_from_file_location(f"user_map_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ns = vars(mod)
    if "UNKNOWNS" in ns:
        ns.setdefault("OUTPUTS", ns["UNKNOWNS"])
    missing = [k for k in ("PARAMS", "OUTPUTS") if k not in ns]
    if missing:
        raise ValueError(
            f"{path} must define {' and '.join(missing)} (SymPy symbols "
            "and expressions)"
        )
    symbols = (*ns["PARAMS"], *ns.get("UNKNOWNS", ()))

    def expr(o):
        return parse_expression(o, symbols) if isinstance(o, str) else _expr(o)

    return ModelMap(
        ns.get("NAME", path.stem),
        tuple(ns["PARAMS"]),
        tuple(expr(o) for o in ns["OUTPUTS"]),
        unknowns=tuple(ns.get("UNKNOWNS", ())),
        equations=tuple(expr(e) for e in ns.get("EQUATIONS", ())),
        known_laws=tuple((label, expr(e)) for label, e in ns.get("KNOWN_LAWS", ())),
        expected_laws=ns.get("EXPECTED_LAWS"),
    )


#: CLI names -> builders taking the parsed shape tuple (and keyword options).
BUILTINS = {
    "scalar-linear": lambda shape, **kw: scalar_linear(*(shape or (2,))),
    "matrix-linear": lambda shape, **kw: matrix_linear(*(shape or (2, 2))),
    "matrix-linear-readout": lambda shape, **kw: matrix_linear_readout(
        *(shape or (2, 2, 2))
    ),
    "linear-net": lambda shape, **kw: linear_net(tuple(shape or (2, 2, 2))),
    "single-index": lambda shape, **kw: single_index(
        *(shape or (2,)), act=kw.get("activation", "tanh"), seed=kw.get("seed", 0)
    ),
}

"""From a SymPy :class:`~.maps.ModelMap` to the torch maps of :mod:`dynamics.lie`.

Explicit maps are lambdified to torch. Implicit maps (F(theta, f) = 0) are solved
at each evaluation point in float64 (Newton from the map's initial guess), then
represented near that point by ``NEWTON_STEPS`` Newton steps unrolled in torch from
the *detached* root: the error of k steps is O(|theta - p|^(2^k)), so every
derivative of order below 2^k is exact at p (up to rounding), which is what the
nested brackets need. The Newton matrix is inverted with ``torch.linalg.inv``
(pitfall P10).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sympy as sp

from dynamics.errors import ConvergenceError

from .maps import ModelMap

#: Unrolled Newton steps for implicit maps: derivatives up to order 2^5 - 1 = 31 are
#: exact at the evaluation point, far beyond the bracket depths reached in practice.
NEWTON_STEPS = 5
#: Root residual accepted for the float64 solve of an implicit map.
ROOT_TOL = 1e-14


def _torch_callable(args: Sequence[sp.Symbol], exprs: Sequence[sp.Expr]):
    import torch

    fn = sp.lambdify(list(args), list(exprs), modules="torch")

    def call(*vals):
        ref = vals[0]
        out = fn(*vals)
        return [
            o if isinstance(o, torch.Tensor) else ref.new_full((), float(o))
            for o in out
        ]

    return call


#: Agreement required between a native torch map and its SymPy definition (value and
#: Jacobian at one random point) before the native map is used.
NATIVE_TOL = 1e-11


def _native(model: ModelMap, sympy_fn):
    """The vectorised torch map of ``model.native``, after checking it against SymPy."""
    import torch
    from torch.func import jacrev

    from dynamics import lie

    name, args = model.native
    phi = getattr(lie, name)(*args)
    p = torch.as_tensor(model.sample(np.random.default_rng(0)), dtype=torch.float64)

    def ref(theta):
        return torch.stack(sympy_fn(*theta.unbind()))

    for a, b in ((phi(p), ref(p)), (jacrev(phi)(p), jacrev(ref)(p))):
        err = float((a - b).abs().max() / max(1.0, float(b.abs().max())))
        if err > NATIVE_TOL:
            raise RuntimeError(
                f"{model.name}: native torch map {name}{args} differs "
                f"from the SymPy map by {err:.2e}"
            )
    return lambda point: phi


def local_map(model: ModelMap):
    """point -> torch map for :func:`dynamics.lie.lie_rank`."""
    import torch

    if not model.implicit:
        fn = _torch_callable(model.params, model.outputs)
        if model.native is not None:
            return _native(model, fn)

        def explicit(point):
            del point  # an explicit map is exact everywhere
            return lambda theta: torch.stack(fn(*theta.unbind()))

        return explicit

    D, n = model.D, len(model.unknowns)
    F = sp.Matrix(model.equations)
    JF = F.jacobian(list(model.unknowns))
    F_t = _torch_callable([*model.params, *model.unknowns], list(F))
    JF_t = _torch_callable([*model.params, *model.unknowns], list(JF))
    F_np = sp.lambdify([*model.params, *model.unknowns], list(F), "numpy")
    JF_np = sp.lambdify([*model.params, *model.unknowns], list(JF), "numpy")

    def root(point: np.ndarray) -> np.ndarray:
        f = (
            np.zeros(n)
            if model.initial_guess is None
            else np.asarray(model.initial_guess(point), float)
        )
        for _ in range(200):
            r = np.asarray(F_np(*point, *f), float)
            if np.max(np.abs(r)) <= ROOT_TOL:
                return f
            J = np.asarray(JF_np(*point, *f), float).reshape(n, n)
            try:
                step = np.linalg.solve(J, r)
            except np.linalg.LinAlgError:
                break  # singular Newton matrix: no root reachable from here
            t = 1.0
            while t > 1e-4:  # backtracking keeps the safeguarded Newton monotone
                cand = f - t * step
                if np.max(np.abs(np.asarray(F_np(*point, *cand), float))) < np.max(
                    np.abs(r)
                ):
                    break
                t /= 2
            f = f - t * step
        raise ConvergenceError(
            f"{model.name}: the implicit equations have no root reachable by Newton "
            f"from the initial guess at theta = {point} (residual above "
            f"{ROOT_TOL:g}); make sure EQUATIONS have a real solution near "
            "f = 0 for every theta (a ModelMap built in Python can also set "
            "sampler and initial_guess)"
        )

    def implicit(point):
        f0 = torch.as_tensor(root(np.asarray(point, float)), dtype=torch.float64)

        def phi(theta):
            f = f0
            th = list(theta.unbind())
            for _ in range(NEWTON_STEPS):
                args = th + list(f.unbind())
                r = torch.stack(F_t(*args))
                J = torch.stack(JF_t(*args)).reshape(n, n)
                f = f - torch.linalg.inv(J) @ r
            return f

        return phi

    del D
    return implicit

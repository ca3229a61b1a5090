"""The function f(z, x) of a DEQ, bound to its input and parameters, with dtype policy.

The state (the fixed-point iterate) lives in ``state_dtype`` (default float64); ``f``
runs in its own dtype (that of its first floating parameter, else of ``x``): its input
is cast to that dtype and its output back to the state dtype, so the affine
combinations of the solvers and their inverses round in the state dtype
(docs/theory/reversible.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call

from .errors import NonFiniteError, ShapeError

Map = Callable[[torch.Tensor], torch.Tensor]


def _f_dtype(f, x: torch.Tensor, state_dtype: torch.dtype) -> torch.dtype:
    if isinstance(f, nn.Module):
        for p in f.parameters():
            if p.is_floating_point():
                return p.dtype
    if x.is_floating_point():
        return x.dtype
    return state_dtype


@dataclasses.dataclass
class Problem:
    """``f`` with its parameters listed explicitly.

    Attributes:
        f: an ``nn.Module`` with ``forward(z, x)``, or any callable ``f(z, x)``.
        x: the injected input (batch-first).
        names: names of the parameters of ``f`` (empty for a plain callable).
        params: the parameter tensors, in the order of ``names``.
        state_dtype: dtype of the iterate.
        f_dtype: dtype in which ``f`` is evaluated.
    """

    f: Callable
    x: torch.Tensor
    names: tuple[str, ...]
    params: tuple[torch.Tensor, ...]
    state_dtype: torch.dtype
    f_dtype: torch.dtype

    @classmethod
    def build(cls, f, x: torch.Tensor, state_dtype: torch.dtype) -> Problem:
        if not callable(f):
            raise TypeError(
                f"f must be an nn.Module or a callable f(z, x); got {type(f).__name__}"
            )
        if isinstance(f, nn.Module):
            named = [(n, p) for n, p in f.named_parameters()]
        else:
            named = []
        return cls(
            f,
            x,
            tuple(n for n, _ in named),
            tuple(p for _, p in named),
            state_dtype,
            _f_dtype(f, x, state_dtype),
        )

    def bind(
        self,
        x: torch.Tensor | None = None,
        params: Sequence[torch.Tensor] | None = None,
    ) -> Map:
        """``z -> f(z, x)`` in the state dtype.

        With ``params`` the module is called functionally on exactly these tensors
        (``torch.func.functional_call``), which is what lets a custom autograd Function
        differentiate with respect to them; without, the module's own parameters are
        used and autograd reaches them directly.
        """
        x = self.x if x is None else x
        if x.is_floating_point() and x.dtype != self.f_dtype:
            x = x.to(self.f_dtype)
        f, sdt, fdt = self.f, self.state_dtype, self.f_dtype
        if params is not None and isinstance(f, nn.Module):
            table = dict(zip(self.names, params, strict=True))

            def call(z):
                return functional_call(f, table, (z.to(fdt), x))
        else:

            def call(z):
                return f(z.to(fdt), x)

        def mapped(z: torch.Tensor) -> torch.Tensor:
            out = call(z)
            if not isinstance(out, torch.Tensor) or out.shape != z.shape:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out)
                raise ShapeError(
                    f"f(z, x) must return a tensor shaped like z "
                    f"{tuple(z.shape)}; got {got}"
                )
            return out.to(sdt)

        return mapped


def check_finite(name: str, t: torch.Tensor) -> None:
    """Raise :class:`NonFiniteError` when a floating tensor holds NaN or inf."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise NonFiniteError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); "
            "a DEQ cannot iterate from it"
        )

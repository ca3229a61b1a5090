"""Seeded example maps f(z, x) shared by the REV-* checks, tests and benchmarks.

- :class:`TanhMap` (design E-TOY): ``f(z, x) = tanh(W z + U x + b)`` with
  ``||W||_2 = L`` exactly, so f is L-Lipschitz in z in the 2-norm.
- :class:`UnitMLP` (design E-UNIT): the authors' unit-test problem, an MLP on
  ``[z; x]`` with layers 2 -> 10 -> 10 -> 1 and ReLU.
- :class:`ResMLP` (design E-MEM): ``f(z, x) = tanh(LN(W2 relu(W1 z) + x))``, a
  block of width ``d`` used by the memory and time benchmarks.
- :class:`CountingMap`: NFE/VJP-counting wrapper around any f (REV-NFE test hook).
"""

from __future__ import annotations

import torch
from torch import nn

from .._fixed_point import fixed_point


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


class TanhMap(nn.Module):
    """``f(z, x) = tanh(W z + U x + b)`` with spectral norm ``||W||_2 = lipschitz``.

    Args:
        d: state size; dx: input size; lipschitz: L; seed; dtype.
    """

    def __init__(
        self,
        d: int = 16,
        dx: int = 8,
        lipschitz: float = 0.9,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ):
        super().__init__()
        g = _generator(seed)
        w = torch.randn(d, d, generator=g, dtype=torch.float64)
        w = w * (lipschitz / torch.linalg.matrix_norm(w, 2))
        self.W = nn.Parameter(w.to(dtype))
        self.U = nn.Parameter(
            (torch.randn(d, dx, generator=g, dtype=torch.float64) / dx**0.5).to(dtype)
        )
        self.b = nn.Parameter(
            (0.1 * torch.randn(d, generator=g, dtype=torch.float64)).to(dtype)
        )
        self.lipschitz = float(lipschitz)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z @ self.W.T + x @ self.U.T + self.b)


class ReluMap(nn.Module):
    """Unbounded ``f(z, x) = relu(W z + U x + b)`` with ``||W||_2 = lipschitz``
    (the overflow regime of REV-RECON)."""

    def __init__(
        self,
        d: int = 16,
        dx: int = 8,
        lipschitz: float = 0.5,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ):
        super().__init__()
        inner = TanhMap(d, dx, lipschitz, seed, dtype)
        self.W, self.U, self.b = inner.W, inner.U, inner.b
        with torch.no_grad():
            self.b.add_(1.0)  # positive bias: a non-trivial positive fixed point

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(z @ self.W.T + x @ self.U.T + self.b)


class UnitMLP(nn.Module):
    """The authors' unit-test map: ``MLP([z; x])``, layers 2 -> 10 -> 10 -> 1, ReLU.

    Seeded PyTorch init (the JAX PRNG key cannot be reproduced); ``last_scale``
    rescales the last layer when the forward iteration must be made contractive.
    """

    def __init__(
        self,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
        width: int = 10,
        last_scale: float = 1.0,
    ):
        super().__init__()
        torch_state = torch.random.get_rng_state()
        try:
            torch.manual_seed(int(seed))
            self.net = nn.Sequential(
                nn.Linear(2, width, dtype=dtype),
                nn.ReLU(),
                nn.Linear(width, width, dtype=dtype),
                nn.ReLU(),
                nn.Linear(width, 1, dtype=dtype),
            )
        finally:
            torch.random.set_rng_state(torch_state)
        if last_scale != 1.0:
            with torch.no_grad():
                self.net[4].weight.mul_(last_scale)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, x], dim=-1))


class ResMLP(nn.Module):
    """Width-``d`` block ``f(z, x) = tanh(LN(W2 relu(W1 z) + x))`` (E-MEM, benchmarks);
    LayerNorm keeps it well scaled and is per-example (safe for the reversible
    backward)."""

    def __init__(
        self,
        d: int = 512,
        hidden: int | None = None,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        hidden = hidden or d
        torch_state = torch.random.get_rng_state()
        try:
            torch.manual_seed(int(seed))
            self.l1 = nn.Linear(d, hidden, dtype=dtype)
            self.l2 = nn.Linear(hidden, d, dtype=dtype)
            self.norm = nn.LayerNorm(d, dtype=dtype)
        finally:
            torch.random.set_rng_state(torch_state)
        with torch.no_grad():
            self.l2.weight.mul_(0.5)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.norm(self.l2(torch.relu(self.l1(z))) + x))


class _CountVJP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, counter, t):
        ctx.counter = counter
        return t.view_as(t)

    @staticmethod
    def backward(ctx, g):
        ctx.counter.vjp += 1
        return None, g


class CountingMap(nn.Module):
    """Wraps ``f``: ``nfe`` counts calls of forward, ``vjp`` counts backward passes
    through an output (each VJP of the wrapped f)."""

    def __init__(self, f: nn.Module):
        super().__init__()
        self.f = f
        self.nfe = 0
        self.vjp = 0

    def reset(self) -> None:
        self.nfe = 0
        self.vjp = 0

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return _CountVJP.apply(self, self.f(z, x))


class PairMLP(nn.Module):
    """Structured-state variant of E-UNIT: state (B, 2) holding two components, each
    mapped by its own MLP 2 -> 3 -> 1 on ``[z_i; x]`` (the authors' pytree test)."""

    def __init__(self, seed: int = 0, dtype: torch.dtype = torch.float64):
        super().__init__()
        torch_state = torch.random.get_rng_state()
        try:
            torch.manual_seed(int(seed))
            self.m1 = nn.Sequential(
                nn.Linear(2, 3, dtype=dtype), nn.ReLU(), nn.Linear(3, 1, dtype=dtype)
            )
            self.m2 = nn.Sequential(
                nn.Linear(2, 3, dtype=dtype), nn.ReLU(), nn.Linear(3, 1, dtype=dtype)
            )
        finally:
            torch.random.set_rng_state(torch_state)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.m1(torch.cat([z[:, :1], x], dim=-1)),
                self.m2(torch.cat([z[:, 1:], x], dim=-1)),
            ],
            dim=-1,
        )


def loss_grads(
    f: nn.Module,
    solver,
    gradient,
    x: torch.Tensor,
    z0: torch.Tensor | None = None,
    *,
    tol: float,
    max_steps: int,
    loss=None,
    throw: bool = True,
):
    """Gradient of ``loss(z*)`` (default ``sum``) w.r.t. every parameter of ``f`` and
    ``x``, flattened into one vector, with the stats of the solve."""
    xr = x.detach().clone().requires_grad_()
    params = list(f.parameters())
    sol = fixed_point(
        f, solver, z0, xr, gradient=gradient, tol=tol, max_steps=max_steps, throw=throw
    )
    out = sol.value.sum() if loss is None else loss(sol.value)
    grads = torch.autograd.grad(out, [*params, xr], allow_unused=True)
    flat = torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).reshape(-1).to(torch.float64)
            for g, p in zip(grads, [*params, xr])
        ]
    )
    return flat, sol.stats

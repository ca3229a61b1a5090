"""DEQLayer as a PyTorch user expects it: dtype follows the input, shapes checked,
running statistics refused for the reversible gradient, per-call stats, a separate
evaluation budget; and the dense IFT threshold scaled with the dtype."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dynamics import DEQLayer, Result
from dynamics.errors import InvalidInputError
from dynamics.gradients import DenseIFT, ImplicitIFT, ReversibleExact
from dynamics.instances.torch_examples import TanhMap
from dynamics.solvers import Picard, Reversible


class Block(nn.Module):
    """f(z, x) = tanh(W z + x) with ||W||_2 = 0.5 (a contraction)."""

    def __init__(self, d=6, dtype=torch.float32):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        w = torch.randn(d, d, generator=g, dtype=torch.float64)
        self.w = nn.Parameter((0.5 * w / torch.linalg.matrix_norm(w, ord=2)).to(dtype))

    def forward(self, z, x):
        return torch.tanh(z @ self.w.T.to(z.dtype) + x.to(z.dtype))


def test_output_dtype_follows_input():
    """float32 in, float32 out, while the state stays float64 (explicit default)."""
    layer = DEQLayer(
        Block(), Picard(), ImplicitIFT(tol=1e-6), tol=1e-6, max_steps=200
    )
    x = torch.randn(3, 6, dtype=torch.float32)
    z = layer(x)
    assert z.dtype == torch.float32
    z.sum().backward()
    assert layer.f.w.grad is not None and layer.f.w.grad.dtype == torch.float32
    assert layer(x.double()).dtype == torch.float64


def test_z0_of_wrong_shape_is_refused_with_a_clear_error():
    layer = DEQLayer(Block(), Picard(), ImplicitIFT())
    x = torch.randn(3, 6, dtype=torch.float32)
    with pytest.raises(InvalidInputError, match="shape"):
        layer(x, torch.zeros(3, 5))


def test_batchnorm_refused_for_reversible_gradient():
    """BatchNorm updates running statistics on every call, so f is not a fixed
    function and the reversible backward's re-evaluations would not match."""

    class BN(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(6, dtype=torch.float64)

        def forward(self, z, x):
            return torch.tanh(0.5 * self.bn(z) + x)

    with pytest.raises(InvalidInputError, match="BatchNorm1d"):
        DEQLayer(BN(), Reversible(0.8), ReversibleExact())
    DEQLayer(BN(), Picard(), ImplicitIFT())  # fine for the IFT gradient

    class Counter(nn.Module):  # any buffer updated in train mode
        def __init__(self):
            super().__init__()
            self.register_buffer("calls", torch.zeros(()))

        def forward(self, z, x):
            self.calls += 1
            return torch.tanh(0.5 * z + x)

    layer = DEQLayer(Counter(), Reversible(0.8), ReversibleExact(), tol=0, max_steps=3)
    with pytest.raises(InvalidInputError, match="buffers"):
        layer(torch.randn(2, 3, dtype=torch.float64))


def test_per_call_stats_and_eval_budget():
    """return_stats gives this call's stats (not overwritten by the next call); in
    eval mode the eval budget applies."""
    layer = DEQLayer(
        Block(),
        Picard(),
        ImplicitIFT(tol=1e-5),
        tol=1e-5,
        max_steps=100,
        eval_max_steps=2,
        throw=False,
    )
    x = torch.randn(4, 6, dtype=torch.float32)
    out = layer(x, return_stats=True)
    first = out.stats
    assert out.value.dtype == torch.float32
    assert first["forward_result"] is Result.successful
    layer.eval()
    second = layer(x, return_stats=True).stats
    assert second["nstep"].tolist() == [2, 2, 2, 2]
    assert second["forward_result"] is Result.max_steps_reached
    assert first["forward_result"] is Result.successful  # not overwritten
    assert int(first["nstep"].max()) > 2


def test_dense_ift_float32_is_not_singular():
    """The dense solve's singularity threshold is sqrt(eps) of the dtype: a
    well-conditioned float32 system is not reported singular (before: a fixed 1e-8,
    below float32 rounding)."""
    f = TanhMap(6, 3, 0.5, seed=2, dtype=torch.float32)
    layer = DEQLayer(
        f, Picard(), DenseIFT(), tol=1e-5, max_steps=200, state_dtype=torch.float32
    )
    x = torch.randn(2, 3, dtype=torch.float32)
    layer(x, torch.zeros(2, 6, dtype=torch.float32)).sum().backward()
    assert layer.last_stats["backward_result"] is Result.successful
    assert float(layer.last_stats["backward_residual"].max()) < 1e-5

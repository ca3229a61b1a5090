"""DEQLayer and the functional entry point (layer.py, _fixed_point.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dynamics import DEQLayer, Result, Solution, fixed_point
from dynamics.errors import (
    ConvergenceError,
    InvalidInputError,
    NonFiniteError,
    ShapeError,
    UnknownOptionError,
)
from dynamics.gradients import (
    JFB,
    DenseIFT,
    ImplicitIFT,
    Phantom,
    ReversibleExact,
    Unrolled,
)
from dynamics.instances.torch_examples import TanhMap
from dynamics.solvers import Anderson, Picard, Relaxed, Reversible


class Block(nn.Module):
    """f(z, x) = tanh(LayerNorm(W z + x)): state shaped like x (default z0 works)."""

    def __init__(self, d=8, dtype=torch.float64):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(d, d, dtype=dtype)
        self.norm = nn.LayerNorm(d, dtype=dtype)

    def forward(self, z, x):
        return torch.tanh(self.norm(self.lin(z) + x))


STATS_KEYS = {
    "result",
    "forward_result",
    "backward_result",
    "nstep",
    "residual",
    "residual_trace",
    "nfe_forward",
    "nfe_backward",
    "reconstruction_error",
    "example_result",
    "converged",
}


def test_defaults_and_stats():
    """Default: Reversible(0.8) + ReversibleExact; documented stats keys and shapes,
    filled in place by the backward pass."""
    layer = DEQLayer(Block(), tol=1e-3, max_steps=20)
    assert isinstance(layer.solver, Reversible) and layer.solver.beta == 0.8
    assert isinstance(layer.gradient, ReversibleExact)
    x = torch.randn(5, 8)
    z = layer(x)
    st = layer.last_stats
    assert STATS_KEYS <= set(st)
    assert z.shape == x.shape and z.dtype == torch.float64
    assert st["nstep"].shape == (5,) and st["residual"].shape == (5,)
    assert st["residual_trace"].shape == (5, int(st["nstep"].max()))
    assert st["nfe_forward"] == 1 + 2 * int(st["nstep"].max())
    assert st["reconstruction_error"] is None and st["backward_result"] is None
    z.sum().backward()
    assert st is layer.last_stats
    assert st["reconstruction_error"].shape == (5,)
    assert st["nfe_backward"] == 2 * int(st["nstep"].max())
    assert st["result"] is Result.successful
    assert all(p.grad is not None for p in layer.parameters())


def test_unknown_option_rejected():
    with pytest.raises(UnknownOptionError, match="max_iter"):
        DEQLayer(Block(), max_iter=10)
    with pytest.raises(TypeError):  # UnknownOptionError is a TypeError
        DEQLayer(Block(), f_solver="anderson")


@pytest.mark.parametrize(
    "kw",
    [
        {"solver": "anderson"},
        {"gradient": "ift"},
        {"solver": Picard(), "gradient": "reversible"},
    ],
)
def test_strings_are_not_objects(kw):
    with pytest.raises(UnknownOptionError, match="object"):
        DEQLayer(Block(), **kw)


def test_reversible_gradient_with_other_solver_is_an_error():
    with pytest.raises(InvalidInputError, match="only valid with the Reversible"):
        DEQLayer(Block(), solver=Anderson(), gradient=ReversibleExact())


@pytest.mark.parametrize(
    "kw",
    [
        {"tol": -1.0},
        {"max_steps": 0},
        {"throw": "yes"},
        {"state_dtype": torch.int64},
        {"state_dtype": "f64"},
    ],
)
def test_bad_settings(kw):
    with pytest.raises(InvalidInputError):
        DEQLayer(Block(), **kw)


def test_f_must_be_a_module():
    with pytest.raises(InvalidInputError, match="nn.Module"):
        DEQLayer(lambda z, x: z)


def test_nonfinite_input_rejected():
    layer = DEQLayer(Block())
    x = torch.randn(3, 8)
    x[1, 2] = float("nan")
    with pytest.raises(NonFiniteError, match="non-finite"):
        layer(x)
    with pytest.raises(NonFiniteError):
        layer(torch.randn(3, 8), torch.full((3, 8), float("inf")))


def test_shape_errors():
    layer = DEQLayer(TanhMap(4, 2))
    with pytest.raises(InvalidInputError, match="batch"):
        layer(torch.randn(3, 2), torch.zeros(2, 4))

    class Bad(nn.Module):
        def forward(self, z, x):
            return z.sum(dim=-1)

    with pytest.raises(ShapeError, match="shaped like z"):
        DEQLayer(Bad(), solver=Picard(), gradient=Unrolled())(torch.randn(2, 3))


def test_nonconvergence_raises_only_when_asked():
    """throw=True (default) raises ConvergenceError; throw=False returns the iterate
    labelled max_steps_reached (never successful)."""
    x = torch.randn(4, 8)
    with pytest.raises(ConvergenceError, match="max_steps=2"):
        DEQLayer(Block(), tol=1e-12, max_steps=2)(x)
    layer = DEQLayer(Block(), tol=1e-12, max_steps=2, throw=False)
    layer(x).sum().backward()
    st = layer.last_stats
    assert st["forward_result"] is Result.max_steps_reached
    assert st["result"] is Result.max_steps_reached
    assert not bool(st["converged"].any())


def test_tol_zero_is_fixed_step_mode():
    """tol = 0 runs exactly max_steps steps; fixed_steps_completed is recorded (not a
    failure, never raised)."""
    layer = DEQLayer(Block(), tol=0.0, max_steps=3, throw=True)
    layer(torch.randn(2, 8)).sum().backward()
    assert layer.last_stats["nstep"].tolist() == [3, 3]
    assert layer.last_stats["forward_result"] is Result.fixed_steps_completed


def test_divergence_raises():
    class Grow(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.tensor(3.0))

        def forward(self, z, x):
            return self.a * z + x

    with pytest.raises(ConvergenceError, match="diverged"):
        DEQLayer(Grow(), solver=Picard(), gradient=Unrolled(), max_steps=200)(
            torch.ones(2, 1)
        )


@pytest.mark.parametrize(
    "solver,grad",
    [
        (Reversible(0.8), ReversibleExact()),
        (Reversible(1.2), Unrolled()),
        (Picard(), Unrolled(checkpoint=True)),
        (Relaxed(0.8), ImplicitIFT()),
        (Anderson(), DenseIFT()),
        (Anderson(), Phantom()),
        (Relaxed(0.9), JFB()),
    ],
    ids=lambda o: type(o).__name__,
)
def test_every_pairing_trains(solver, grad):
    """Every solver/gradient pairing gives finite gradients for every parameter and
    the input, batched, and a few Adam steps reduce a regression loss."""
    torch.manual_seed(1)
    enc = nn.Linear(4, 8)
    # reversible: the short fixed-step regime of the authors' configurations
    steps = 6 if isinstance(grad, ReversibleExact) else 30
    layer = DEQLayer(
        Block(), solver=solver, gradient=grad, tol=1e-4, max_steps=steps, throw=False
    )
    head = nn.Linear(8, 1)
    x = torch.randn(16, 4)
    y = torch.sin(x.sum(1, keepdim=True))
    params = [*enc.parameters(), *layer.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for _ in range(5):
        loss = ((head(layer(enc(x))) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        assert all(
            p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in params
        )
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_float32_model_with_float64_state():
    """f in float32, state float64 (default): output in the input dtype (float32),
    grads float32."""
    layer = DEQLayer(Block(dtype=torch.float32), tol=1e-3, max_steps=4, throw=False)
    x = torch.randn(3, 8)
    z = layer(x.float())
    assert z.dtype == torch.float32
    assert layer.last_stats["residual_abs"].dtype == torch.float64  # state stays f64
    z.sum().backward()
    assert all(p.grad.dtype == torch.float32 for p in layer.parameters())
    layer32 = DEQLayer(
        Block(dtype=torch.float32),
        tol=1e-3,
        max_steps=4,
        throw=False,
        state_dtype=torch.float32,
    )
    assert layer32(x.float()).dtype == torch.float32


def test_functional_entry_point():
    """fixed_point(f, solver, z0, x, gradient=...) returns a Solution."""
    f = TanhMap(4, 2, 0.7)
    x = torch.randn(3, 2)
    sol = fixed_point(
        f,
        Reversible(0.8),
        torch.zeros(3, 4),
        x,
        gradient=ReversibleExact(),
        max_steps=20,
        tol=1e-3,
    )
    assert isinstance(sol, Solution)
    assert sol.result is Result.successful
    assert sol.value.shape == (3, 4)
    sol.value.sum().backward()
    assert sol.stats["reconstruction_error"].shape == (3,)
    default = fixed_point(f, Anderson(), torch.zeros(3, 4), x)
    assert default.stats["backward_result"] is None  # ImplicitIFT by default


def test_extra_repr_names_the_objects():
    text = repr(DEQLayer(Block(), solver=Relaxed(0.7), gradient=JFB(), tol=1e-4))
    assert "Relaxed(beta=0.7)" in text and "JFB()" in text and "tol=0.0001" in text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    "grad", [ReversibleExact(), Unrolled(), ImplicitIFT()], ids=repr
)
def test_cuda_layer(grad):
    """The layer runs batched on CUDA and agrees with the CPU result."""
    solver = Reversible(0.8) if isinstance(grad, ReversibleExact) else Relaxed(0.8)
    f = Block()
    x = torch.randn(16, 8)
    cpu = DEQLayer(f, solver=solver, gradient=grad, tol=1e-8, max_steps=200)(x)
    fc = Block().cuda()
    fc.load_state_dict(f.state_dict())
    layer = DEQLayer(fc, solver=solver, gradient=grad, tol=1e-8, max_steps=200)
    z = layer(x.cuda())
    z.sum().backward()
    assert z.device.type == "cuda"
    assert torch.allclose(z.cpu(), cpu, atol=1e-10)
    assert all(p.grad is not None and p.grad.is_cuda for p in fc.parameters())


@pytest.mark.parametrize(
    "grad", [ReversibleExact(), ImplicitIFT(), DenseIFT(), JFB()], ids=repr
)
def test_inference_under_no_grad(grad):
    """Under torch.no_grad the layer returns the iterate without building a graph."""
    solver = Reversible(0.8) if isinstance(grad, ReversibleExact) else Relaxed(0.8)
    layer = DEQLayer(Block(), solver=solver, gradient=grad, tol=1e-3, max_steps=30)
    with torch.no_grad():
        z = layer(torch.randn(3, 8))
    assert not z.requires_grad and z.shape == (3, 8)

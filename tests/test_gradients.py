"""Gradient methods as objects (dynamics/gradients): oracles are the unrolled loop,
the dense IFT solve, finite differences and the scalar linear-DEQ factors c(v)."""

from __future__ import annotations

import pytest
import torch
from support import TOL, rel_err
from torch import nn

from dynamics import Result, fixed_point
from dynamics.errors import (
    ConvergenceError,
    InvalidInputError,
    SingularEquilibriumError,
)
from dynamics.gradients import (
    JFB,
    Damped,
    DenseIFT,
    ExactIFT,
    ImplicitIFT,
    Neumann,
    Phantom,
    ReversibleExact,
    Unrolled,
)
from dynamics.instances.torch_examples import PairMLP, TanhMap, UnitMLP, loss_grads
from dynamics.solvers import Anderson, Broyden, Picard, Relaxed, Reversible

X_UNIT = torch.tensor([[0.1]])
TIGHT = {"tol": 1e-8, "max_steps": 500}


class ScalarLinear(nn.Module):
    """f(z, x) = v z + u x (scalar state): exact gradient du z* = x / (1 - v)."""

    def __init__(self, u: float, v: float):
        super().__init__()
        self.u = nn.Parameter(torch.tensor(u))
        self.v = nn.Parameter(torch.tensor(v))

    def forward(self, z, x):
        return self.v * z + self.u * x


@pytest.mark.claim("REV-EXACT")
@pytest.mark.parametrize("beta", [0.8, 1.2])
@pytest.mark.parametrize("f", [UnitMLP(seed=0), PairMLP(seed=0)], ids=["mlp", "pair"])
def test_rev_exact_unit_reversible(f, beta):
    """REV-EXACT (E-UNIT): reversible gradient = unrolled reference, atol 1e-5 (the
    authors' test); tol 1e-8, 500 steps, x = [0.1], loss sum z*."""
    z0 = None if isinstance(f, UnitMLP) else torch.tensor([[0.2, 0.3]])
    ref, _ = loss_grads(f, Reversible(beta), Unrolled(), X_UNIT, z0, **TIGHT)
    got, st = loss_grads(f, Reversible(beta), ReversibleExact(), X_UNIT, z0, **TIGHT)
    assert st["forward_result"] is Result.successful
    assert float((got - ref).abs().max()) <= TOL["REV-EXACT-unit-atol"]


@pytest.mark.claim("REV-IFT-APPROX")
@pytest.mark.parametrize("solver", [Picard(), Relaxed(0.8)], ids=str)
@pytest.mark.parametrize("f", [UnitMLP(seed=0), PairMLP(seed=0)], ids=["mlp", "pair"])
def test_implicit_matches_unrolled_when_tight(f, solver):
    """REV-IFT-APPROX (tight): implicit adjoint (tol 1e-8, 500 steps) = unrolled."""
    z0 = None if isinstance(f, UnitMLP) else torch.tensor([[0.2, 0.3]])
    ref, _ = loss_grads(f, solver, Unrolled(), X_UNIT, z0, **TIGHT)
    got, st = loss_grads(
        f, solver, ImplicitIFT(tol=1e-8, max_steps=500), X_UNIT, z0, **TIGHT
    )
    assert float((got - ref).abs().max()) <= TOL["REV-EXACT-unit-atol"]
    assert rel_err(got, ref) <= TOL["REV-IFT-tight"]
    assert st["backward_result"] is Result.successful
    assert float(st["backward_residual"].max()) <= 1e-8
    assert st["nfe_backward"] == int(st["backward_nstep"].max()) + 2


@pytest.mark.parametrize("f", [UnitMLP(seed=0), PairMLP(seed=0)], ids=["mlp", "pair"])
def test_phantom_matches_unrolled(f):
    """Phantom (lam 0.5, 50 steps) after a relaxed forward = unrolled, atol 1e-5."""
    z0 = None if isinstance(f, UnitMLP) else torch.zeros(1, 2)
    ref, _ = loss_grads(f, Relaxed(0.8), Unrolled(), X_UNIT, z0, **TIGHT)
    got, st = loss_grads(f, Relaxed(0.8), Phantom(k=50, lam=0.5), X_UNIT, z0, **TIGHT)
    assert float((got - ref).abs().max()) <= TOL["REV-EXACT-unit-atol"]
    assert st["nfe_backward"] == 50


def test_dense_ift_is_ground_truth():
    """DenseIFT = the closed-form gradient of a linear DEQ (residual reported)."""
    a = torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    a = 0.7 * a / torch.linalg.matrix_norm(a, 2)

    class Lin(nn.Module):
        def __init__(self):
            super().__init__()
            self.A = nn.Parameter(a.clone())

        def forward(self, z, x):
            return z @ self.A.T + x

    f = Lin()
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    got, st = loss_grads(f, Anderson(m=3), DenseIFT(), x, tol=1e-13, max_steps=500)
    # z* = (I - A)^{-1} x ; L = sum z* ; dL/dx = (I - A)^{-T} 1 ; dL/dA = g z*^T summed
    inv = torch.linalg.inv(torch.eye(5) - a)
    zs = x @ inv.T
    gvec = inv.T @ torch.ones(5)
    expect_a = (gvec[:, None] * zs.sum(0)[None, :]).reshape(-1)
    expect_x = gvec.expand(3, 5).reshape(-1)
    assert rel_err(got, torch.cat([expect_a, expect_x])) <= 1e-10
    assert float(st["backward_residual"].max()) <= 1e-12
    assert st["nfe_backward"] == 6


def test_dense_ift_flags_singular_system():
    """f(z, x) = z + x: I - J = 0, so the dense solve reports Result.singular and
    raises SingularEquilibriumError when throw=True."""

    class Shift(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Parameter(torch.tensor(0.0))

        def forward(self, z, x):
            return z + self.c * x

    f = Shift()
    x = torch.ones(2, 3)
    sol = fixed_point(
        f, Picard(), None, x, gradient=DenseIFT(), tol=1e-6, max_steps=5, throw=True
    )
    with pytest.raises(SingularEquilibriumError, match="singular"):
        sol.value.sum().backward()
    sol = fixed_point(
        f, Picard(), None, x, gradient=DenseIFT(), tol=1e-6, max_steps=5, throw=False
    )
    sol.value.sum().backward()
    assert sol.stats["backward_result"] is Result.singular
    assert sol.stats["result"] is Result.singular


def test_dense_ift_rejects_large_states():
    f = TanhMap(8, 2, 0.5)
    with pytest.raises(InvalidInputError, match="max_dim"):
        fixed_point(
            f,
            Picard(),
            torch.zeros(1, 8),
            torch.zeros(1, 2),
            gradient=DenseIFT(max_dim=4),
        )


def test_implicit_nonconvergence_fails_loudly():
    """An adjoint solve that does not converge raises ConvergenceError with
    throw=True, and is recorded (result, residual) with throw=False."""
    f = TanhMap(8, 4, 0.97, seed=2)
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(2))
    z0 = torch.zeros(2, 8)
    grad = ImplicitIFT(tol=1e-12, max_steps=2)
    sol = fixed_point(f, Picard(), z0, x, gradient=grad, tol=1e-10, max_steps=2000)
    with pytest.raises(ConvergenceError, match="implicit adjoint"):
        sol.value.sum().backward()
    sol = fixed_point(
        f, Picard(), z0, x, gradient=grad, tol=1e-10, max_steps=2000, throw=False
    )
    sol.value.sum().backward()
    st = sol.stats
    assert st["backward_result"] is Result.max_steps_reached
    assert st["result"] is Result.max_steps_reached
    assert float(st["backward_residual"].max()) > 1e-12


@pytest.mark.parametrize(
    "linear", [Picard(), Relaxed(0.7), Anderson(m=3), Broyden()], ids=str
)
def test_implicit_linear_solver_choice(linear):
    """The adjoint fixed point can be solved by any solver object; all agree with
    the dense IFT gradient."""
    f = TanhMap(6, 3, 0.8, seed=4)
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(5))
    z0 = torch.zeros(2, 6)
    kw = {"tol": 1e-12, "max_steps": 1000}
    ref, _ = loss_grads(f, Anderson(m=3), DenseIFT(), x, z0, **kw)
    got, st = loss_grads(
        f,
        Anderson(m=3),
        ImplicitIFT(tol=1e-12, max_steps=500, linear_solver=linear),
        x,
        z0,
        **kw,
    )
    assert rel_err(got, ref) <= 1e-9
    assert st["backward_result"] is Result.successful


@pytest.mark.claim("APX-JFB")
@pytest.mark.parametrize("v", [-0.8, -0.3, 0.2, 0.6])
@pytest.mark.parametrize(
    "grad",
    [
        JFB(),
        Phantom(k=3, lam=0.5),
        Phantom(k=8, lam=1.0),
        ImplicitIFT(tol=1e-14, max_steps=2000),
        DenseIFT(),
        Unrolled(),
        ExactIFT(),
        Neumann(1),
        Neumann(3),
        Damped(2, 0.5),
        Damped(4, 0.3),
    ],
    ids=repr,
)
def test_scalar_factor_matches_gradient(grad, v):
    """Each method's torch gradient on f(z) = v z + u x equals c(v) times the exact
    one: the closed form ``linear_factor`` that the symbolic and numeric theory read
    is the factor of the method's own solve."""
    f = ScalarLinear(0.7, v)
    x = torch.tensor([[1.3]])
    got, _ = loss_grads(f, Picard(), grad, x, tol=1e-15, max_steps=5000)
    du_exact = 1.3 / (1 - v)
    assert float(got[0]) == pytest.approx(grad.linear_factor(v) * du_exact, rel=1e-9)


def test_reversible_gradient_needs_reversible_solver():
    """ReversibleExact with any other solver is an error naming the fix."""
    for solver in (Picard(), Relaxed(0.8), Anderson(), Broyden()):
        with pytest.raises(InvalidInputError, match="only valid with the Reversible"):
            ReversibleExact().check_solver(solver)
        with pytest.raises(InvalidInputError, match="Reversible"):
            fixed_point(
                TanhMap(2, 2),
                solver,
                None,
                torch.zeros(1, 2),
                gradient=ReversibleExact(),
            )


def test_reversible_gradient_needs_a_module():
    """A plain function would hide captured parameters from the Function: refused."""
    w = torch.tensor(0.5, requires_grad=True)
    with pytest.raises(InvalidInputError, match="nn.Module"):
        fixed_point(
            lambda z, x: w * z + x,
            Reversible(0.8),
            None,
            torch.ones(1, 1),
            gradient=ReversibleExact(),
        )


def test_plain_callables_work_with_autograd_methods():
    """Captured tensors get gradients through Unrolled / IFT / phantom / JFB."""
    w = torch.tensor(0.5, requires_grad=True)
    for grad in (Unrolled(), ImplicitIFT(), Phantom(), JFB(), DenseIFT()):
        sol = fixed_point(
            lambda z, x: w * z + x,
            Relaxed(0.9),
            None,
            torch.ones(2, 1),
            gradient=grad,
            tol=1e-10,
            max_steps=500,
        )
        (g,) = torch.autograd.grad(sol.value.sum(), w)
        assert bool(torch.isfinite(g)) and float(g) > 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: Phantom(k=0),
        lambda: Phantom(lam=0.0),
        lambda: Phantom(lam=1.5),
        lambda: ImplicitIFT(tol=-1),
        lambda: ImplicitIFT(max_steps=0),
        lambda: ImplicitIFT(linear_solver="picard"),
        lambda: ReversibleExact(recon_policy="shout"),
        lambda: ReversibleExact(recon_threshold=0.0),
        lambda: ReversibleExact(use_stored_states=True),
    ],
)
def test_gradient_validation(make):
    with pytest.raises(InvalidInputError):
        make()


def test_output_value_does_not_depend_on_gradient_method():
    """What is solved is separate from how gradients flow: the same solver gives the
    same value under every gradient method that keeps the forward's iterate."""
    f = TanhMap(4, 2, 0.7, seed=9)
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(9))
    z0 = torch.zeros(3, 4)
    vals = [
        fixed_point(
            f, Relaxed(0.8), z0, x, gradient=g, tol=1e-6, max_steps=200
        ).value.detach()
        for g in (Unrolled(), ImplicitIFT(), DenseIFT(), Phantom(), JFB())
    ]
    for v in vals[1:]:
        assert torch.equal(v, vals[0])

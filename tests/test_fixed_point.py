"""Fixed-point solvers and the driver loop (dynamics/fixed_point)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from support import TOL, rel_err

from dynamics import Result
from dynamics._problem import Problem
from dynamics.errors import InvalidInputError
from dynamics.instances.torch_examples import TanhMap
from dynamics.solvers import (
    STATUS_CODES,
    Anderson,
    Broyden,
    Picard,
    Relaxed,
    ReversibilityWarning,
    Reversible,
    iterate,
    relative_residual,
)
from dynamics.testing.deq_strategies import contractive_maps, revdeq_configs

ALL = [
    Picard(),
    Relaxed(0.8),
    Anderson(),
    Anderson(m=4, beta=1.0),
    Broyden(),
    Reversible(0.8),
    Reversible(1.2),
]


def _toy(lip=0.8, batch=5, d=8, seed=0):
    f = TanhMap(d, 4, lip, seed=seed)
    x = torch.randn(batch, 4, generator=torch.Generator().manual_seed(seed))
    return Problem.build(f, x, torch.float64).bind(), torch.zeros(batch, d)


def _picard_star(fm, z0):
    with torch.no_grad():
        return iterate(Picard(), fm, z0, tol=1e-15, max_steps=2000).z


@pytest.mark.parametrize("solver", ALL, ids=str)
def test_solvers_agree_with_picard(solver):
    """Every solver reaches the Picard fixed point of a contraction (tol 1e-12)."""
    fm, z0 = _toy()
    zs = _picard_star(fm, z0)
    with torch.no_grad():
        run = iterate(solver, fm, z0, tol=1e-12, max_steps=500)
    assert run.result is Result.successful
    assert bool(run.stats["converged"].all())
    assert rel_err(run.z, zs) <= TOL["FP-agree"]
    assert float(run.stats["residual"].max()) <= 1e-12


@pytest.mark.parametrize("solver", ALL, ids=str)
def test_nfe_and_stats_shapes(solver):
    """NFE = nfe_init + nfe_per_step * N (reversible: 1 + 2N); documented shapes."""
    fm, z0 = _toy(batch=3)
    with torch.no_grad():
        run = iterate(solver, fm, z0, tol=0.0, max_steps=6)
    st = run.stats
    assert st["nfe_forward"] == solver.nfe_init + solver.nfe_per_step * 6
    assert st["nstep"].tolist() == [6, 6, 6]
    assert st["residual_trace"].shape == (3, 6)
    assert st["residual"].shape == (3,)
    assert st["example_result"].dtype == torch.int8
    assert run.result is Result.fixed_steps_completed
    assert torch.equal(st["residual"], st["residual_trace"][:, -1])


def test_reversible_nfe_is_one_plus_two_n():
    """REV-NFE (forward): N reversible steps cost 1 + 2N evaluations of f."""
    calls = []
    fm, z0 = _toy(batch=2)

    def counted(z):
        calls.append(1)
        return fm(z)

    for n in (1, 2, 5):
        calls.clear()
        with torch.no_grad():
            iterate(Reversible(0.8), counted, z0, tol=0.0, max_steps=n)
        assert len(calls) == 1 + 2 * n


def test_residual_is_relative_per_example():
    """Spec §4: ||z - f(z)||_2 / (1e-5 + ||f(z)||_2) per example, flattened."""
    z = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]]])
    fz = torch.tensor([[[1.0, 0.0]], [[3.0, 4.0]]])
    err = relative_residual(z, fz)
    assert err[0] == pytest.approx(2.0 / (1e-5 + 1.0))
    assert err[1] == pytest.approx(5.0 / (1e-5 + 5.0))


def test_masking_freezes_converged_examples():
    """Per-example masking: an example stops at its own tolerance; its iterate is then
    frozen (no post-convergence step) and the others continue."""
    fm, z0 = _toy(batch=4, lip=0.9)

    def fm_scaled(z):
        return fm(z) * torch.tensor([[0.0], [1.0], [1.0], [1.0]])

    with torch.no_grad():
        run = iterate(
            Relaxed(0.8), fm_scaled, z0, tol=1e-6, max_steps=300, record_trajectory=True
        )
    n = run.stats["nstep"]
    assert n[0] == 1  # f = 0 there: converged after one step (z = 0)
    assert bool((n[1:] > 1).all())
    traj = run.stats["trajectory"]["z"]
    k = int(n[1])
    assert torch.equal(traj[k, 1], traj[-1, 1])  # frozen once converged
    assert run.stats["residual_trace"].shape[1] == int(n.max())


def test_at_least_one_step_even_at_the_fixed_point():
    """The loop takes at least one step (err starts at 2 tol,
    docs/theory/reversible.md)."""
    fm, z0 = _toy()
    zs = _picard_star(fm, z0)
    with torch.no_grad():
        run = iterate(Reversible(0.8), fm, zs, tol=1e-3, max_steps=10)
    assert run.stats["nstep"].tolist() == [1] * zs.shape[0]


def test_max_steps_is_never_labelled_converged():
    """An iterate that did not reach tol is max_steps_reached, not successful."""
    fm, z0 = _toy(lip=0.9)
    with torch.no_grad():
        run = iterate(Picard(), fm, z0, tol=1e-14, max_steps=3)
    assert run.result is Result.max_steps_reached
    assert not bool(run.stats["converged"].any())
    assert STATUS_CODES[int(run.stats["example_result"][0])] is Result.max_steps_reached


def test_divergence_and_nonfinite_codes():
    """z -> 2z + 1 diverges (code diverged); a NaN in f gives nonfinite."""
    z0 = torch.zeros(2, 3)
    with torch.no_grad():
        run = iterate(Picard(), lambda z: 2 * z + 1, z0, tol=1e-8, max_steps=200)
    assert run.result is Result.diverged
    assert int(run.stats["nstep"].max()) < 200
    nan_row = torch.tensor([[1.0], [float("nan")]])
    with torch.no_grad():
        run = iterate(Picard(), lambda z: 0.5 * z + nan_row, z0, tol=1e-8, max_steps=50)
    assert run.result is Result.nonfinite
    assert STATUS_CODES[int(run.stats["example_result"][0])] is Result.successful
    assert STATUS_CODES[int(run.stats["example_result"][1])] is Result.nonfinite


@pytest.mark.parametrize(
    "fn",
    [lambda z: torch.ones_like(z), lambda z: z, lambda z: 0 * z],
    ids=["constant", "identity", "zero"],
)
@pytest.mark.parametrize(
    "solver", [Anderson(m=3), Anderson(m=1), Broyden(memory=4)], ids=str
)
def test_singular_histories_do_not_crash(fn, solver):
    """Anderson / Broyden with singular (repeated, zero or collinear) histories run
    without raising and never return NaN."""
    z0 = torch.zeros(3, 4)
    with torch.no_grad():
        run = iterate(solver, fn, z0, tol=1e-10, max_steps=20)
    assert bool(torch.isfinite(run.z).all())
    assert run.result in (Result.successful, Result.max_steps_reached)


def test_broyden_solves_linear_map_fast():
    """Broyden on a linear contraction converges in far fewer steps than Picard."""
    a = torch.randn(6, 6, generator=torch.Generator().manual_seed(3))
    a = 0.95 * a / torch.linalg.matrix_norm(a, 2)
    b = torch.randn(2, 6, generator=torch.Generator().manual_seed(4))

    def fn(z):
        return z @ a.T + b

    z0 = torch.zeros(2, 6)
    with torch.no_grad():
        rb = iterate(Broyden(), fn, z0, tol=1e-10, max_steps=500)
        rp = iterate(Picard(), fn, z0, tol=1e-10, max_steps=2000)
    assert rb.result.ok and rp.result.ok
    assert int(rb.stats["nstep"].max()) < int(rp.stats["nstep"].max()) / 3


def test_unrolled_loop_is_differentiable():
    """The driver is differentiable (autograd through masking and Anderson's solve)."""
    fm_src = TanhMap(4, 2, 0.6, seed=1)
    x = torch.randn(3, 2, requires_grad=True)
    fm = Problem.build(fm_src, x, torch.float64).bind()
    run = iterate(Anderson(m=2), fm, torch.zeros(3, 4), tol=1e-6, max_steps=40)
    (g,) = torch.autograd.grad(run.z.sum(), x)
    assert bool(torch.isfinite(g).all())


@pytest.mark.parametrize("bad", [1.0, 0.0, 2.0, -0.5, 2.5, float("nan"), "0.8"])
def test_reversible_beta_validation(bad):
    """beta = 1 and beta outside (0, 2) are rejected with a clear message."""
    with pytest.raises(InvalidInputError, match="beta"):
        Reversible(bad)


def test_reversible_beta_one_message_explains_why():
    with pytest.raises(InvalidInputError, match="cannot be inverted"):
        Reversible(1.0)


@pytest.mark.parametrize("beta", [0.95, 1.05])
def test_reversible_beta_near_one_warns(beta):
    """|1 - beta| < 0.1 warns (pytest treats warnings as errors, so expect it)."""
    with pytest.warns(ReversibilityWarning, match="within 0.1 of 1"):
        Reversible(beta)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Relaxed(0.0),
        lambda: Relaxed(2.0),
        lambda: Anderson(m=0),
        lambda: Anderson(lam=0.0),
        lambda: Broyden(memory=0),
        lambda: Anderson(beta=3),
    ],
)
def test_solver_validation(make):
    with pytest.raises(InvalidInputError):
        make()


@pytest.mark.parametrize(
    "tol,steps", [(-1.0, 5), (float("nan"), 5), (1e-3, 0), (1e-3, 2.5), (1e-3, True)]
)
def test_driver_rejects_bad_tolerances(tol, steps):
    fm, z0 = _toy()
    with pytest.raises(InvalidInputError):
        iterate(Picard(), fm, z0, tol=tol, max_steps=steps)


@pytest.mark.claim("REV-INVERT")
@given(revdeq_configs(min_gap=0.02))
@settings(max_examples=30)
def test_rev_invert_property(case):
    """REV-INVERT: one step then its algebraic inverse returns (y, z); float64 rel <=
    1e-12 for |1-beta| >= 0.2 (scaled by 0.2/|1-beta| closer to 1), float32 <= 1e-5."""
    import warnings

    f, x, _ = case.build()
    fm = Problem.build(f, x, case.dtype).bind()
    g = torch.Generator().manual_seed(case.seed + 2)
    y = torch.randn(case.batch, case.width, generator=g, dtype=torch.float64).to(
        case.dtype
    )
    z = torch.randn(case.batch, case.width, generator=g, dtype=torch.float64).to(
        case.dtype
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReversibilityWarning)
        solver = Reversible(case.beta)
    with torch.no_grad():
        y1, z1 = solver.forward_step(fm, y, z)
        y0, z0 = solver.inverse_step(fm, y1, z1)
    key = "REV-INVERT-float64" if case.dtype == torch.float64 else "REV-INVERT-float32"
    tol = TOL[key] * max(1.0, 0.2 / abs(1 - case.beta))
    err = max(rel_err(y0, y), rel_err(z0, z))
    assert err <= tol, f"round trip {err:.2e} > {tol:.1e} at beta={case.beta}"


@pytest.mark.claim("REV-SAME-FP")
@given(contractive_maps())
@settings(max_examples=8)
def test_rev_same_fp_property(case):
    """REV-SAME-FP: for L < 1 and beta < 2/(1+L), (y_N, z_N) -> (z*, z*), the Picard
    fixed point, to 1e-10 once N >= log(1e-12)/log(|1-beta| + beta L)."""
    beta = min(case.beta, 0.9 * 2 / (1 + case.lipschitz))
    if abs(1 - beta) < 0.1:
        beta = 0.85
    rate = abs(1 - beta) + beta * case.lipschitz
    n = math.ceil(math.log(1e-12) / math.log(rate)) + 2
    f, x, z0 = case.build()
    fm = Problem.build(f, x, torch.float64).bind()
    zs = _picard_star(fm, z0)
    with torch.no_grad():
        run = iterate(Reversible(beta), fm, z0, tol=0.0, max_steps=n)
    err = max(float((run.z - zs).abs().max()), float((run.state["y"] - zs).abs().max()))
    assert err <= TOL["REV-SAME-FP"]


@pytest.mark.claim("REV-RATE")
@given(contractive_maps(max_lipschitz=0.95))
@settings(max_examples=10)
def test_rev_rate_property(case):
    """REV-RATE: e_{n+1} <= (|1-beta| + beta L) e_n in the 2-norm while e_n is above
    1e3 x the float floor."""
    beta = min(case.beta, 0.95 * 2 / (1 + case.lipschitz))
    if abs(1 - beta) < 0.1:
        beta = 0.85
    bound = abs(1 - beta) + beta * case.lipschitz
    f, x, _ = case.build()
    fm = Problem.build(f, x, torch.float64).bind()
    z0 = 3 * torch.randn(
        case.batch, case.width, generator=torch.Generator().manual_seed(case.seed)
    )
    zs = _picard_star(fm, z0)
    with torch.no_grad():
        run = iterate(
            Reversible(beta), fm, z0, tol=0.0, max_steps=80, record_trajectory=True
        )
    tr = run.stats["trajectory"]
    e = torch.maximum((tr["y"] - zs).norm(dim=2), (tr["z"] - zs).norm(dim=2))
    floor = 1e3 * torch.finfo(torch.float64).eps * (1 + zs.norm(dim=1))
    ok = e[:-1] > floor
    ratio = (e[1:] / e[:-1])[ok]
    assert bool((ratio <= (1 + TOL["REV-RATE-slack"]) * bound).all())


def test_anderson_inplace_path_matches_functional_path():
    """Without a graph Anderson keeps preallocated ring buffers updated in place; with
    autograd on it keeps the functional history (the unrolled gradient differentiates
    through it). Both are the same algorithm (the weights do not depend on the order of
    the history), so the iterates agree to rounding: tolerance 1e-10 for ~40 steps of
    a 0.5-contraction in float64 (a few ulps per step, amplified by the 7x7 solve)."""
    torch.manual_seed(3)
    fm, z0 = _toy(batch=5)
    solver = Anderson(m=5, beta=1.0)
    with torch.no_grad():
        fast = iterate(solver, fm, z0, tol=1e-12, max_steps=60)
    with torch.enable_grad():
        slow = iterate(solver, fm, z0, tol=1e-12, max_steps=60)
    assert "gh" in fast.state and "gh" not in slow.state
    assert fast.stats["nstep"].tolist() == slow.stats["nstep"].tolist()
    assert torch.allclose(fast.z, slow.z.detach(), rtol=0, atol=1e-10)


def test_broyden_inplace_path_matches_functional_path():
    """Without a graph Broyden writes its rank-one updates into ring buffers in place
    (no torch.cat copy per step); with autograd on it keeps the functional history.
    H = -I + sum_i u_i v_i^T does not depend on the order of the rows, so the iterates
    agree to rounding: tolerance 1e-10 for a float64 0.5-contraction solved to 1e-12
    (a few ulps per step from the reordered sum, amplified by the secant updates).
    The memory is smaller than the step count, so the ring wraps and overwrites the
    oldest update exactly as the functional path drops it."""
    torch.manual_seed(3)
    fm, z0 = _toy(batch=5)
    solver = Broyden(memory=3)
    with torch.no_grad():
        fast = iterate(solver, fm, z0, tol=1e-12, max_steps=60)
    with torch.enable_grad():
        slow = iterate(solver, fm, z0, tol=1e-12, max_steps=60)
    assert "slot" in fast.state and "slot" not in slow.state
    assert max(fast.stats["nstep"].tolist()) > solver.memory
    assert fast.stats["nstep"].tolist() == slow.stats["nstep"].tolist()
    assert torch.allclose(fast.z, slow.z.detach(), rtol=0, atol=1e-10)
    assert fast.result.converged

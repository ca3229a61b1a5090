"""Stopping rule and result codes of the fixed-point driver (dynamics.solvers.stopping).

Reproductions of the solver that called a non-equilibrium converged: the relative
residual ``||z - f(z)|| / (1e-5 + ||f(z)||)`` shrinks as the iterate grows, so a
drifting iterate passed it.
"""

import pytest
import torch
from torch import nn

from dynamics import Result, fixed_point
from dynamics.errors import ConvergenceError
from dynamics.gradients import JFB
from dynamics.solvers import Anderson, Broyden, IterateRelativeTol, Picard, iterate
from dynamics.solvers.iterate import DIVERGENCE_FACTOR


def test_translation_has_no_fixed_point_and_is_not_successful():
    """z -> z + 1 has no fixed point: the residual is ||1|| at every z, so a solve
    must fail (before the fix it returned successful at ||z|| = 2.8e3)."""
    x = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ConvergenceError):
        fixed_point(
            lambda z, x: z + 1.0, Picard(), None, x, gradient=JFB(), max_steps=2000
        )
    sol = fixed_point(
        lambda z, x: z + 1.0,
        Picard(),
        None,
        x,
        gradient=JFB(),
        max_steps=2000,
        throw=False,
    )
    assert sol.result is not Result.successful
    assert not bool(sol.stats["converged"].any())
    # Both residuals are reported; the absolute one is exactly ||1|| = sqrt(3).
    assert torch.allclose(sol.stats["residual_abs"], torch.full((2,), 3**0.5))


class _ResidualBlock(nn.Module):
    """f(z, x) = z + W2 relu(W1 LN(z) + U x): a residual block with LayerNorm whose
    iterate drifts (the update never vanishes, LN keeps it O(1) in size)."""

    def __init__(self, d):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.ln = nn.LayerNorm(d).double()
        self.w1 = nn.Parameter(
            torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
        )
        self.w2 = nn.Parameter(
            torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
        )
        self.u = nn.Parameter(
            torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
        )

    def forward(self, z, x):
        return z + torch.relu(self.ln(z) @ self.w1.T + x @ self.u.T) @ self.w2.T


@pytest.mark.parametrize(
    "solver", [Broyden(), Anderson(m=5)], ids=["broyden", "anderson"]
)
def test_drifting_residual_block_is_never_successful(solver):
    """On the drifting residual block, no example whose absolute residual is O(1) may
    be marked successful (before the fix: 62-64 of 64, at ||z|| up to 5e7)."""
    torch.manual_seed(1)
    d = 16
    f = _ResidualBlock(d)
    x = torch.randn(64, d, dtype=torch.float64)
    with torch.no_grad():
        run = iterate(
            solver, lambda z: f(z, x), torch.zeros_like(x), tol=1e-3, max_steps=200
        )
    st = run.stats
    ok = st["converged"]
    # The criterion, checked independently: ||z - f(z)|| <= tol * (1 + scale_0).
    res = torch.linalg.vector_norm(run.z - f(run.z, x), dim=1)
    assert bool((res[ok] <= 1e-3 * (1 + st["scale"][ok]) * (1 + 1e-12)).all())
    assert bool((st["residual_abs"][~ok] > 1e-3).all())
    assert run.result is not Result.successful


def test_authors_rule_is_available_by_name_and_is_fooled():
    """IterateRelativeTol replicates the authors' relative residual; it is the rule
    that a drifting iterate passes (documented, never the default), but the
    divergence guard relative to the input scale still stops it."""
    x = torch.zeros(1, 3, dtype=torch.float64)
    with torch.no_grad():
        run = iterate(
            Picard(), lambda z: z + 1.0, x, tol=IterateRelativeTol(1e-3), max_steps=2000
        )
    # Passes the authors' criterion once ||z|| >~ sqrt(3) / 1e-3 (the original bug).
    assert run.result is Result.successful
    assert float(run.stats["residual_rel"][0]) <= 1e-3
    assert float(run.stats["residual_abs"][0]) == pytest.approx(3**0.5)


def test_divergence_relative_to_input_scale():
    """z -> 2z + 1 diverges; it is caught once ||z|| exceeds DIVERGENCE_FACTOR times
    the initial scale, i.e. after about log2(1e4) ~ 14 steps, not 1e8 (27 steps)."""
    z0 = torch.zeros(1, 2, dtype=torch.float64)
    run = iterate(Picard(), lambda z: 2 * z + 1, z0, tol=1e-8, max_steps=200)
    assert run.result is Result.diverged
    assert int(run.stats["nstep"][0]) <= 16
    assert DIVERGENCE_FACTOR <= 1e4


def test_fixed_steps_have_their_own_status():
    """tol=0 runs exactly max_steps steps and reports fixed_steps_completed, not
    max_steps_reached (which is a failure)."""
    z0 = torch.zeros(3, 2, dtype=torch.float64)
    run = iterate(Picard(), lambda z: 0.5 * z + 1, z0, tol=0.0, max_steps=7)
    assert run.result is Result.fixed_steps_completed
    assert run.stats["nstep"].tolist() == [7, 7, 7]
    assert run.result.ok and not run.result.converged
    run = iterate(Picard(), lambda z: 0.99 * z + 1, z0, tol=1e-12, max_steps=7)
    assert run.result is Result.max_steps_reached and not run.result.ok


def test_result_has_no_truth_value():
    """bool(Result.diverged) would be True: truth-testing a Result is refused."""
    for r in Result:
        with pytest.raises(TypeError, match="ambiguous"):
            bool(r)
    assert Result.successful.ok and not Result.max_steps_reached.ok

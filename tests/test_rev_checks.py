"""The REV-* claim checks of proofs_check/checks/rev_*.py pass in the quick profile.

The heavier checks (each a few seconds; their content is also covered by the unit
tests of test_reversible.py and test_fixed_point.py) are marked slow.
"""

from __future__ import annotations

import pytest
import torch

from proofs_check.registry import Context, Status, load_checks, run_check

FAST = [
    ("REV-INVERT", "numeric"),
    ("REV-EXACT", "unit"),
    ("REV-FD", "numeric"),
    ("REV-MEMORY", "saved-bytes"),
    ("REV-NFE", "numeric"),
    ("REV-SYM", "numeric"),
    ("REV-DET", "numeric"),
    ("REV-IFT-APPROX", "tight"),
    ("REV-IFT-APPROX", "loose"),
]
SLOW = [
    ("REV-EXACT", "toy"),
    ("REV-EXACT", "stored"),
    ("REV-EXACT", "gradcheck"),
    ("REV-SAME-FP", "numeric"),
    ("REV-RATE", "numeric"),
    ("REV-SHARP", "numeric"),
    ("REV-RECON", "numeric"),
]
F64 = torch.float64


def _run(claim: str, part: str):
    checks = load_checks()
    row = run_check(checks[(claim, part)], Context(seed=0, profile="quick"))
    res = row.result
    assert res.status is Status.passed, f"{claim}/{part}: {res.reason} {res.details}"
    assert res.worst_margin is not None and res.worst_margin >= 0
    return res


@pytest.mark.parametrize("claim,part", FAST, ids=lambda v: str(v))
def test_rev_check_passes(claim, part):
    """Each fast REV-* numeric part passes with a non-negative worst margin."""
    _run(claim, part)


@pytest.mark.slow
@pytest.mark.parametrize("claim,part", SLOW, ids=lambda v: str(v))
def test_rev_check_passes_slow(claim, part):
    """The heavier REV-* parts (run by `make test-slow` and by `verify`)."""
    _run(claim, part)


def test_every_rev_claim_has_a_numeric_part():
    """Every REV-* claim has a registered non-symbolic part in this module."""
    checks = load_checks()
    rev = {
        cid for (cid, part) in checks if cid.startswith("REV-") and part != "symbolic"
    }
    assert rev == {
        "REV-INVERT",
        "REV-EXACT",
        "REV-FD",
        "REV-MEMORY",
        "REV-NFE",
        "REV-SAME-FP",
        "REV-RATE",
        "REV-SHARP",
        "REV-SYM",
        "REV-DET",
        "REV-RECON",
        "REV-IFT-APPROX",
    }


def test_memory_details_show_flat_reversible_and_linear_unrolled():
    res = _run("REV-MEMORY", "saved-bytes")
    d = res.details
    assert len(set(d["reversible_bytes"])) == 1
    assert d["unrolled_r2"] > 0.99 and d["unrolled_slope_bytes_per_step"] > 0


def test_recon_replay_undoes_each_examples_own_steps():
    """REV-RECON: the reported reconstruction error equals an independent replay
    exactly, also when examples stop at different steps (the bug this guards: an
    example that stopped at 32 of 100 steps was undone 100 steps, which gave 3.4e56
    against the reported 1.0e9 and failed the claim at 8 of 16 seeds). The examples'
    inputs differ by orders of magnitude (bias 0, so z* scales with x) and the stop
    rule is absolute-ish, so they stop at clearly different steps on any BLAS."""
    import torch

    from dynamics import DEQLayer
    from dynamics.gradients import ReversibleExact
    from dynamics.instances.torch_examples import TanhMap
    from dynamics.solvers import Reversible, iterate
    from proofs_check.checks._rev_common import _bind, _seed
    from proofs_check.checks.rev_recon import replay_reconstruction

    seed = _seed(Context(seed=7), "recon")
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(seed), dtype=F64)
    x = x * torch.tensor([[1e-8], [1e-3], [1.0]], dtype=F64)
    f = TanhMap(16, 8, 0.5, seed=seed)
    with torch.no_grad():
        f.b.zero_()
    z0 = torch.zeros(3, 16, dtype=F64)
    tol = 1e-10
    layer = DEQLayer(
        f,
        Reversible(0.8),
        ReversibleExact(recon_threshold=None),
        tol=tol,
        max_steps=100,
        throw=False,
    )
    layer(x.clone().requires_grad_(), z0).sum().backward()
    st = layer.last_stats
    nstep = [int(k) for k in st["nstep"]]
    # the case this test is about: three different stopping steps, all before the cap
    assert len(set(nstep)) == 3 and max(nstep) < 100, nstep
    with torch.no_grad():
        fw = iterate(Reversible(0.8), _bind(f, x), z0, tol=tol, max_steps=100)
    assert [int(k) for k in fw.stats["nstep"]] == nstep
    rep = replay_reconstruction(f, x, 0.8, fw.state["y"], fw.z, nstep, z0)
    assert rep == [float(v) for v in st["reconstruction_error"]]


def test_inverse_jacobian_norms_match_autograd_of_the_inverse_step():
    """A_N of REV-EXACT: the closed-form inverse-step Jacobian norms equal the norm of
    autograd's Jacobian of Reversible.inverse_step at the forward trajectory (one
    example; rounding model: a few ulps x the norm, here <= 1e3)."""
    import torch

    from dynamics.instances.torch_examples import TanhMap
    from dynamics.solvers import Reversible, iterate
    from proofs_check.checks._rev_common import _bind, inverse_jacobian_norms

    f = TanhMap(5, 3, 0.9, seed=3)
    x = torch.randn(1, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    z0 = torch.zeros(1, 5, dtype=F64)
    beta, n = 1.2, 6
    norms = inverse_jacobian_norms(f, x, beta, z0, n)
    fm = _bind(f, x)
    with torch.no_grad():
        run = iterate(
            Reversible(beta), fm, z0, tol=0.0, max_steps=n, record_trajectory=True
        )
    ys, zs = run.stats["trajectory"]["y"], run.stats["trajectory"]["z"]

    def inv(v):
        y, z = Reversible(beta).inverse_step(fm, v[None, :5], v[None, 5:])
        return torch.cat([y[0], z[0]])

    for k in range(1, n + 1):
        v = torch.cat([ys[k][0], zs[k][0]])
        jac = torch.autograd.functional.jacobian(inv, v)
        ref = float(torch.linalg.matrix_norm(jac, ord=2))
        assert abs(norms[k - 1] - ref) <= 64 * 2.2e-16 * ref * 10


def test_held_bytes_count_tensors_kept_on_a_function_context():
    """REV-MEMORY counts what a custom Function keeps on ctx as plain attributes (the
    saved-tensor hooks never see it): a Function that stashes an N-long trace grows
    by its size, and the reversible Function is flat in N (it kept a B x N residual
    trace there before)."""
    import torch

    from proofs_check.checks.rev_memory import memory_profile, saved_bytes

    class Stash(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, n):
            ctx.trace = torch.zeros(n, dtype=torch.float64)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return 2 * g, None

    x = torch.ones(3, requires_grad=True)
    a = saved_bytes(lambda: Stash.apply(x, 10))
    b = saved_bytes(lambda: Stash.apply(x, 110))
    assert b - a == 100 * 8
    prof = memory_profile(32, 4, [2, 8, 32, 64], checkpointed=False)
    assert len(set(prof["reversible"])) == 1, prof["reversible"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(16))
def test_rev_family_gives_the_same_verdict_at_every_seed(seed):
    """Every REV-* claim passes at seeds 0-15, except where the claim as written is
    false: a verdict that depends on the seed is a flaky check unless the measurement
    says the claim fails there. (Before: REV-EXACT unit failed at seed 1 and
    REV-IFT-APPROX tight at seed 14 on fixed tolerances below the computed
    truncation.) The one honest exception: REV-EXACT's fixed rel <= 1e-8 at N <= 10,
    which has no rounding model, is exceeded at seed 12 (1.54e-8, C eps A_N = 7.0);
    the check fails there and says why."""
    from proofs_check.registry import run

    rows = run(["REV-*"], Context(seed=seed, profile="quick"))
    bad = {
        (r.claim_id, r.part): r.result.reason
        for r in rows
        if r.result.status is not Status.passed
    }
    if seed == 12:
        reason = bad.pop(("REV-EXACT", "toy"), "")
        assert "the claim's fixed 1e-08 at N <= 10" in reason, reason
    assert not bad, bad


@pytest.mark.parametrize("seed", [1, 14])
def test_unit_truncation_model_predicts_the_implicit_error(seed):
    """Oracle for the E-UNIT tolerance: the implicit (dense) gradient differs from the
    unrolled one by the first-order truncation that truncation_prediction computes,
    at the draws that failed the fixed tolerances (seed 14: 5.4e-6 > rel 1e-6; seed 1:
    pair phantom 1.31e-5 > atol 1e-5); a gradient off by 1e-3 (the size of an adjoint
    solved to 1e-2) would be far outside 2 x the prediction."""
    import torch

    from dynamics.gradients import DenseIFT, Phantom, Unrolled
    from dynamics.instances.torch_examples import PairMLP, loss_grads
    from dynamics.solvers import Picard, Relaxed
    from proofs_check.checks._rev_common import (
        _seed,
        _unit_problem,
        truncation_prediction,
        unit_tolerance,
    )

    ctx = Context(seed=seed)
    f, x, _ = _unit_problem(ctx)
    kw = {"tol": 1e-8, "max_steps": 500}
    if seed == 14:
        fn, solver, grad, beta, z0, extra = f, Picard(), DenseIFT(), 1.0, None, {}
    else:
        fn, solver, beta = PairMLP(seed=_seed(ctx, "pair")), Relaxed(0.8), 0.8
        grad, z0, extra = Phantom(k=50, lam=0.5), torch.zeros(1, 2), {
            "phantom": (50, 0.5)
        }
        z0 = z0.to(torch.float64)
    ref, _ = loss_grads(fn, solver, Unrolled(), x, z0, **kw)
    got, _ = loss_grads(fn, solver, grad, x, z0, **kw)
    pred = truncation_prediction(fn, x, beta, z0, **kw, **extra)
    err = float((got - ref).abs().max())
    assert err > 1e-6  # the draw that failed the fixed tolerance
    assert 0.3 * pred["total"] <= err <= 1.05 * pred["total"], (err, pred)
    assert 1e-3 > 10 * unit_tolerance(pred, ref)

"""dynamics.lie: nested Lie brackets by AD, checked against finite differences and
exact brackets; the P10 guard against torch.linalg.solve."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dynamics.errors import InvalidInputError
from dynamics.lie import (
    CLEAR_FACTOR,
    EVAL_COND,
    bracket_rows,
    decision_is_clear,
    fd_bracket_check,
    fd_bracket_error,
    lie_rank,
    linear_net_map,
    matrix_deq_map,
    noise_floor,
    numeric_rank,
)
from proofs_check.discovery import FD_TOL, maps
from proofs_check.discovery.numeric import local_map


def test_numeric_rank_gap_rule():
    """Rank by the largest singular-value gap, with the float floor appended."""
    rng = np.random.default_rng(0)
    B = rng.normal(size=(3, 5))
    r, gap, _ = numeric_rank(B)
    assert r == 3 and gap > 1e10
    dep = np.vstack([B, B[0] + 2 * B[1], np.zeros(5)])
    r, gap, s = numeric_rank(dep)
    assert r == 3 and gap > 1e10 and s.size == 4  # the zero row is dropped


def _constructed(rng, q, D, rank, small=1.0):
    """q x D unit rows spanning exactly ``rank`` directions, the last of them with
    weight ``small`` (a genuinely independent but small direction)."""
    basis = np.linalg.qr(rng.normal(size=(D, D)))[0][:, :rank].T  # orthonormal rows
    coef = rng.normal(size=(q, rank))
    coef[:, -1] *= small
    rows = coef @ basis
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize("q,D,rank", [(4, 6, 2), (8, 8, 5), (12, 10, 10), (3, 2, 1)])
@pytest.mark.parametrize("small", [1.0, 1e-6])
def test_rank_rule_against_constructed_rank(q, D, rank, small):
    """Oracle: rows of constructed rank, plus noise of controlled size. Noise within
    the rounding model (entries <= EVAL_COND eps) gives the true rank, clearly, even
    when the last direction is 1e-6 small (a fixed 1e-4 cutoff would drop it); the
    noise 10 times the floor (outside the model) makes the decision not clear."""
    rng = np.random.default_rng(q * 100 + D + rank)
    rows = _constructed(rng, q, D, rank, small)
    tau = noise_floor(q, D)
    noise = rng.uniform(-1, 1, size=rows.shape) * EVAL_COND * np.finfo(float).eps
    r, gap, s = numeric_rank(rows + noise)
    assert r == rank, s
    assert decision_is_clear(r, s, tau), (s, tau)
    assert gap >= CLEAR_FACTOR
    if rank < min(q, D):
        # Weyl: the dropped singular values stay inside the floor
        assert s[rank] <= tau
        loud = rows + rng.normal(size=rows.shape) * 10 * tau
        r2, _, s2 = numeric_rank(loud)
        assert not decision_is_clear(r2, s2, tau)


def test_noise_floor_is_the_weyl_bound():
    """tau = (sqrt(q D) cond + max(q, D)) eps, and the worst entrywise perturbation of
    size cond eps moves no singular value by more than tau."""
    eps = np.finfo(float).eps
    assert noise_floor(4, 9, cond=10.0) == pytest.approx((6 * 10 + 9) * eps, rel=1e-15)
    rng = np.random.default_rng(3)
    A = rng.normal(size=(5, 7))
    E = np.sign(rng.normal(size=A.shape)) * EVAL_COND * eps  # |E|_F = sqrt(35) cond eps
    svd = lambda M: np.linalg.svd(M, compute_uv=False)  # noqa: E731
    shift = np.abs(svd(A + E) - svd(A))
    assert shift.max() <= noise_floor(5, 7)


def test_rank_decision_rule_edges():
    """A dropped value above the floor, or a kept value within clear_factor of it,
    is not clear; a full-rank stack is."""
    tau = 1e-12
    assert decision_is_clear(2, np.array([1.0, 1e-3]), tau)
    assert not decision_is_clear(1, np.array([1.0, 1e-10]), tau)  # dropped > tau
    assert not decision_is_clear(2, np.array([1.0, 1e-10]), tau)  # kept < 1e3 tau
    assert decision_is_clear(1, np.array([1.0, 1e-13]), tau)


def test_fd_step_scales_with_the_direction():
    """DISC-LIN at seed 14: a level-3 field of norm 7e6 moved a fixed-step FD point by
    15 (AD vs FD 2.9e-2 at level 4). With the step h / |direction| every level agrees
    within its Richardson + rounding allowance, and the allowance stays small."""
    from proofs_check.registry import Context

    seed = int(Context(seed=14).rng("DISC-LIN").integers(2**31))
    model = maps.matrix_linear_readout(2, 1, 2)
    rng = np.random.default_rng(seed)
    pts = [model.sample(rng) for _ in range(3)]
    lm = local_map(model)
    res = lie_rank(lm, pts)
    checks = fd_bracket_check(lm, pts[0], res.structure)
    assert len(checks) == 4
    for err, allowed in checks:
        assert err <= allowed <= 1e-2, checks  # a wrong bracket errs by O(1)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_bracket_rows_linear_fields_exact(mode):
    """[A theta, B theta] = (B A - A B) theta exactly, in both AD modes."""
    rng = np.random.default_rng(1)
    A, B = (torch.as_tensor(rng.normal(size=(4, 4))) for _ in range(2))
    G = lambda th: torch.stack([A @ th])  # noqa: E731
    F = lambda th: torch.stack([B @ th])  # noqa: E731
    th = torch.as_tensor(rng.normal(size=4))
    got = bracket_rows(G, F, [(0, 0)], mode)(th)[0]
    # rounding model: two 4x4 products per side, a few ulps x n x ||A|| ||B|| ||th||
    scale = float(torch.linalg.norm(A, 2) * torch.linalg.norm(B, 2) * th.norm())
    bound = 16 * 4 * torch.finfo(torch.float64).eps * scale
    assert float((got - (B @ A - A @ B) @ th).abs().max()) <= bound


FD_CASES = [
    maps.matrix_linear_readout(2, 1, 2),  # four levels, rank 2 -> 3 -> 4 -> 4
    maps.linear_net((2, 2, 2, 2)),
    maps.single_index(2, "identity"),  # implicit map (unrolled Newton)
    maps.single_index(1, "sigma_eps:1/2"),
]


@pytest.mark.claim("DISC-LIN")
@pytest.mark.parametrize("model", FD_CASES, ids=lambda m: m.name)
def test_every_bracket_level_matches_finite_differences(model):
    """P10: every bracket level (kept and stalled) agrees with central differences."""
    rng = np.random.default_rng(2)
    pts = [model.sample(rng) for _ in range(3)]
    lm = local_map(model)
    res = lie_rank(lm, pts)
    errs = fd_bracket_error(lm, pts[1], res.structure)
    assert len(errs) == len(res.structure) >= 1
    assert max(errs) <= FD_TOL, errs


@pytest.mark.claim("DISC-LIN")
def test_forward_and_reverse_modes_agree():
    """The jvp-based and the jacrev-based bracket levels give the same fields."""
    model = maps.matrix_linear(2, 1)
    lm = local_map(model)
    p = model.sample(np.random.default_rng(3))
    res = lie_rank(lm, [p])
    from dynamics.lie import level_fields

    th = torch.as_tensor(p)
    fwd = level_fields(lm, p, res.structure, "forward")
    rev = level_fields(lm, p, res.structure, "reverse")
    for f, r in zip(fwd, rev):
        torch.testing.assert_close(f(th), r(th), rtol=1e-11, atol=1e-12)


def _solve_map(theta):
    W, U = theta[:4].reshape(2, 2), theta[4:].reshape(2, 1)
    return torch.linalg.solve(torch.eye(2, dtype=theta.dtype) - W, U).reshape(-1)


def test_p10_guard_rejects_solve():
    """P10: a map written with torch.linalg.solve is refused, never silently wrong."""
    pts = [np.random.default_rng(4).normal(size=6) * 0.3 for _ in range(3)]
    with pytest.raises(InvalidInputError, match="P10"):
        lie_rank(lambda p: _solve_map, pts)
    res = lie_rank(lambda p: matrix_deq_map(2, 1), pts)  # the inv version works
    assert res.n_laws == 3


def test_native_maps_match_definitions():
    th = torch.as_tensor(np.random.default_rng(5).normal(size=4 + 2 + 8))
    W, U, B = th[:4].reshape(2, 2), th[4:6].reshape(2, 1), th[6:].reshape(4, 2)
    M = torch.linalg.inv(torch.eye(2, dtype=th.dtype) - W) @ U
    torch.testing.assert_close(matrix_deq_map(2, 1, 4)(th), (B @ M).reshape(-1))
    th2 = torch.as_tensor(np.random.default_rng(6).normal(size=6 + 6))
    W1, W2 = th2[:6].reshape(3, 2), th2[6:].reshape(2, 3)
    torch.testing.assert_close(linear_net_map((2, 3, 2))(th2), (W2 @ W1).reshape(-1))


def test_lie_rank_needs_points():
    with pytest.raises(InvalidInputError):
        lie_rank(lambda p: matrix_deq_map(2, 1), [])

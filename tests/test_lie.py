"""dynamics.lie: nested Lie brackets by AD, checked against finite differences and
exact brackets; the P10 guard against torch.linalg.solve."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dynamics.errors import InvalidInputError
from dynamics.lie import (
    bracket_rows,
    fd_bracket_error,
    lie_rank,
    linear_net_map,
    matrix_deq_map,
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

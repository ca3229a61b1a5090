"""Pointwise numeric Lie-algebra rank of the gradient fields of a model map
(docs/theory/discovery.md).

The conservation laws shared by the gradient flows of every loss ell(phi(theta)) are
counted as D - dim Lie(V)(theta), where V is spanned by the fields grad phi_i and the
Lie algebra is built level by level with [X, Y] = DY X - DX Y (Marcotte, Gribonval and
Peyre, "Abide by the law and follow the flow", NeurIPS 2023).

Evaluation is by nested automatic differentiation in float64: the generators by
reverse mode (``jacrev``), each bracket level by directional derivatives of the level
below (``jvp``, the default ``mode="forward"``, cheap when nested) or by full
reverse-mode Jacobians (``mode="reverse"``). Pitfall P10: forward-mode derivatives
through ``torch.linalg.solve`` are wrong in torch 2.13 (forward-over-forward second
derivatives come out halved), so every evaluation runs under :class:`NoSolveGuard`,
which rejects ``torch.linalg.solve`` in a map; maps invert with ``torch.linalg.inv``,
which is correct in every mode. ``tests/test_lie.py`` checks every bracket level
against finite differences and both modes against each other.

Rank rule (a rounding model, no fixed cutoff): the field values at a point are
stacked, each row normalised to unit norm, and the singular values are compared with
the noise floor ``tau`` of :func:`noise_floor`, the largest amount by which rounding
in the evaluated fields can move any singular value (Weyl). The rank is the number of
values above ``tau``; the decision is *clear* when the gap between the last kept and
the first dropped value straddles the floor by ``clear_factor`` (s_r >= clear_factor
* tau >= clear_factor * s_{r+1}): rounding cannot have produced the kept value even
if the evaluation is ``clear_factor`` times worse conditioned than assumed.
A candidate bracket is kept only when it raises the rank
at every evaluation point; a level that keeps nothing ends the iteration, so the depth
is never fixed in advance. Pruning to pointwise-independent fields is valid
at generic points, where the rank is locally constant: a dropped field is a smooth
combination of kept ones there, and so are its brackets.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.func import jacrev, jvp, vmap

from .errors import InvalidInputError


def _load_forward_ad() -> None:
    """Trigger torch's lazy load of its forward-mode decompositions once, quietly.

    On first use, torch 2.13 builds them with ``torch.jit.script``, which emits a
    DeprecationWarning that has nothing to do with the caller (and is an error under
    ``filterwarnings = error``).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning
        )
        jvp(
            torch.sin,
            (torch.zeros((), dtype=torch.float64),),
            (torch.ones((), dtype=torch.float64),),
        )


_load_forward_ad()

#: Rounding model of one evaluated field value: each entry of a row carries a relative
#: error (to the row's norm) of at most ``EVAL_COND * eps``: a few ulps per operation
#: times the condition (<= 1e3) of the inverses (I - W)^-1 and 1 / (1 - v s') that the
#: maps and their nested derivatives go through. Measured: the dropped singular values
#: of every DISC-* shape at seeds 0-15 are <= 3 eps, far inside the floor.
EVAL_COND = 1e3
#: A kept singular value must clear the noise floor by this factor (and so the gap
#: between kept and dropped values is at least this large).
CLEAR_FACTOR = 1e3

_EPS = float(np.finfo(float).eps)


def noise_floor(q: int, D: int, cond: float = EVAL_COND) -> float:
    """Largest shift of any singular value of a ``q x D`` stack of unit rows that the
    rounding of the field values can cause.

    Each entry has error <= cond * eps (the rows have unit norm), so the error matrix
    has Frobenius norm <= sqrt(q D) cond eps, which bounds the change of every
    singular value (Weyl's inequality); the SVD itself adds a backward error of
    max(q, D) eps.
    """
    return (math.sqrt(q * D) * cond + max(q, D)) * _EPS


#: A map phi: R^D -> R^P in torch, valid (with exact derivatives) near one point.
TorchMap = Callable[[torch.Tensor], torch.Tensor]
#: point -> map whose derivatives are exact at that point (implicit maps unroll a
#: solver from the detached root there; explicit maps ignore the point).
LocalMap = Callable[[np.ndarray], TorchMap]

Field = Callable[[torch.Tensor], torch.Tensor]


def generators(phi: TorchMap) -> Field:
    """theta -> (P, D): the rows grad phi_i(theta)."""
    return jacrev(phi)


class NoSolveGuard(torch.overrides.TorchFunctionMode):
    """Reject ``torch.linalg.solve`` (and ``torch.linalg.lstsq``) inside a model map.

    Pitfall P10: nested forward-mode derivatives through ``solve`` were wrong in torch
    2.13 (half the true second derivative); ``torch.linalg.inv`` is correct.
    """

    BANNED = (torch.linalg.solve, torch.linalg.solve_ex, torch.linalg.lstsq)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.BANNED:
            raise InvalidInputError(
                f"{func.__name__} inside a map given to the Lie-bracket engine: nested "
                "forward-mode derivatives through it are wrong in torch 2.13 (pitfall "
                "P10); write the map with torch.linalg.inv instead"
            )
        return func(*args, **(kwargs or {}))


def bracket_rows(
    G: Field, F: Field, pairs: Sequence[tuple[int, int]], mode: str = "forward"
) -> Field:
    """theta -> rows [X_i, Y_j] = DY_j X_i - DX_i Y_j for (i, j) in ``pairs``.

    ``G`` gives the generator rows X_i, ``F`` the rows Y_j of the previous level.
    ``mode="forward"`` takes one jvp of F per generator direction used and one jvp of
    G per row used; ``mode="reverse"`` takes full reverse-mode Jacobians.
    """
    ii = torch.tensor([i for i, _ in pairs], dtype=torch.long)
    jj = torch.tensor([j for _, j in pairs], dtype=torch.long)
    if mode == "reverse":
        JG, JF = jacrev(G), jacrev(F)

        def rev(theta: torch.Tensor) -> torch.Tensor:
            g, f = G(theta)[ii], F(theta)[jj]
            jg, jf = JG(theta)[ii], JF(theta)[jj]
            return torch.einsum("kab,kb->ka", jf, g) - torch.einsum("kab,kb->ka", jg, f)

        return rev
    if mode != "forward":
        raise InvalidInputError(f"mode must be 'forward' or 'reverse'; got {mode!r}")
    ui, inv_i = torch.unique(ii, return_inverse=True)
    uj, inv_j = torch.unique(jj, return_inverse=True)

    def fwd(theta: torch.Tensor) -> torch.Tensor:
        g, f = G(theta), F(theta)
        dF = vmap(lambda t: jvp(F, (theta,), (t,))[1])(g[ui])  # (|ui|, q, D)
        dG = vmap(lambda t: jvp(G, (theta,), (t,))[1])(f[uj])  # (|uj|, P, D)
        return dF[inv_i, jj] - dG[inv_j, ii]

    return fwd


def select_rows(F: Field, keep: Sequence[int]) -> Field:
    idx = torch.tensor(list(keep), dtype=torch.long)
    return lambda theta: F(theta)[idx]


def numeric_rank(rows: np.ndarray, cond: float = EVAL_COND):
    """(rank, gap, singular values) of row-normalised ``rows``, the rank set by the
    rounding floor ``tau = noise_floor(q, D, cond)``.

    Zero rows count as dependent. The rank r is the number of singular values above
    ``tau``; ``gap`` = s_r / max(s_{r+1}, tau) is the gap between kept and dropped
    values that straddles the floor. The decision is clear when the gap is at least
    ``clear_factor`` (:func:`decision_is_clear`).
    """
    norms = np.linalg.norm(rows, axis=1)
    live = rows[norms > 0] / norms[norms > 0, None]
    if live.shape[0] == 0:
        return 0, np.inf, np.zeros(0)
    s = np.linalg.svd(live, compute_uv=False)
    tau = noise_floor(live.shape[0], live.shape[1], cond)
    # every value above the floor is kept: rounding cannot have produced it. (The
    # largest ratio alone would drop a genuine 1e-6 direction whose ratio to the
    # bulk, 1e6, beats its ratio to the floor.)
    r = int(np.count_nonzero(s > tau))
    if r == 0:
        return 0, 1.0, s
    nxt = float(s[r]) if r < s.size else 0.0
    return r, float(s[r - 1] / max(nxt, tau)), s


def decision_is_clear(
    r: int, s: np.ndarray, tau: float, clear_factor: float = CLEAR_FACTOR
) -> bool:
    """Whether rank ``r`` of singular values ``s`` is a clear decision at noise floor
    ``tau``: nothing above rounding dropped (s_{r+1} <= tau) and the last kept value
    too far above the floor for rounding to have produced it (s_r >= clear_factor
    tau)."""
    kept = float(s[r - 1]) if r else np.inf
    dropped = float(s[r]) if r < s.size else 0.0
    return dropped <= tau and kept >= clear_factor * tau


@dataclasses.dataclass(frozen=True)
class LieRank:
    """Outcome of :func:`lie_rank`.

    Attributes:
        n_params: D.
        dim: dimension of the trace of the Lie algebra at the points.
        n_laws: D - dim, the number of independent conservation laws.
        ranks_by_level: cumulative rank after each level (level 1 = generators).
        kept: labels of the kept fields ("X2", "[X1,X2]", ...).
        levels: number of levels computed, the stalled one included.
        gap: smallest ratio (over points and levels) between the last kept and the
            first dropped normalised singular value, both clipped below at the noise
            floor (:func:`numeric_rank`).
        min_kept_sv: smallest normalised singular value of the kept fields.
        max_dropped_sv: largest normalised singular value declared zero (0 if none).
        clear: every rank decision was clear (every dropped value <= the noise
            floor, the last kept one >= clear_factor x the floor) and agreed at every
            point.
        noise_floor: largest noise floor tau of the decisions (:func:`noise_floor`).
        kept_over_floor: smallest (last kept value) / tau over the decisions; the
            decisions need >= clear_factor.
        dropped_over_floor: largest (first dropped value) / tau; need <= 1.
        clear_factor: the factor the kept values had to clear.
        structure: the bracket pairs of each level, for :func:`fd_bracket_error`:
            level 1 lists the kept generators as (i, i); level k lists (index among
            the kept generators, row of level k - 1). The last level holds the
            candidates of the level that stalled (all dropped), if there was one.
        n_points, seconds: evaluation points and wall time.
    """

    n_params: int
    dim: int
    n_laws: int
    ranks_by_level: tuple[int, ...]
    kept: tuple[str, ...]
    levels: int
    gap: float
    min_kept_sv: float
    max_dropped_sv: float
    clear: bool
    noise_floor: float
    kept_over_floor: float
    dropped_over_floor: float
    clear_factor: float
    structure: tuple[tuple[tuple[int, int], ...], ...]
    n_points: int
    seconds: float


class _Engine:
    """Greedy level-by-level bracket search at a fixed set of points."""

    def __init__(
        self,
        local_map: LocalMap,
        points: Sequence[np.ndarray],
        cond: float,
        clear_factor: float,
    ):
        self.points = [
            torch.as_tensor(np.asarray(p, float), dtype=torch.float64) for p in points
        ]
        self.phis = [local_map(np.asarray(p, float)) for p in points]
        self.cond = cond
        self.clear_factor = clear_factor
        self.tau = 0.0
        self.kept_over = np.inf
        self.dropped_over = 0.0
        self.D = int(self.points[0].numel())
        self.gap = np.inf
        self.min_kept = np.inf
        self.max_dropped = 0.0
        self.clear = True
        self.K = [np.zeros((0, self.D)) for _ in self.points]  # kept rows per point

    def values(self, fields: Sequence[Field]) -> list[np.ndarray]:
        return [
            fields[k](p).detach().numpy().reshape(-1, self.D)
            for k, p in enumerate(self.points)
        ]

    def _rank(self, rows):
        r, gap, s = numeric_rank(rows, self.cond)
        q = int(np.count_nonzero(np.linalg.norm(rows, axis=1) > 0))
        return r, gap, s, noise_floor(max(q, 1), rows.shape[1], self.cond)

    def keep(self, cand: list[np.ndarray]) -> list[int]:
        """Greedily keep candidates that raise the rank at every point."""
        kept = []
        for c in range(cand[0].shape[0]):
            ups = []
            for k in range(len(self.points)):
                trial = np.vstack([self.K[k], cand[k][c : c + 1]])
                r, gap, s, tau = self._rank(trial)
                ups.append(r > self.K[k].shape[0])
                self._track(r, gap, s, tau)
            if all(ups):
                kept.append(c)
                self.K = [
                    np.vstack([self.K[k], cand[k][c : c + 1]])
                    for k in range(len(self.points))
                ]
            elif any(ups):
                self.clear = False  # the points disagree: not generic
            if self.K[0].shape[0] == self.D:
                break
        return kept

    def _track(self, r, gap, s, tau):
        kept = float(s[r - 1]) if r else np.inf
        dropped = float(s[r]) if r < s.size else 0.0
        if not decision_is_clear(r, s, tau, self.clear_factor):
            self.clear = False
        self.gap = min(self.gap, gap)
        self.tau = max(self.tau, tau)
        self.kept_over = min(self.kept_over, kept / tau)
        self.dropped_over = max(self.dropped_over, dropped / tau)
        self.min_kept = min(self.min_kept, kept)
        self.max_dropped = max(self.max_dropped, dropped)


def lie_rank(
    local_map: LocalMap,
    points: Sequence[np.ndarray],
    *,
    cond: float = EVAL_COND,
    clear_factor: float = CLEAR_FACTOR,
    max_levels: int | None = None,
    mode: str = "forward",
) -> LieRank:
    """Dimension of the Lie algebra generated by the fields grad phi_i, at ``points``.

    Args:
        local_map: point -> torch map whose derivatives are exact at that point.
        points: at least one point in R^D (use >= 3 random ones).
        cond: the evaluation's rounding amplification (:data:`EVAL_COND`), which
            sets the noise floor of every rank decision (:func:`noise_floor`).
        clear_factor: how far above the floor a kept value must be
            (:data:`CLEAR_FACTOR`).
        max_levels: a safety cap only (default D + 1 levels; the iteration normally
            stops when a level adds nothing, or when the rank reaches D).
        mode: how bracket levels differentiate the level below (see
            :func:`bracket_rows`).
    """
    with NoSolveGuard():
        return _lie_rank(local_map, points, cond, clear_factor, max_levels, mode)


def _lie_rank(local_map, points, cond, clear_factor, max_levels, mode) -> LieRank:
    if len(points) == 0:
        raise InvalidInputError("lie_rank needs at least one evaluation point")
    t0 = time.perf_counter()
    eng = _Engine(local_map, points, cond, clear_factor)
    D = eng.D
    cap = max_levels or D + 1
    gens = [generators(phi) for phi in eng.phis]
    kept_gen = eng.keep(eng.values(gens))
    labels = [f"X{i + 1}" for i in kept_gen]
    G = [select_rows(g, kept_gen) for g in gens]
    F, F_labels = G, list(labels)
    structure = [tuple((i, i) for i in kept_gen)]
    ranks = [eng.K[0].shape[0]]
    level = 1
    while eng.K[0].shape[0] < D and F_labels and level < cap:
        level += 1
        pairs = [
            (i, j)
            for i in range(len(kept_gen))
            for j in range(len(F_labels))
            if level > 2 or i < j
        ]
        if not pairs:
            ranks.append(ranks[-1])
            break
        cand_fields = [
            bracket_rows(G[k], F[k], pairs, mode) for k in range(len(points))
        ]
        kept = eng.keep(eng.values(cand_fields))
        ranks.append(eng.K[0].shape[0])
        new_labels = [
            f"[X{kept_gen[pairs[c][0]] + 1},{F_labels[pairs[c][1]]}]" for c in kept
        ]
        labels += new_labels
        F = [select_rows(cf, kept) for cf in cand_fields] if kept else F
        F_labels = new_labels
        structure.append(tuple(pairs[c] for c in kept) if kept else tuple(pairs))
    dim = eng.K[0].shape[0]
    return LieRank(
        n_params=D,
        dim=dim,
        n_laws=D - dim,
        ranks_by_level=tuple(ranks),
        kept=tuple(labels),
        levels=level,
        gap=float(eng.gap),
        min_kept_sv=float(eng.min_kept),
        max_dropped_sv=eng.max_dropped,
        clear=eng.clear,
        noise_floor=float(eng.tau),
        kept_over_floor=float(eng.kept_over),
        dropped_over_floor=float(eng.dropped_over),
        clear_factor=float(clear_factor),
        structure=tuple(structure),
        n_points=len(points),
        seconds=time.perf_counter() - t0,
    )


def level_fields(
    local_map: LocalMap,
    point: np.ndarray,
    spec: Sequence[Sequence[tuple[int, int]]],
    mode: str = "forward",
) -> list[Field]:
    """The torch field functions of each level for explicit bracket pairs.

    ``spec[0]`` lists generator indices as ``(i, i)``; ``spec[k]`` lists pairs
    (generator index, row of level k) for level k + 1. Used by the finite-difference
    cross-check.
    """
    phi = local_map(np.asarray(point, float))
    G = select_rows(generators(phi), [i for i, _ in spec[0]])
    out = [G]
    for pairs in spec[1:]:
        out.append(bracket_rows(G, out[-1], pairs, mode))
    return out


def fd_bracket_error(
    local_map: LocalMap,
    point: np.ndarray,
    spec: Sequence[Sequence[tuple[int, int]]],
    h: float = 2e-6,
    mode: str = "forward",
) -> list[float]:
    """Relative error of each level's AD brackets against central differences.

    Level 1: grad phi_i against central differences of phi. Level k + 1: [X_i, Y_j]
    against (Y_j(p + t X_i) - Y_j(p - t X_i)) / 2t
    - (X_i(p + s Y_j) - X_i(p - s Y_j)) / 2s
    with t = h / max(1, |X_i|), s = h / max(1, |Y_j|) (the point moves by at most h
    however large the field), X_i, Y_j evaluated by AD at the shifted points. The
    default step balances
    truncation (h^2 times third derivatives, which grow with the level) against
    rounding (eps |F| / h ~ 1e-10).
    """
    with NoSolveGuard():
        return _fd_bracket_error(local_map, point, spec, h, mode)


def _fd_levels(local_map, point, spec, h, mode):
    """(AD values, central-difference values, scale of the differenced fields) of
    each level, at step ``h`` (none when no generator was kept: nothing to check)."""
    if not spec or not spec[0]:
        return []
    p = torch.as_tensor(np.asarray(point, float), dtype=torch.float64)
    phi = local_map(np.asarray(point, float))
    fields = level_fields(local_map, point, spec, mode)
    gen_idx = [i for i, _ in spec[0]]
    D = p.numel()
    out = []
    # level 1
    fd = torch.stack(
        [
            (phi(p + h * e) - phi(p - h * e)) / (2 * h)
            for e in torch.eye(D, dtype=torch.float64)
        ],
        dim=1,
    )[gen_idx]
    out.append((fields[0](p).detach(), fd.detach(), float(phi(p).abs().max())))
    for lvl, pairs in enumerate(spec[1:], start=1):
        G, F = fields[0], fields[lvl - 1]
        ad = fields[lvl](p).detach()
        rows = []
        for i, j in pairs:
            x, y = G(p)[i].detach(), F(p)[j].detach()
            # step h / |direction|: the point moves by h whatever the field's size
            # (a fixed step along a level-3 field of norm 7e6 moved it by 15 at
            # seed 14 of DISC-LIN, far outside the Taylor regime)
            tx, ty = h / max(1.0, float(x.norm())), h / max(1.0, float(y.norm()))
            dy_x = (F(p + tx * x)[j] - F(p - tx * x)[j]) / (2 * tx)
            dx_y = (G(p + ty * y)[i] - G(p - ty * y)[i]) / (2 * ty)
            rows.append(dy_x - dx_y)
        fd = torch.stack(rows).detach()
        # rounding of a difference quotient: eps |field| / step, the step being
        # as small as h / |direction|
        size = max(1.0, float(G(p).norm(dim=1).max()), float(F(p).norm(dim=1).max()))
        scale = max(float(F(p).abs().max()), float(G(p).abs().max())) * size
        out.append((ad, fd, scale))
    return out


def _fd_bracket_error(local_map, point, spec, h, mode) -> list[float]:
    return [
        float((ad - fd).abs().max() / max(1.0, float(ad.abs().max())))
        for ad, fd, _ in _fd_levels(local_map, point, spec, h, mode)
    ]


#: Central differences: the Richardson estimate |D_h - D_2h| / 3 of the truncation
#: error at step h is exact up to relative O(h^2); FD_C times it (plus the rounding
#: of the differenced fields, EVAL_COND eps |F| / h) bounds the FD error.
FD_C = 4.0


def fd_bracket_check(
    local_map: LocalMap,
    point: np.ndarray,
    spec: Sequence[Sequence[tuple[int, int]]],
    h: float = 2e-6,
    mode: str = "forward",
    cond: float = EVAL_COND,
) -> list[tuple[float, float]]:
    """(error, allowed) of each level's AD brackets against central differences,
    both relative to max(1, |AD|), with the allowance from the FD error model (no
    fixed cutoff): FD_C x the Richardson estimate (differences at h and 2h) of the
    truncation + 2 cond eps |F| / h for the rounding of the differenced fields.

    Near an ill-conditioned point (seed 14 of DISC-LIN: third derivatives make the
    truncation at h = 2e-6 reach 3e-2 at level 4) the allowance grows with the
    measured truncation, while a wrong bracket (an O(1) error independent of h) is
    still far outside it.
    """
    with NoSolveGuard():
        at_h = _fd_levels(local_map, point, spec, h, mode)
        at_2h = _fd_levels(local_map, point, spec, 2 * h, mode)
    out = []
    for (ad, fd, scale), (_, fd2, _) in zip(at_h, at_2h):
        den = max(1.0, float(ad.abs().max()))
        trunc = float((fd - fd2).abs().max()) / 3
        rounding = 2 * cond * _EPS * scale / h
        out.append(
            (float((ad - fd).abs().max()) / den, FD_C * (trunc + rounding) / den)
        )
    return out


# --- native torch maps for the built-in models (vectorised; inverse by inv) ---------


def matrix_deq_map(m: int, d: int, k: int | None = None) -> TorchMap:
    """theta = (vec W, vec U[, vec B]) row-major -> vec((I - W)^-1 U) or vec(B ...)."""

    def phi(theta: torch.Tensor) -> torch.Tensor:
        W = theta[: m * m].reshape(m, m)
        U = theta[m * m : m * m + m * d].reshape(m, d)
        M = torch.linalg.inv(torch.eye(m, dtype=theta.dtype) - W) @ U
        if k is None:
            return M.reshape(-1)
        B = theta[m * m + m * d :].reshape(k, m)
        return (B @ M).reshape(-1)

    return phi


def linear_net_map(widths: Sequence[int]) -> TorchMap:
    """theta = (vec W_1, ..., vec W_L) row-major, W_l of shape (r_l, r_{l-1}) ->
    vec(W_L ... W_1)."""
    shapes = [(widths[i + 1], widths[i]) for i in range(len(widths) - 1)]

    def phi(theta: torch.Tensor) -> torch.Tensor:
        out, pos = None, 0
        for r, c in shapes:
            Wl = theta[pos : pos + r * c].reshape(r, c)
            pos += r * c
            out = Wl if out is None else Wl @ out
        return out.reshape(-1)

    return phi

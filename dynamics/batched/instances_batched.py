"""Seeded batches of matrix linear-DEQ instances covering the hard regions (P-SCALE).

Every instance is a pure function of ``(seed, index)`` and the :class:`ScaleSpec`: the
index space is cut into fixed blocks of ``spec.block`` instances, block j is drawn
from ``np.random.default_rng([seed, j, _STREAM])`` with all its draws vectorised, and
instance i is entry ``i % block`` of block ``i // block``. So a chunk of any size
starting anywhere yields the same instances, and :func:`instance` rebuilds any single
one (for replay in the single-instance engine) by drawing its block alone.

The mixture (proportions in ``ScaleSpec.mixture``, default 40/15/15/15/15 %):

- ``generic``: x ~ N(0, I_d); M* entries N(0, 1/d); W0 entries N(0, 1/m); U0 entries
  N(0, 1/d).
- ``near_singular``: as generic, but the smallest singular value of I - W0 is set
  to the floor times U[1, 1.2] (right at the spec's sigma_min(I - W0) >= 0.1), the
  others kept, so I - W0 is nearly singular relative to its size.
- ``ill_conditioned``: x = z diag(s) Q^T with z ~ N(0, I) and a random rotation Q;
  cond(Sigma) = s_max^2 / s_min^2 log-uniform in ``cov_cond``.
- ``large_target``: ||M*||_2 log-uniform in ``target_norm`` (the flow must travel far;
  M_bar and the stiffness grow).
- ``near_singular_point``: (W0, U0) close to the singular point (I, 0): I - W0 and U0
  scaled to size r, r log-uniform in ``radius`` (every singular value of I - W0 in
  [floor, r]); the matrix analogue of P-SWEEP's starts near (0, 1).

All categories respect ``sigma_min(I - W0) >= sigma_floor`` (default 0.1, the SCALE-COND
generator input): singular values of I - W0 below it are raised to it. Targets are
realizable: Y = X M*^T.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._validate import positive_int
from ..errors import InvalidInputError, ShapeError

CATEGORIES = (
    "generic",
    "near_singular",
    "ill_conditioned",
    "large_target",
    "near_singular_point",
)
DEFAULT_MIXTURE = (0.40, 0.15, 0.15, 0.15, 0.15)
#: Separates this generator's streams from any other use of (seed, block).
_STREAM = 0x5CA1E


@dataclasses.dataclass(frozen=True)
class ScaleSpec:
    """Shapes and hard-region parameters of a P-SCALE batch.

    Attributes:
        m, d, n: state, input and sample dimensions (spec example 3, 4, 32).
        k: output dimension with a readout (None: no readout, k = m).
        mixture: proportions of CATEGORIES (sum 1).
        sigma_floor: lower bound on sigma_min(I - W0).
        cov_cond: range of cond(Sigma_hat) in the ill-conditioned category.
        target_norm: range of ||M*||_2 in the large-target category.
        radius: range of the distance scale r to the singular point.
        block: instances per seeded block (changing it changes every instance).
    """

    m: int = 3
    d: int = 4
    n: int = 32
    k: int | None = None
    mixture: tuple[float, ...] = DEFAULT_MIXTURE
    sigma_floor: float = 0.1
    cov_cond: tuple[float, float] = (1e2, 1e3)
    target_norm: tuple[float, float] = (3.0, 10.0)
    radius: tuple[float, float] = (0.15, 0.5)
    block: int = 512

    def __post_init__(self):
        for name in ("m", "d", "n", "block"):
            positive_int(name, getattr(self, name))
        if self.n < self.d:
            raise ShapeError(f"n = {self.n} < d = {self.d}: the covariance is singular")
        if self.k is not None:
            positive_int("k", self.k)
        mix = np.asarray(self.mixture, float)
        if (
            mix.shape != (len(CATEGORIES),)
            or np.any(mix < 0)
            or abs(mix.sum() - 1.0) > 1e-12
        ):
            raise InvalidInputError(
                f"mixture must be {len(CATEGORIES)} non-negative "
                f"proportions summing to 1 (for {CATEGORIES})"
            )
        if not self.sigma_floor > 0:
            raise InvalidInputError("sigma_floor must be positive")
        for name in ("cov_cond", "target_norm", "radius"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise InvalidInputError(f"{name} must be a range 0 < lo <= hi")

    @property
    def readout(self) -> bool:
        return self.k is not None

    @property
    def k_out(self) -> int:
        return self.m if self.k is None else self.k

    def describe(self) -> dict:
        """JSON-able description (shapes, proportions, ranges)."""
        out = dataclasses.asdict(self)
        out["categories"] = dict(zip(CATEGORIES, self.mixture, strict=True))
        return out


@dataclasses.dataclass(frozen=True)
class MatrixInstances:
    """A contiguous range of instances (batch first, float64 NumPy).

    Attributes:
        spec, seed: what generated them.
        index: (N,) global instance indices.
        category: (N,) int, index into CATEGORIES.
        X: (N, n, d) inputs; Y: (N, n, k) targets; M_star: (N, k, d) true map.
        W0: (N, m, m); U0: (N, m, d); B0: (N, k, m) or None (readout).
    """

    spec: ScaleSpec
    seed: int
    index: np.ndarray
    category: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    M_star: np.ndarray
    W0: np.ndarray
    U0: np.ndarray
    B0: np.ndarray | None

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def position(self, instance_id: int) -> int:
        pos = np.nonzero(self.index == instance_id)[0]
        if pos.size == 0:
            raise InvalidInputError(f"instance {instance_id} is not in this range")
        return int(pos[0])

    def model(self, instance_id: int):
        """Instance ``instance_id`` as a single-instance ``MatrixLinearDEQ``."""
        from ..models.matrix_deq import MatrixLinearDEQ

        p = self.position(instance_id)
        return MatrixLinearDEQ(
            self.X[p], self.Y[p], self.spec.m, readout=self.spec.readout
        )

    def theta0(self, instance_id: int) -> np.ndarray:
        """Flat initial parameters of ``instance_id`` (MatrixLinearDEQ order)."""
        p = self.position(instance_id)
        parts = [self.W0[p].ravel(), self.U0[p].ravel()]
        if self.B0 is not None:
            parts.append(self.B0[p].ravel())
        return np.concatenate(parts)


def _log_uniform(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))


def _rotations(g: np.ndarray) -> np.ndarray:
    """Haar-random orthogonal matrices from Gaussian stacks (QR with sign fix)."""
    q, r = np.linalg.qr(g)
    sign = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    sign[sign == 0] = 1.0
    return q * sign[..., None, :]


def _block(spec: ScaleSpec, seed: int, j: int) -> dict[str, np.ndarray]:
    """All instances of block j (fixed draw order; never reorder these lines)."""
    b, m, d, n, k = spec.block, spec.m, spec.d, spec.n, spec.k_out
    rng = np.random.default_rng([int(seed), int(j), _STREAM])
    u_cat = rng.random(b)
    Z = rng.standard_normal((b, n, d))
    G_rot = rng.standard_normal((b, d, d))
    u_cond = rng.random(b)
    G_star = rng.standard_normal((b, k, d))
    u_norm = rng.random(b)
    G_w = rng.standard_normal((b, m, m))
    G_u = rng.standard_normal((b, m, d))
    u_sing = rng.random(b)
    u_rad = rng.random(b)
    G_b = rng.standard_normal((b, k, m)) if spec.readout else None

    cat = np.searchsorted(np.cumsum(spec.mixture)[:-1], u_cat, side="right")
    is_ = {name: cat == i for i, name in enumerate(CATEGORIES)}

    # Inputs: a rotated, column-scaled Gaussian; scale 1 except ill-conditioned.
    cond = _log_uniform(u_cond, *spec.cov_cond)
    expo = np.linspace(0.0, 1.0, d)[None, :]
    scales = np.where(
        is_["ill_conditioned"][:, None], cond[:, None] ** (-0.5 * expo), 1.0
    )
    X = (Z * scales[:, None, :]) @ np.swapaxes(_rotations(G_rot), 1, 2)

    # Realizable targets.
    M_star = G_star / np.sqrt(d)
    norm = np.linalg.norm(M_star, ord=2, axis=(1, 2))
    want = _log_uniform(u_norm, *spec.target_norm)
    M_star = np.where(
        is_["large_target"][:, None, None],
        M_star * (want / norm)[:, None, None],
        M_star,
    )
    Y = X @ np.swapaxes(M_star, 1, 2)

    # Initial A0 = I - W0 through its SVD, so its singular values can be placed.
    A0 = np.eye(m)[None] - G_w / np.sqrt(m)
    U0 = G_u / np.sqrt(d)
    ua, sa, vta = np.linalg.svd(A0)  # sa descending
    r = _log_uniform(u_rad, *spec.radius)
    near_pt = is_["near_singular_point"]
    sa = np.where(near_pt[:, None], r[:, None] * sa / sa[:, :1], sa)
    sa = np.maximum(sa, spec.sigma_floor)
    sa[:, -1] = np.where(
        is_["near_singular"], spec.sigma_floor * (1.0 + 0.2 * u_sing), sa[:, -1]
    )
    A0 = (ua * sa[:, None, :]) @ vta
    U0 = np.where(
        near_pt[:, None, None],
        U0 * (r / np.linalg.norm(U0, axis=(1, 2)))[:, None, None],
        U0,
    )
    W0 = np.eye(m)[None] - A0
    B0 = None if G_b is None else G_b / np.sqrt(m)
    return {
        "category": cat,
        "X": X,
        "Y": Y,
        "M_star": M_star,
        "W0": W0,
        "U0": U0,
        "B0": B0,
    }


def generate(spec: ScaleSpec, seed: int, start: int, stop: int) -> MatrixInstances:
    """Instances ``start .. stop-1`` of the stream ``seed`` (vectorised per block)."""
    if int(start) != start or int(stop) != stop or not 0 <= start < stop:
        raise InvalidInputError(f"need integers 0 <= start < stop; got {start}, {stop}")
    b = spec.block
    parts = []
    for j in range(start // b, (stop - 1) // b + 1):  # loop over blocks only
        blk = _block(spec, seed, j)
        lo, hi = max(start - j * b, 0), min(stop - j * b, b)
        parts.append({key: None if v is None else v[lo:hi] for key, v in blk.items()})
    cat = {
        key: (
            None if parts[0][key] is None else np.concatenate([p[key] for p in parts])
        )
        for key in parts[0]
    }
    return MatrixInstances(
        spec,
        int(seed),
        np.arange(start, stop),
        cat["category"],
        cat["X"],
        cat["Y"],
        cat["M_star"],
        cat["W0"],
        cat["U0"],
        cat["B0"],
    )


def instance(spec: ScaleSpec, seed: int, index: int) -> MatrixInstances:
    """The single instance ``index`` of stream ``seed`` (a range of length one)."""
    return generate(spec, seed, int(index), int(index) + 1)

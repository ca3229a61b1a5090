"""Shared helpers of the reversible DEQ claim checks (REV-*).

The checks themselves live in ``rev_exact`` (REV-INVERT, REV-EXACT), ``rev_fd``
(REV-EXACT gradcheck, REV-FD), ``rev_memory`` (REV-MEMORY, REV-NFE),
``rev_convergence`` (REV-SAME-FP, REV-RATE), ``rev_theory`` (REV-SHARP, REV-SYM,
REV-DET), ``rev_recon`` (REV-RECON) and ``rev_ift`` (REV-IFT-APPROX).

The symbolic parts of REV-SHARP, REV-SYM and REV-DET are registered elsewhere (part
"symbolic"); the parts of these modules are named ``numeric``, ``unit``, ``toy``,
``gradcheck``, ``saved-bytes``, ``tight`` and ``loose``. Unless stated otherwise the
margin of a part is ``1 - error / tolerance`` minimised over instances (>= 0 means
the claim held). Everything runs on CPU in float64 unless the dtype is the thing
being swept.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings

import torch

from dynamics._problem import Problem
from dynamics.gradients import (
    ReversibleExact,
)
from dynamics.instances.torch_examples import (
    UnitMLP,
)
from dynamics.measure import rel_error as _rel  # noqa: F401 - the REV checks use it
from dynamics.solvers import (
    Picard,
    Relaxed,
    ReversibilityWarning,
    Reversible,
    iterate,
)

from ..registry import CheckResult, Context, check as _register

F64 = torch.float64


def check(claim_id: str, part: str, kind: str):
    """Register like :func:`proofs_check.registry.check`, running the check with one
    torch thread: these problems are tiny, and thread start-up and oversubscription on
    a shared CPU cost far more than they gain (restored afterwards)."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(ctx: Context) -> CheckResult:
            old = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return fn(ctx)
            finally:
                torch.set_num_threads(old)

        return _register(claim_id, part=part, kind=kind)(run)

    return wrap


def _seed(ctx: Context, tag: str) -> int:
    return int(ctx.rng(tag).integers(0, 2**31 - 1))


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-300))


def _bind(f, x, dtype=F64):
    return Problem.build(f, x, dtype).bind()


@contextlib.contextmanager
def quiet_reversibility():
    """Silence the |1 - beta| < 0.1 warning where beta near 1 is deliberate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReversibilityWarning)
        yield


def _toy_loss(z):
    return (z**2).sum() + z.sum()


def _rev_plain():
    # the sweep runs far past convergence on purpose: measure, do not warn
    return ReversibleExact(recon_threshold=None)


#: REV-EXACT (amended): the reversible gradient is within rel 1e-8 of the unrolled one
#: for N <= EXACT_TIGHT_N, and within C eps64 A_N (C = EXACT_C, A_N the computed
#: product of inverse-step Jacobian norms, :func:`inverse_jacobian_norms`) for every
#: N <= EXACT_MAX_N. The reconstruction divides by 1 - beta at every step, so its
#: rounding grows geometrically in N; A_N is the worst-case growth of that rounding.
EXACT_TIGHT_N = 10
EXACT_MAX_N = 30
EXACT_C = 100.0
EPS64 = float(torch.finfo(torch.float64).eps)


def log_products(norms: list[float]) -> list[float]:
    """log10 A_n for n = 1..N, summed in logs (A_N overflows float32 by N = 30)."""
    out, acc = [], 0.0
    for a in norms:
        acc += math.log10(a)
        out.append(acc)
    return out


def recon_bound(log10_a: float) -> float:
    """C eps64 A_N as a float (inf if it overflows float64, which then bounds
    nothing finite away from it)."""
    e = math.log10(EXACT_C * EPS64) + log10_a
    return math.inf if e > 308 else 10.0**e


def _unit_problem(ctx: Context):
    """E-UNIT: the seeded MLP, made contractive by rescaling its last layer if the
    forward iteration does not reach tol 1e-8 within 500 steps."""
    x = torch.tensor([[0.1]], dtype=F64)
    seed = _seed(ctx, "unit")
    scale = 1.0
    for _ in range(8):
        f = UnitMLP(seed=seed, last_scale=scale)
        fm = _bind(f, x)
        ok = all(
            iterate(
                s, fm, torch.zeros(1, 1, dtype=F64), tol=1e-8, max_steps=500
            ).result.ok
            for s in (Picard(), Relaxed(0.8), Reversible(0.8), Reversible(1.2))
        )
        if ok:
            return f, x, scale
        scale *= 0.5
    raise RuntimeError("could not make the E-UNIT map contractive")


def inverse_jacobian_norms(f, x, beta: float, z0, nsteps: int) -> list[float]:
    """``a_n`` for n = 1..N: the spectral norm of the Jacobian of the inverse step
    (y_n, z_n) -> (y_{n-1}, z_{n-1}) at the forward trajectory, maximised over the
    examples (f acts on each example alone, so the batch Jacobian is block
    diagonal). ``A_N = prod a_n`` bounds how much the backward reconstruction can
    amplify a rounding error made at step N on its way back to step 0.

    With c = 1 - beta and J_y = f'(y_n), J_z = f'(z_{n-1}) (computed by autograd):
    dz_{n-1}/dy_n = -beta J_y / c, dz_{n-1}/dz_n = I / c,
    dy_{n-1}/dy_n = (I - beta J_z dz_{n-1}/dy_n) / c, dy_{n-1}/dz_n = -beta J_z / c^2.
    """
    fm = _bind(f, x)
    with torch.no_grad():
        run = iterate(
            Reversible(beta), fm, z0, tol=0.0, max_steps=nsteps, record_trajectory=True
        )
    traj = run.stats["trajectory"]
    ys, zs = traj["y"], traj["z"]
    c = 1.0 - beta
    b, d = z0.shape
    eye = torch.eye(d, dtype=z0.dtype).expand(b, d, d)

    def jac(v):
        full = torch.autograd.functional.jacobian(fm, v, vectorize=True)
        idx = torch.arange(b)
        return full[idx, :, idx, :]  # (B, d, d) diagonal blocks

    norms = []
    for n in range(1, nsteps + 1):
        jy, jz = jac(ys[n]), jac(zs[n - 1])
        dz_dy = -beta * jy / c
        dz_dz = eye / c
        dy_dy = (eye - beta * jz @ dz_dy) / c
        dy_dz = -beta * jz / c**2
        big = torch.cat(
            [torch.cat([dy_dy, dy_dz], dim=2), torch.cat([dz_dy, dz_dz], dim=2)], dim=1
        )
        norms.append(float(torch.linalg.matrix_norm(big, ord=2).max()))
    return norms

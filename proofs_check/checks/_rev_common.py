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

from ..catalogue import tol
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


#: REV-EXACT (amended): the reversible gradient is within C eps64 A_N (C = EXACT_C,
#: A_N the computed product of inverse-step Jacobian norms,
#: :func:`inverse_jacobian_norms`) of the unrolled one for every N <= EXACT_MAX_N, and
#: within rel EXACT_TIGHT_REL for N <= EXACT_TIGHT_N, both as the catalogue states
#: them (the fixed part has no rounding model; seed 12 exceeds it and fails). The
#: reconstruction divides by 1 - beta at every step, so its rounding grows
#: geometrically in N; A_N is the worst-case growth of that rounding.
EXACT_TIGHT_N = 10
EXACT_TIGHT_REL = tol("REV-EXACT", "tight-rel")
#: E-UNIT: the authors' atol, binding the exact (reversible) gradient.
UNIT_ATOL = tol("REV-EXACT", "unit-atol")
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


#: E-UNIT truncation model (parts REV-EXACT ``unit`` and REV-IFT-APPROX ``tight``):
#: an approximate gradient may differ from the unrolled one by at most
#: ``UNIT_C x`` the first-order prediction of :func:`truncation_prediction` plus the
#: rounding floor ``UNIT_ROUND_ULPS x eps x (steps + 1) x max(1, |g|)``.
UNIT_C = 2.0
UNIT_ROUND_ULPS = 64.0


def _flat_vjp(f, x, z, w):
    """d <w, f(z, x)> / d(parameters, x), flattened in the order of
    :func:`dynamics.instances.torch_examples.loss_grads`."""
    params = list(f.parameters())
    xr = x.detach().clone().requires_grad_()
    out = f(z.detach(), xr)
    grads = torch.autograd.grad(
        out, [*params, xr], grad_outputs=w.reshape(out.shape), allow_unused=True
    )
    return torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).reshape(-1)
            for g, p in zip(grads, [*params, xr])
        ]
    )


def _series_terms(f, x, points, M, z_ref, g, weight):
    """sum_j weight |vjp(points_j, w_j) - vjp(z_ref, w_j)|_inf with
    w_j = (M^T)^(n-1-j) g: what evaluating the n unrolled steps at their own iterates
    instead of at ``z_ref`` changes in the gradient, to first order."""
    n, total, w = len(points), 0.0, g.clone()
    ws = []
    for _ in range(n):
        ws.append(w)
        w = M.T @ w
    for j, z in enumerate(points):
        wj = ws[n - 1 - j]
        diff = _flat_vjp(f, x, z, wj) - _flat_vjp(f, x, z_ref, wj)
        total += weight * float(diff.abs().max())
    return total, w  # w = (M^T)^n g, the first term the n steps leave out


def truncation_prediction(
    f,
    x,
    beta: float,
    z0,
    *,
    tol: float,
    max_steps: int,
    adjoint_tol: float | None = None,
    phantom: tuple[int, float] | None = None,
) -> dict:
    """First-order prediction of |g_method - g_unrolled|_inf on an E-UNIT problem
    (loss = sum of z*), for a method that differentiates at the last forward iterate
    z_K instead of through the K relaxed steps z_{j+1} = (1 - beta) z_j +
    beta f(z_j) that the unrolled reference differentiates.

    Terms (each computed, not fitted; M = (1 - beta) I + beta J_f(z_K)):

    * ``offset``: sum_j beta |vjp(z_j, w_j) - vjp(z_K, w_j)|, w_j = (M^T)^(K-1-j) 1:
      the unrolled gradient evaluates f's parameter derivative at the iterates z_j.
      The last one, z_{K-1}, is up to tol / |J| from z_K when J is small (the
      iteration stops when the *next* residual is below tol), which is why a
      strongly contracting draw has the largest offset (seed 14: 1.9e-7).
    * ``tail``: beta |vjp(z_K, (I - M^T)^-1 (M^T)^K 1)|: the series terms beyond K
      steps that the implicit gradient includes and the unrolled one does not.
    * ``adjoint`` (``adjoint_tol``): an iterative adjoint solve to relative residual
      adjoint_tol leaves |du| <= adjoint_tol |u| / (1 - |M|) in u = (I - J^T)^-1 1,
      times |d f / d(theta, x)|_2.
    * ``phantom`` ((k, lam)): the k damped steps p_{i+1} = (1 - lam) p_i + lam f(p_i)
      from z_K, the same two terms with M_lam = (1 - lam) I + lam J.

    E-UNIT's MLPs are piecewise linear in z (ReLU), so J is constant on the piece of
    the last iterates and the model is first order in the distances only; the check
    allows :data:`UNIT_C` times it.
    """
    fm = _bind(f, x)
    z0 = torch.zeros(x.shape[0], 1, dtype=F64) if z0 is None else z0
    with torch.no_grad():
        solver = Picard() if beta == 1.0 else Relaxed(beta)
        run = iterate(
            solver, fm, z0, tol=tol, max_steps=max_steps, record_trajectory=True
        )
    zs = [z.detach() for z in run.stats["trajectory"]["z"]]
    zK = zs[-1]
    n = zK.numel()
    J = torch.autograd.functional.jacobian(
        lambda v: fm(v.reshape(zK.shape)).reshape(-1), zK.reshape(-1)
    )
    eye = torch.eye(n, dtype=F64)
    g = torch.ones(n, dtype=F64)
    M = (1 - beta) * eye + beta * J
    offset, wK = _series_terms(f, x, zs[:-1], M, zK, g, beta)
    tail_w = torch.linalg.inv(eye - M.T) @ wK
    tail = beta * float(_flat_vjp(f, x, zK, tail_w).abs().max())
    out = {
        "steps": len(zs) - 1,
        "J_norm": float(torch.linalg.matrix_norm(J, ord=2)),
        "last_step": float((zs[-1] - zs[-2]).abs().max()) if len(zs) > 1 else 0.0,
        "offset": offset,
        "tail": tail,
    }
    if adjoint_tol is not None:
        u = torch.linalg.inv(eye - J.T) @ g
        q = float(torch.linalg.matrix_norm(M, ord=2))
        jac = torch.stack([_flat_vjp(f, x, zK, e) for e in eye], dim=1)
        out["adjoint"] = (
            adjoint_tol
            * float(u.norm())
            / max(1 - q, 1e-300)
            * float(torch.linalg.matrix_norm(jac, ord=2))
        )
    if phantom is not None:
        k, lam = phantom
        ps = [zK]
        with torch.no_grad():
            for _ in range(k - 1):
                ps.append((1 - lam) * ps[-1] + lam * fm(ps[-1]))
        Ml = (1 - lam) * eye + lam * J
        drift, wk = _series_terms(f, x, ps, Ml, zK, g, lam)
        trunc_w = torch.linalg.inv(eye - Ml.T) @ wk
        out["phantom"] = drift + lam * float(
            _flat_vjp(f, x, zK, trunc_w).abs().max()
        )
    out["total"] = sum(
        out[k] for k in ("offset", "tail", "adjoint", "phantom") if k in out
    )
    return out


def unit_tolerance(
    pred: dict,
    ref: torch.Tensor,
    extra_steps: int = 0,
    *,
    c: float = UNIT_C,
    ulps: float = UNIT_ROUND_ULPS,
) -> float:
    """Absolute tolerance of an approximate E-UNIT gradient against the unrolled
    ``ref``: ``c`` x the predicted truncation + the rounding floor ``ulps`` x eps x
    (steps + 1) x max(1, |ref|) (a few roundings per differentiated step)."""
    steps = pred["steps"] + extra_steps + 1
    scale = max(1.0, float(ref.abs().max()))
    return c * pred["total"] + ulps * EPS64 * steps * scale

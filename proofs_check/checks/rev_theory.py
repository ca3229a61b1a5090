"""Numeric parts of the reversible DEQ linear theory: REV-SHARP (sharp step-size
threshold), REV-SYM (symmetric A always contract) and REV-DET (determinant and
spectral radius of the step Jacobian).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dynamics.instances.torch_examples import (
    TanhMap,
)
from dynamics.solvers import (
    Reversible,
    iterate,
)

from ..registry import CheckResult, Context, judged
from ._rev_common import (
    F64,
    _bind,
    check,
    quiet_reversibility,
)


# ------------------------------------------------------------------ LINEAR THEORY
def step_jacobian(a: torch.Tensor, beta: float) -> torch.Tensor:
    """Jacobian of one reversible step for f(z) = A z, computed by running the
    solver's own ``forward_step`` on the basis of R^{2d} (so the theory is tied to the
    implementation, not to a transcribed formula)."""
    d = a.shape[0]
    solver = Reversible(beta)
    eye = torch.eye(2 * d, dtype=F64)
    with torch.no_grad():
        y1, z1 = solver.forward_step(lambda z: z @ a.T, eye[:, :d], eye[:, d:])
    return torch.cat([y1, z1], dim=1).T  # column j = image of basis vector j


def step_jacobian_formula(a: torch.Tensor, beta: float) -> torch.Tensor:
    """M = [[(1-b) I, b A], [b (1-b) A, (1-b) I + b^2 A^2]] (docs/theory/reversible.md).
    """
    d = a.shape[0]
    eye = torch.eye(d, dtype=F64)
    c = 1 - beta
    return torch.cat(
        [
            torch.cat([c * eye, beta * a], 1),
            torch.cat([beta * c * a, c * eye + beta**2 * a @ a], 1),
        ],
        0,
    )


def _rho(m: torch.Tensor) -> float:
    return float(torch.linalg.eigvals(m).abs().max())


@check("REV-SHARP", part="numeric", kind="numeric")
def rev_sharp(ctx: Context) -> CheckResult:
    """REV-SHARP (numeric): rotation A = L [[0,-1],[1,0]]: rho(M) < 1 below
    beta* = 2/(1+L), |rho - 1| <= 1e-12 at beta*, rho > 1 at beta* + 0.01 where the
    iteration diverges."""
    ls = np.linspace(0.05, 0.95, 19) if ctx.full else (0.1, 0.3, 0.5, 0.7, 0.9)
    worst, rows = math.inf, []
    j = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=F64)
    with quiet_reversibility():
        for lip in ls:
            a = float(lip) * j
            bstar = 2 / (1 + float(lip))
            below = max(
                _rho(step_jacobian(a, b))
                for b in np.linspace(0.05, bstar - 0.01, 12)
                if abs(b - 1) > 1e-9
            )
            at = _rho(step_jacobian(a, bstar))
            above = _rho(step_jacobian(a, bstar + 0.01))
            formula = float(
                (step_jacobian(a, bstar) - step_jacobian_formula(a, bstar)).abs().max()
            )

            def fm(z, a=a):
                return z @ a.T

            with torch.no_grad():
                r = iterate(
                    Reversible(bstar + 0.01),
                    fm,
                    torch.tensor([[1.0, 0.5]], dtype=F64),
                    tol=0.0,
                    max_steps=600,
                    record_trajectory=True,
                )
            norms = r.stats["trajectory"]["z"].norm(dim=(1, 2))
            k, h = norms.shape[0] - 1, (norms.shape[0] - 1) // 2
            growth = float((norms[k] / norms[h]) ** (1 / (k - h)))
            diverged = growth > 1.0 and bool(norms[k] > 10 * norms[0])
            m = min(
                1 - below,
                1 - abs(at - 1) / 1e-12,
                above - 1,
                1.0 if diverged else -1.0,
                1 - formula / 1e-14,
            )
            worst = min(worst, m)
            rows.append(
                {
                    "L": float(lip),
                    "beta_star": bstar,
                    "rho_below_max": below,
                    "rho_at": at,
                    "rho_above": above,
                    "diverged": diverged,
                    "measured_growth_per_step_above": growth,
                }
            )
    return judged(
        worst >= 0,
        worst_margin=worst,
        tolerance=1e-12,
        instances=len(rows),
        measured=max(abs(r["rho_at"] - 1) for r in rows),
        details={
            "margin": "min(1 - rho_below, 1 - |rho_at - 1|/1e-12, "
            "rho_above - 1, diverged ? 1 : -1)",
            "rows": rows,
        },
    )


@check("REV-SYM", part="numeric", kind="property")
def rev_sym(ctx: Context) -> CheckResult:
    """REV-SYM (numeric): random symmetric A with ||A||_2 < 1: rho(M(beta)) < 1 for
    every beta in (0, 2); example a = -0.9, beta = 1.5: relaxed factor 1.85 and
    reversible rho = 0.5 to 1e-12."""
    rng = ctx.rng("sym")
    n_mat = 200 if ctx.full else 30
    betas = np.linspace(0.02, 1.98, 50 if ctx.full else 15)
    worst_gap = math.inf
    with quiet_reversibility():
        for _ in range(n_mat):
            d = int(rng.integers(2, 7))
            b = rng.normal(size=(d, d))
            s = (b + b.T) / 2
            s *= rng.uniform(0.1, 0.999) / np.abs(np.linalg.eigvalsh(s)).max()
            a = torch.tensor(s, dtype=F64)
            for beta in betas:
                if abs(beta - 1) < 1e-9:
                    continue
                worst_gap = min(worst_gap, 1 - _rho(step_jacobian(a, float(beta))))
        a = torch.tensor([[-0.9]], dtype=F64)
        rho_ex = _rho(step_jacobian(a, 1.5))
    relaxed_ex = abs(1 - 1.5 + 1.5 * -0.9)
    ex_err = max(abs(rho_ex - 0.5), abs(relaxed_ex - 1.85))
    ok = worst_gap > 0 and ex_err <= 1e-12
    return judged(
        ok,
        measured=rho_ex,
        predicted=0.5,
        worst_margin=min(worst_gap, 1 - ex_err / 1e-12),
        tolerance=1e-12,
        instances=n_mat * len(betas),
        details={
            "margin": "min(1 - max rho, 1 - example error/1e-12)",
            "min_1_minus_rho": worst_gap,
            "example_rho": rho_ex,
            "example_relaxed_factor": relaxed_ex,
        },
    )


@check("REV-DET", part="numeric", kind="property")
def rev_det(ctx: Context) -> CheckResult:
    """REV-DET (numeric): |det M| = |1-beta|^{2d} (rel <= 1e-8) and rho(M) >= |1-beta|
    - 1e-9, for random 5x5 A (scales 0.1-1.5), beta in (0.05, 1.95), and for the
    autograd Jacobian of one nonlinear (tanh) step."""
    rng = ctx.rng("det")
    n_mat = 2000 if ctx.full else 200
    d = 5
    worst, worst_det, worst_rho = math.inf, 0.0, math.inf
    with quiet_reversibility():
        for _ in range(n_mat):
            a = torch.tensor(
                rng.normal(size=(d, d)) * rng.uniform(0.1, 1.5) / math.sqrt(d),
                dtype=F64,
            )
            beta = float(rng.uniform(0.05, 1.95))
            if abs(beta - 1) < 1e-6:
                continue
            m = step_jacobian(a, beta)
            sign, logdet = torch.linalg.slogdet(m)
            expect = 2 * d * math.log(abs(1 - beta))
            det_err = abs(math.expm1(float(logdet) - expect))
            rho_gap = _rho(m) - abs(1 - beta)
            worst_det = max(worst_det, det_err)
            worst_rho = min(worst_rho, rho_gap)
            worst = min(worst, 1 - det_err / 1e-8, (rho_gap + 1e-9) / 1e-9)
        # nonlinear step: autograd Jacobian of Reversible.forward_step for tanh f
        n_nl = 40 if ctx.full else 10
        nl_err = 0.0
        for k in range(n_nl):
            seed = int(rng.integers(0, 2**31 - 1))
            f = TanhMap(d, 3, float(rng.uniform(0.3, 1.5)), seed=seed)
            x = torch.randn(
                1, 3, generator=torch.Generator().manual_seed(seed), dtype=F64
            )
            fm = _bind(f, x)
            beta = float(rng.uniform(0.05, 1.95))
            solver = Reversible(beta)

            def step(v, solver=solver, fm=fm):
                y1, z1 = solver.forward_step(fm, v[None, :d], v[None, d:])
                return torch.cat([y1, z1], dim=1)[0]

            v = torch.randn(
                2 * d, generator=torch.Generator().manual_seed(seed + 1), dtype=F64
            )
            jac = torch.autograd.functional.jacobian(step, v)
            _, logdet = torch.linalg.slogdet(jac)
            err = abs(math.expm1(float(logdet) - 2 * d * math.log(abs(1 - beta))))
            nl_err = max(nl_err, err)
            worst = min(worst, 1 - err / 1e-8)
    return judged(
        worst >= 0,
        measured=max(worst_det, nl_err),
        worst_margin=worst,
        tolerance=1e-8,
        instances=n_mat + n_nl,
        details={
            "margin": "min(1 - det_rel_err/1e-8, (rho - |1-beta| + 1e-9)/1e-9)",
            "max_det_rel_err_linear": worst_det,
            "max_det_rel_err_nonlinear": nl_err,
            "min_rho_minus_lower_bound": worst_rho,
        },
    )

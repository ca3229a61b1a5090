"""Gradient descent and gradient flow of a :class:`BatchedMatrixDEQ`, with per-instance
tracking of everything the SCALE-* claims need, reduced online (O(B) memory).

Per instance and recorded time the tracker measures (spec R1-R6):

- conservation drift ||C(t) - C0||_F / max(1, ||C0||_F) (and C' with readout) (R1);
- sigma_min(I - W(t))^2 against the LIN-COND (b) bound lambda_min(C0) / (1 + M_bar^2),
  against the intermediate bound lambda_min(C0) / (1 + ||M(t)||_2^2), and
  sigma_max(I - W(t))^2 against lambda_max(C0) (R3);
- the excess risk R(t) - R_min against the rate bound: R0 exp(-kappa t) for the flow
  (LIN-GF-RATE), R0 (1 - rho)^k with rho = c eta lambda / (lambda_max(C0) + c eta R0),
  c = loss_factor (= ``dynamics.rates.gd_rate_factor``), for GD on the prefix of
  steps that satisfied the descent inequality (LIN-GD-RATE b);
- measured / bound rates: kappa_hat(t) / kappa with kappa_hat(t) = -ln(R(t)/R0) / t,
  the same at the last record above the float floor, and a least-squares fitted rate.

Sign convention: every ``*_margin`` is >= 0 when the bound holds.

No Python loop runs over instances: loops run over steps and recorded times only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from .._validate import positive_int
from ..errors import InvalidInputError
from . import _small as sm
from .batched_integrators import implicit_midpoint_step, rk4_step
from .batched_linear import BatchedMatrixDEQ, BatchEval, RateConstants, rate_constants

Tensor = torch.Tensor

#: Records whose excess risk is below ``floor_rel * R0`` are not judged: there the
#: risk has lost its relative accuracy (float64: the LIN-GF-RATE guidance 1e-12;
#: float32's unit roundoff is 6e-8, so its risk is trusted to about 1e-5 of R0).
FLOOR_REL = {torch.float64: 1e-12, torch.float32: 1e-5}

INTEGRATORS = ("rk4", "midpoint")


@dataclasses.dataclass
class LinearRunStats:
    """Per-instance results of one batched run; tensors are (B,) float64 unless noted.

    Attributes:
        method: "gd", "rk4" or "midpoint".
        steps: number of steps (same for all instances).
        h: step size (flow) or learning rate eta (GD), per instance.
        t_final: steps * h.
        ok: bool; False where I - W became singular, a value was non-finite, or an
            implicit-midpoint solve did not converge.
        risk0, risk_final: excess risk R - R_min at the start and the end.
        drift: max relative conservation drift of C (flow; for GD the growth of C).
        drift_readout: the same for C' (NaN without readout).
        cond_margin: min over records of sigma_min^2 / cond_lower - 1 (GD: over the
            prefix where the risk never increased).
        cond_margin_mid: min of sigma_min^2 (1 + ||M||^2) / lambda_min(C0) - 1.
        cond_upper_margin: min of 1 - sigma_max^2 / lambda_max(C0) (flow; NaN for GD).
        cond_worst_t: time of the cond_margin minimum.
        rate_log_margin: min over judged records (t > 0) of ln(bound) - ln(R); >= 0
            iff the rate bound holds pointwise.
        rate_ratio_min: min over judged records (t > 0) of the measured/bound rate:
            kappa_hat(t)/kappa (flow), ln(R_k/R0) / (k ln(1 - rho)) (GD).
        rate_ratio_final: the same ratio at the last judged record.
        rate_fit_ratio: least-squares slope of -ln R over judged records / bound rate.
        decades: log10(R0 / R) at the last judged record.
        descent_fail_step: (B,) int64, first GD step whose descent inequality failed
            above the floor; -1 if none (flow: -1).
        risk_increased: (B,) bool, GD risk went up at some step above the floor.
        cumdrift_margin: GD only: min over the descent prefix (k > 0) of
            [2 eta (R0 - R_k) - tr(C_k - C0)] / max(1, tr C0) (LIN-GD-CUMDRIFT).
        midpoint_iters: largest number of stage-solve iterations (midpoint only).
    """

    method: str
    steps: int
    h: Tensor
    t_final: Tensor
    ok: Tensor
    risk0: Tensor
    risk_final: Tensor
    drift: Tensor
    drift_readout: Tensor
    cond_margin: Tensor
    cond_margin_mid: Tensor
    cond_upper_margin: Tensor
    cond_worst_t: Tensor
    rate_log_margin: Tensor
    rate_ratio_min: Tensor
    rate_ratio_final: Tensor
    rate_fit_ratio: Tensor
    decades: Tensor
    descent_fail_step: Tensor
    risk_increased: Tensor
    cumdrift_margin: Tensor
    midpoint_iters: int = 0

    def fields(self) -> dict[str, Tensor]:
        """The per-instance tensors by name."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }


@dataclasses.dataclass
class LinearRun:
    """A batched run: final parameters, per-instance stats and (optionally) the path.

    Attributes:
        theta: (P, B) final parameters.
        stats: :class:`LinearRunStats`.
        consts: the :class:`RateConstants` the bounds used.
        times, risks: (K, B) recorded times and risks (only with ``keep_path=True``).
        thetas: (K, P, B) recorded parameters (only with ``keep_path=True``).
    """

    theta: Tensor
    stats: LinearRunStats
    consts: RateConstants
    times: Tensor | None = None
    risks: Tensor | None = None
    thetas: Tensor | None = None


class _Tracker:
    """Online per-instance reductions over recorded times."""

    def __init__(
        self,
        batch: BatchedMatrixDEQ,
        consts: RateConstants,
        h: Tensor,
        steps: int,
        method: str,
        floor_rel: float,
        keep_path: bool,
    ):
        f64 = torch.float64
        dev = batch.device
        nb = batch.B
        self.batch, self.c, self.method = batch, consts, method
        self.h = h.to(f64)
        self.steps = steps
        self.gd = method == "gd"
        self.floor = consts.risk0 * floor_rel
        self.C0 = sm.to_batch_last(consts.C0)
        self.C0_norm = torch.clamp(sm.frob2(self.C0).sqrt(), min=1.0)
        self.trC0 = torch.clamp(
            sm.colsum(self.C0[torch.arange(batch.m), torch.arange(batch.m)]), min=1.0
        )
        self.C0p = None
        self.tmax = self.h * steps

        def full(v):
            return torch.full((nb,), v, dtype=f64, device=dev)

        self.ok = torch.ones(nb, dtype=torch.bool, device=dev)
        self.drift, self.drift_p = full(0.0), full(0.0 if batch.readout else math.nan)
        self.cond, self.cond_mid = full(math.inf), full(math.inf)
        self.cond_up = full(math.nan if self.gd else math.inf)
        self.cond_t = full(0.0)
        self.rate_log, self.ratio_min, self.ratio_final = (
            full(math.inf),
            full(math.inf),
            full(math.nan),
        )
        self.decades = full(0.0)
        self.s0, self.s1, self.s2, self.sy, self.sty = (full(0.0) for _ in range(5))
        self.fail_step = torch.full((nb,), -1, dtype=torch.int64, device=dev)
        self.increased = torch.zeros(nb, dtype=torch.bool, device=dev)
        self.cum = full(math.nan if not self.gd else math.inf)
        self.prev_risk = None
        self.prev_g2 = None
        self.descent_ok = torch.ones(nb, dtype=torch.bool, device=dev)
        self.mono_ok = torch.ones(nb, dtype=torch.bool, device=dev)
        self.risk_last = full(math.nan)
        self.eps = torch.finfo(batch.dtype).eps
        if self.gd:
            # Same factor as dynamics.rates.gd_rate_factor (R6 b).
            c = consts.loss_factor
            rho = (
                c
                * self.h
                * batch.lambda_min
                / (consts.lam_max_C0 + c * self.h * consts.risk0)
            )
            self.log_contr = torch.log1p(-rho)
        self.keep = keep_path
        self.path_t, self.path_r, self.path_th = [], [], []

    def descent(self, k: int, ev: BatchEval) -> None:
        """GD: judge the step k-1 -> k (descent inequality, monotone risk)."""
        r = ev.risk.to(torch.float64) - self.batch.min_risk
        if self.prev_risk is not None:
            judged = r > self.floor
            allowance = 4.0 * self.eps * self.prev_risk
            fails = judged & (
                r > self.prev_risk - 0.5 * self.h * self.prev_g2 + allowance
            )
            new_fail = fails & self.descent_ok
            self.fail_step = torch.where(
                new_fail, torch.full_like(self.fail_step, k - 1), self.fail_step
            )
            self.descent_ok = self.descent_ok & ~fails
            up = judged & (r > self.prev_risk + allowance)
            self.increased = self.increased | up
            self.mono_ok = self.mono_ok & ~up
        g = ev.grad.to(torch.float64)
        self.prev_risk = r
        self.prev_g2 = sm.colsum(g * g)

    def record(self, k: int, theta: Tensor, ev: BatchEval) -> None:
        f64 = torch.float64
        b = self.batch
        t = self.h * k
        ok = ev.ok & self.ok
        self.ok = ok
        r = ev.risk.to(f64) - b.min_risk
        A, A_inv, M = ev.A, ev.A_inv, ev.M
        _, U, Bro = b.unpack(theta)
        C = (sm.gram(A) + sm.gram(U)).to(f64)
        dC = C - self.C0
        # -- conservation (flow) / growth of C (GD) ------------------------------------
        self.drift = torch.maximum(self.drift, sm.frob2(dC).sqrt() / self.C0_norm)
        if Bro is not None:
            Cp = (sm.matmul(sm.t(A), A) + sm.matmul(sm.t(Bro), Bro)).to(f64)
            if self.C0p is None:
                self.C0p = Cp
                self.C0p_norm = torch.clamp(sm.frob2(Cp).sqrt(), min=1.0)
            self.drift_p = torch.maximum(
                self.drift_p, sm.frob2(Cp - self.C0p).sqrt() / self.C0p_norm
            )
        # -- conditioning (R3) ---------------------------------------------------------
        sig_min2 = 1.0 / sm.sym_eig_max(sm.gram(A_inv)).to(f64)
        m_norm2 = sm.sym_eig_max(sm.gram(M)).to(f64)
        cond_ok = ok & (self.mono_ok if self.gd else True)
        marg = sig_min2 / self.c.cond_lower - 1.0
        better = cond_ok & (marg < self.cond)
        self.cond = torch.where(better, marg, self.cond)
        self.cond_t = torch.where(better, t, self.cond_t)
        mid = sig_min2 * (1.0 + m_norm2) / self.c.lam_min_C0 - 1.0
        self.cond_mid = torch.where(
            cond_ok, torch.minimum(self.cond_mid, mid), self.cond_mid
        )
        if not self.gd:
            up = 1.0 - sm.sym_eig_max(sm.gram(A)).to(f64) / self.c.lam_max_C0
            self.cond_up = torch.where(
                ok, torch.minimum(self.cond_up, up), self.cond_up
            )
        # -- rate (R4 / R6) ------------------------------------------------------------
        judged = ok & (r > self.floor) & (self.descent_ok if self.gd else True)
        safe_r = torch.where(r > 0, r, torch.ones_like(r))
        log_ratio = torch.log(safe_r / self.c.risk0)  # ln(R/R0) <= 0
        if self.gd:
            log_bound = self.log_contr * k
            meas = log_ratio / log_bound if k > 0 else None
        else:
            log_bound = -self.c.kappa * t
            meas = log_ratio / log_bound if k > 0 else None
        if meas is not None:
            # At t = 0 the bound holds with equality (margin 0 up to rounding), so the
            # pointwise margin is taken over t > 0.
            self.rate_log = torch.where(
                judged,
                torch.minimum(self.rate_log, log_bound - log_ratio),
                self.rate_log,
            )
            self.ratio_min = torch.where(
                judged, torch.minimum(self.ratio_min, meas), self.ratio_min
            )
            self.ratio_final = torch.where(judged, meas, self.ratio_final)
            self.decades = torch.where(
                judged, -log_ratio / math.log(10.0), self.decades
            )
        tau = t / self.tmax
        w = judged.to(f64)
        self.s0 = self.s0 + w
        self.s1 = self.s1 + w * tau
        self.s2 = self.s2 + w * tau * tau
        self.sy = self.sy + w * log_ratio
        self.sty = self.sty + w * tau * log_ratio
        if self.gd and k > 0:
            trd = sm.colsum(dC[torch.arange(b.m), torch.arange(b.m)])
            cm = (2.0 * self.h * (self.c.risk0 - r) - trd) / self.trC0
            self.cum = torch.where(
                ok & self.descent_ok, torch.minimum(self.cum, cm), self.cum
            )
        self.risk_last = torch.where(ok, r, self.risk_last)
        if self.keep:
            self.path_t.append(t.clone())
            self.path_r.append(ev.risk.to(f64).clone())
            self.path_th.append(theta.clone())

    def finish(self, midpoint_iters: int = 0) -> LinearRunStats:
        den = self.s0 * self.s2 - self.s1 * self.s1
        slope_tau = (self.s0 * self.sty - self.s1 * self.sy) / den
        bound_rate = (-self.log_contr / self.h) if self.gd else self.c.kappa
        fit = torch.where(
            (self.s0 >= 3) & (den > 0),
            -slope_tau / self.tmax / bound_rate,
            torch.full_like(den, math.nan),
        )
        nan = torch.full_like(self.cond, math.nan)

        def finite_or_nan(x):
            return torch.where(torch.isfinite(x), x, nan)

        return LinearRunStats(
            method=self.method,
            steps=self.steps,
            h=self.h,
            t_final=self.tmax,
            ok=self.ok,
            risk0=self.c.risk0,
            risk_final=self.risk_last,
            drift=self.drift,
            drift_readout=self.drift_p,
            cond_margin=finite_or_nan(self.cond),
            cond_margin_mid=finite_or_nan(self.cond_mid),
            cond_upper_margin=finite_or_nan(self.cond_up),
            cond_worst_t=self.cond_t,
            rate_log_margin=finite_or_nan(self.rate_log),
            rate_ratio_min=finite_or_nan(self.ratio_min),
            rate_ratio_final=self.ratio_final,
            rate_fit_ratio=fit,
            decades=self.decades,
            descent_fail_step=self.fail_step,
            risk_increased=self.increased,
            cumdrift_margin=finite_or_nan(self.cum),
            midpoint_iters=midpoint_iters,
        )

    def path(self):
        if not self.keep:
            return None, None, None
        return (
            torch.stack(self.path_t),
            torch.stack(self.path_r),
            torch.stack(self.path_th),
        )


def _per_instance(name: str, value, batch: BatchedMatrixDEQ) -> Tensor:
    v = torch.as_tensor(value, dtype=batch.dtype, device=batch.device)
    if v.ndim == 0:
        v = v.expand(batch.B).clone()
    if v.shape != (batch.B,):
        raise InvalidInputError(
            f"{name} must be a scalar or have shape ({batch.B},); got {tuple(v.shape)}"
        )
    if not (bool(torch.isfinite(v).all()) and bool((v > 0).all())):
        raise InvalidInputError(
            f"{name} must be positive and finite for every instance"
        )
    return v


def _check_common(batch, theta0, steps, record_every):
    if not isinstance(batch, BatchedMatrixDEQ):
        raise InvalidInputError("batch must be a BatchedMatrixDEQ")
    if theta0.shape != (batch.n_params, batch.B):
        raise InvalidInputError(
            f"theta0 must be ({batch.n_params}, {batch.B}) (batch "
            f"last, see BatchedMatrixDEQ.pack); got {tuple(theta0.shape)}"
        )
    positive_int("steps", steps, 0, error=InvalidInputError)
    positive_int("record_every", record_every, error=InvalidInputError)
    return theta0.to(device=batch.device, dtype=batch.dtype).clone()


def gradient_descent(
    batch: BatchedMatrixDEQ,
    theta0: Tensor,
    eta,
    steps: int,
    *,
    consts: RateConstants | None = None,
    record_every: int = 1,
    floor_rel: float | None = None,
    keep_path: bool = False,
) -> LinearRun:
    """``steps`` full-batch GD updates theta <- theta - eta_b grad R_b, all instances.

    Args:
        batch: the instances.
        theta0: (P, B) initial parameters (``batch.pack``).
        eta: learning rate, a scalar or one per instance (B,).
        steps: number of updates.
        consts: bound constants at theta0 (computed when None).
        record_every: evaluate the conditioning/drift trackers every this many steps
            (the descent inequality is checked at every step regardless).
        floor_rel: excess risks below floor_rel * R0 are not judged (default FLOOR_REL).
        keep_path: also return the recorded path (small batches only: O(K P B) memory).
    """
    theta = _check_common(batch, theta0, steps, record_every)
    eta_t = _per_instance("eta", eta, batch)
    consts = rate_constants(batch, theta) if consts is None else consts
    floor_rel = FLOOR_REL[batch.dtype] if floor_rel is None else floor_rel
    tr = _Tracker(batch, consts, eta_t, steps, "gd", floor_rel, keep_path)
    eta_b = eta_t[None, :]
    for k in range(steps + 1):
        ev = batch.evaluate(theta)
        tr.ok = tr.ok & ev.ok
        tr.descent(k, ev)
        if k % record_every == 0 or k == steps:
            tr.record(k, theta, ev)
        if k == steps:
            break
        step = eta_b * ev.grad
        theta = torch.where(tr.ok[None, :], theta - step, theta)
    times, risks, thetas = tr.path()
    return LinearRun(theta, tr.finish(), consts, times, risks, thetas)


def gradient_flow(
    batch: BatchedMatrixDEQ,
    theta0: Tensor,
    h,
    steps: int,
    *,
    integrator: str = "rk4",
    consts: RateConstants | None = None,
    record_every: int = 1,
    floor_rel: float | None = None,
    midpoint_tol: float | None = None,
    midpoint_max_iter: int = 60,
    keep_path: bool = False,
    progress: Callable[[int], None] | None = None,
) -> LinearRun:
    """Integrate d theta/dt = -grad R for all instances with a fixed per-instance step.

    Args:
        batch: the instances.
        theta0: (P, B) initial parameters.
        h: step, a scalar or one per instance (B,); instance b runs to t = steps * h_b.
        steps: number of steps.
        integrator: "rk4" (explicit, for speed: drift O(h^4)) or "midpoint" (implicit
            midpoint, conserves C and C' up to ``midpoint_tol``).
        consts: bound constants at theta0 (computed when None).
        record_every: evaluate the trackers every this many steps (and at the end).
        floor_rel: excess risks below floor_rel * R0 are not judged.
        midpoint_tol: stage-solve tolerance (default 4 * unit roundoff of the dtype).
        midpoint_max_iter: stage-solve iteration limit; instances that do not converge
            are marked not ``ok``.
        keep_path: also return the recorded path (small batches only).
        progress: called with the number of steps done, every record.
    """
    if integrator not in INTEGRATORS:
        raise InvalidInputError(
            f"unknown integrator {integrator!r}; choose one of {', '.join(INTEGRATORS)}"
        )
    theta = _check_common(batch, theta0, steps, record_every)
    h_t = _per_instance("h", h, batch)
    consts = rate_constants(batch, theta) if consts is None else consts
    floor_rel = FLOOR_REL[batch.dtype] if floor_rel is None else floor_rel
    tol = 4.0 * torch.finfo(batch.dtype).eps if midpoint_tol is None else midpoint_tol
    tr = _Tracker(batch, consts, h_t, steps, integrator, floor_rel, keep_path)

    def field(y):
        ev = batch.evaluate(y)
        return -ev.grad, ev

    iters = 0
    for k in range(steps + 1):
        ev = batch.evaluate(theta)
        if k % record_every == 0 or k == steps:
            tr.record(k, theta, ev)
            if progress is not None:
                progress(k)
        if k == steps:
            break
        f0 = -ev.grad
        if integrator == "rk4":
            new = rk4_step(field, theta, h_t, k1=f0)
        else:
            new, conv, it = implicit_midpoint_step(
                field, theta, h_t, f0, tol=tol, max_iter=midpoint_max_iter
            )
            iters = max(iters, it)
            tr.ok = tr.ok & conv
        good = tr.ok & torch.isfinite(new).all(0)
        tr.ok = good
        theta = torch.where(good[None, :], new, theta)
    times, risks, thetas = tr.path()
    return LinearRun(theta, tr.finish(iters), consts, times, risks, thetas)

"""Momentum and adaptive optimisers on the linear DEQs (LIN-MOM-DRIFT, LIN-MOM-SPHERE,
LIN-ADAM-COND): tolerances, the per-step identities evaluated on recorded runs, the
case streams, and the drift-scaling and conditioning studies that the P-MOM protocol
shares with the checks.

Every run goes through :func:`dynamics.optim.optimize`, which records, per step, the
incoming velocity ``p_k = theta_k - theta_{k-1}``, the gradient the step used (at the
lookahead for Nesterov) and the step ``Delta_k = theta_{k+1} - theta_k``; nothing is
recomputed here except the conserved quantities. The identities are derived in
``docs/momentum.md`` and certified by :mod:`proofs_check.symbolic.momentum`.

Matrix notation: ``Phi = [I - W, U]`` so ``C = Phi Phi^T``; a parameter-space vector
``x`` (a velocity, a step or a gradient) maps to ``[-x_W, x_U]`` (``I - W`` moves
opposite to ``W``); with a readout ``Psi = [I - W; B]``, ``C' = Psi^T Psi``.
"""

from __future__ import annotations

import numpy as np

from dynamics.instances import leg_model, leg_perturbation
from dynamics.models.base import LOSS_FACTOR
from dynamics.models.linear_deq import LinearDEQ
from dynamics.optim import HeavyBall, Nesterov, optimize

from ..catalogue import tol
from ..registry import Context
from .lin import matrix_cases, n_instances, scalar_cases
from .lin_gd import eta_grid

EPS = float(np.finfo(np.float64).eps)
#: LIN-MOM-DRIFT and LIN-MOM-SPHERE (monotonicity): a residual is judged against
#: TOL_ULPS * eps * (the sum of the magnitudes of the terms of the identity, plus the
#: first-order term eta <|theta - c|, |g|> that cancels only up to the rounding of the
#: gradient, times cond(I - W) in the matrix case, where the generator identity
#: G_W A^T = G_U U^T holds to cond(A) eps). 64 ulps covers the dozen roundings of one
#: step (update, two quantities, their difference) with a margin of 4.
TOL_ULPS = tol("LIN-MOM-DRIFT", "ulps")
#: LIN-MOM-SPHERE bound: relative slack allowed on Q_k <= Q_0 + 2 eta (1+mu)/(1-mu)^2
#: (R_0 - R_k), the same relative tolerance as LIN-GD-CUMDRIFT (1e-12).
TOL_BOUND = tol("LIN-MOM-SPHERE", "bound")
TOL_MONO_ULPS = tol("LIN-MOM-SPHERE", "mono-ulps")


def rel_point(model, theta: np.ndarray) -> np.ndarray:
    """theta - c with c = (0_d, 1) (scalar), or Phi = [I - W, U] (matrix)."""
    if isinstance(model, LinearDEQ):
        out = np.array(theta, float)
        out[-1] -= 1.0
        return out
    W, U, _ = model.unpack(theta)
    return np.hstack([np.eye(model.m) - W, U])


def phi_vec(model, x: np.ndarray) -> np.ndarray:
    """A parameter-space vector as a displacement of theta - c (scalar: itself) or
    of Phi (matrix: [-x_W, x_U])."""
    if isinstance(model, LinearDEQ):
        return np.asarray(x, float)
    W, U, _ = model.unpack(x)
    return np.hstack([-W, U])


def psi_vec(model, x: np.ndarray, point: bool = False) -> np.ndarray:
    """Readout block Psi = [I - W; B] of a point, or [-x_W; x_B] of a displacement."""
    W, _, B = model.unpack(x)
    return np.vstack([(np.eye(model.m) - W) if point else -W, B])


def _outer(a, b):
    return float(a @ b) if a.ndim == 1 else a @ b.T


def _outer_t(a, b):
    return a.T @ b


def _cond(model, theta) -> float:
    if isinstance(model, LinearDEQ):
        return 1.0
    return float(np.linalg.cond(model.A(theta)))


def predicted_change(model, method: str, mu: float, eta: float, pk, gk, dk, xk):
    """The exact one-step change of Q (scalar) or C (matrix), from the velocity p_k,
    the gradient g_k, the step Delta_k and the point theta_k - c (or Phi_k).

    Heavy ball: ||Delta||^2 + 2 mu P; Nesterov: eta^2 ||g||^2 + 2 mu P + mu^2 ||p||^2,
    with P = <theta_k - c, p_k> (matrix: D D^T + mu (P + P^T) ..., P = Phi_k V^T).
    Returns (prediction, scale of its terms for the rounding model).
    """
    p, g, d = phi_vec(model, pk), phi_vec(model, gk), phi_vec(model, dk)
    P = _outer(xk, p)
    if method == "heavy-ball":
        terms = [_outer(d, d), mu * (P + np.transpose(P))]
    else:
        terms = [
            eta**2 * _outer(g, g), mu * (P + np.transpose(P)), mu**2 * _outer(p, p)
        ]
    first = eta * float(np.abs(xk).ravel() @ np.abs(g).ravel())
    return sum(terms), sum(float(np.linalg.norm(t)) for t in terms) + 2.0 * first


def predicted_change_readout(model, method, mu, eta, pk, gk, dk, theta):
    """The C' = Psi^T Psi analogue of :func:`predicted_change` (readout models)."""
    p, g, d = psi_vec(model, pk), psi_vec(model, gk), psi_vec(model, dk)
    x = psi_vec(model, theta, point=True)
    P = _outer_t(x, p)
    if method == "heavy-ball":
        terms = [_outer_t(d, d), mu * (P + P.T)]
    else:
        terms = [eta**2 * _outer_t(g, g), mu * (P + P.T), mu**2 * _outer_t(p, p)]
    first = eta * float(np.abs(x).ravel() @ np.abs(g).ravel())
    return sum(terms), sum(float(np.linalg.norm(t)) for t in terms) + 2.0 * first


def _quantity(model, theta):
    if isinstance(model, LinearDEQ):
        return LinearDEQ.Q(theta)
    return model.C(theta)


@np.errstate(over="ignore", invalid="ignore")
def drift_ratios(model, traj, method: str) -> np.ndarray:
    """Per step: |measured change - predicted change| / (TOL_ULPS eps scale), the
    worst over C and C' (readout). <= 1 means the identity held within rounding.
    Needs ``record_every = 1``; steps whose values overflowed give NaN."""
    opt = traj.optimizer
    mu, eta = opt["mu"], opt["eta"]
    out = []
    for k in range(len(traj.thetas) - 1):
        a, b = traj.thetas[k], traj.thetas[k + 1]
        pk, gk, dk = traj.velocities[k], traj.grads[k], traj.steps_taken_from[k]
        qa, qb = _quantity(model, a), _quantity(model, b)
        pred, scale = predicted_change(
            model, method, mu, eta, pk, gk, dk, rel_point(model, a)
        )
        look = a + mu * pk if method == "nesterov" else a
        cond = _cond(model, look)
        res = np.max(np.abs(np.asarray(qb - qa - pred)))
        scale = np.linalg.norm(qa) + np.linalg.norm(qb) + cond * scale
        worst = res / (TOL_ULPS * EPS * scale)
        if not isinstance(model, LinearDEQ) and model.readout:
            ca, cb = model.C_readout(a), model.C_readout(b)
            pred2, s2 = predicted_change_readout(model, method, mu, eta, pk, gk, dk, a)
            res2 = np.max(np.abs(cb - ca - pred2))
            s2 = np.linalg.norm(ca) + np.linalg.norm(cb) + cond * s2
            worst = max(worst, res2 / (TOL_ULPS * EPS * s2))
        out.append(worst)
    return np.array(out)


@np.errstate(over="ignore", invalid="ignore")
def mono_ratios(model, traj) -> np.ndarray:
    """Per step: the decrease of Q (scalar) or -lambda_min(C_{k+1} - C_k) (matrix, and
    C' with readout), over TOL_MONO_ULPS eps (|Q_k| + |Q_{k+1}|) (Frobenius norms
    for C).
    <= 1 means non-decreasing within rounding."""
    out = []
    for k in range(len(traj.thetas) - 1):
        a, b = traj.thetas[k], traj.thetas[k + 1]
        if isinstance(model, LinearDEQ):
            qa, qb = LinearDEQ.Q(a), LinearDEQ.Q(b)
            out.append(max(0.0, qa - qb) / (TOL_MONO_ULPS * EPS * (qa + qb)))
            continue
        fns = (model.C, model.C_readout) if model.readout else (model.C,)
        v = 0.0
        for f in fns:
            ca, cb = f(a), f(b)
            dec = max(0.0, -np.linalg.eigvalsh(cb - ca)[0])
            scale = np.linalg.norm(ca) + np.linalg.norm(cb)
            v = max(v, dec / (TOL_MONO_ULPS * EPS * scale))
        out.append(v)
    return np.array(out)


def trace_quantity(model, thetas) -> np.ndarray:
    """Q_k (scalar) or tr C_k (matrix) along a run."""
    if isinstance(model, LinearDEQ):
        return np.array([LinearDEQ.Q(t) for t in thetas])
    return np.array([np.trace(model.C(t)) for t in thetas])


def hb_descent_prefix(traj) -> int:
    """Leading steps where the heavy-ball descent inequality held:
    V_{j+1} <= V_j - (1-mu)/(2 eta) ||Delta_j||^2 with V_j = R_j + mu/(2 eta)
    ||Delta_{j-1}||^2 (docs/momentum.md); the bound of LIN-MOM-SPHERE assumes it."""
    mu, eta = traj.optimizer["mu"], traj.optimizer["eta"]
    R = traj.risks
    sq = np.einsum("ij,ij->i", traj.velocities, traj.velocities)  # ||Delta_{j-1}||^2
    V = R + mu / (2.0 * eta) * sq
    K = len(R) - 1
    for j in range(K):
        need = V[j] - (1.0 - mu) / (2.0 * eta) * sq[j + 1]
        if not (np.isfinite(V[j + 1]) and V[j + 1] <= need):
            return j
    return K


def sphere_bound_slack(model, traj) -> tuple[float, int, float]:
    """Worst relative violation of Q_0 <= Q_k <= Q_0 + 2 eta (1+mu)/(1-mu)^2 (R_0-R_k)
    (matrix: tr C) on the heavy-ball descent prefix: (violation >= 0, steps judged,
    largest fraction (Q_k - Q_0) / (bound - Q_0) of the allowed drift used)."""
    mu, eta = traj.optimizer["mu"], traj.optimizer["eta"]
    P = hb_descent_prefix(traj)
    q = trace_quantity(model, traj.thetas[: P + 1])
    R = traj.risks
    worst, used = 0.0, 0.0
    for k in range(1, P + 1):
        allowed = 2.0 * eta * (1.0 + mu) / (1.0 - mu) ** 2 * (R[0] - R[k])
        scale = max(q[k], 1.0)
        worst = max(worst, (q[k] - q[0] - allowed) / scale, (q[0] - q[k]) / scale)
        if allowed > 0:
            used = max(used, (q[k] - q[0]) / allowed)
    return worst, P, used


def drift_constant(method: str, mu: float) -> float:
    """Leading-order final drift / (eta (R_0 - R_K)) as eta -> 0 (docs/momentum.md):
    (1+mu)/(1-mu)^2 for heavy ball, (1-mu+2mu^2)/(1-mu)^2 for Nesterov (1 for GD)."""
    if method == "heavy-ball":
        return (1.0 + mu) / (1.0 - mu) ** 2
    return (1.0 - mu + 2.0 * mu**2) / (1.0 - mu) ** 2


# ----------------------------------------------------------------- case streams


def momentum_cases(ctx: Context, tag: str, quick: int, full: int, steps=None):
    """(label, model, method, trajectory) over scalar (half near (0, 1)) and matrix
    instances (readout alternating), heavy ball and Nesterov, mu in [0, 0.95) and eta
    spread over two decades around the local curvature scale (some runs diverge)."""
    rng = ctx.rng(tag)
    steps = steps or (120 if ctx.full else 30)
    count = n_instances(ctx, quick, full)
    for label, model, th in [*scalar_cases(rng, count), *matrix_cases(rng, count)]:
        mu = float(rng.uniform(0.0, 0.95))
        eta = eta_grid(model, th, rng)
        for method, cls in (("heavy-ball", HeavyBall), ("nesterov", Nesterov)):
            with np.errstate(over="ignore", invalid="ignore"):
                traj = optimize(model, th, cls(eta, mu), steps)
            yield f"{label} {method} eta={eta:.2e} mu={mu:.2f}", model, method, traj


# ------------------------------------------------ studies (shared with P-MOM)
# The P-MOM protocol (:mod:`proofs_check.protocols.momentum`) runs these at the full
# sizes; LIN-MOM-SPHERE and LIN-ADAM-COND judge them at the profile's sizes.


#: Runs of the scaling study last 30 / eta_eff flow-time units (eta_eff = eta/(1-mu)),
#: long enough for R_K < 1e-15 R_0 on P-LEG, so that the radial velocity P_K = 0.
SCALING_TIME = 30.0


def momentum_classes() -> dict:
    """The two momentum methods, by the name rows and figures use."""
    return {"heavy-ball": HeavyBall, "nesterov": Nesterov}


#: The eta, mu grids of the scaling study (quick; the full profile and the
#: ``momentum`` protocol use FULL_ETAS, FULL_MUS).
QUICK_ETAS, QUICK_MUS = (2e-3, 4e-3, 8e-3), (0.0, 0.5, 0.9)
FULL_ETAS, FULL_MUS = (1e-3, 2e-3, 4e-3, 8e-3), (0.0, 0.5, 0.75, 0.9)


def scaling_table(etas, mus, history: int = 0) -> list[dict]:
    """Final drift Q_K - Q_0 on P-LEG (from rest at the P-LEG start) for a grid of eta
    and mu, heavy ball and Nesterov, against eta c(mu) (R_0 - R_K). With ``history``
    > 0 each row also keeps about that many (step, risk, Q) records and the final
    parameters at full precision."""
    model, th0 = leg_model(), leg_perturbation()
    rows = []
    for method, cls in momentum_classes().items():
        for mu in mus:
            for eta in etas:
                K = int(np.ceil(SCALING_TIME * (1.0 - mu) / eta))
                every = max(1, K // history) if history else K
                t = optimize(model, th0, cls(eta, mu), K, record_every=every)
                q, R = t.conserved, t.risks
                pred = drift_constant(method, mu) * eta * (R[0] - R[-1])
                row = {
                    "method": method,
                    "mu": mu,
                    "eta": eta,
                    "steps": K,
                    "result": t.result.value,
                    "drift": float(q[-1] - q[0]),
                    "predicted": float(pred),
                    "constant": drift_constant(method, mu),
                    "rel_dev": float((q[-1] - q[0]) / pred - 1.0),
                    "final_risk_ratio": float(R[-1] / R[0]),
                }
                if history:
                    row.update(
                        theta0=th0.tolist(),
                        theta_final=t.final.tolist(),
                        history={"step": t.steps.tolist(), "risk": R.tolist(),
                                 "Q": q.tolist()},
                    )
                rows.append(row)
    return rows


#: An explicit start on the P-LEG data (u0 = 0, v0 = 2): found by a grid search over
#: starts; it is run like every other case, its verdict is not assumed.
LEG_START = np.array([0.0, 2.0])


def cond_bound(model, th0) -> float:
    """LIN-COND's a-priori lower bound on |1 - v| or sigma_min(I - W) (from theta_0)."""
    R0 = model.risk(th0)
    if isinstance(model, LinearDEQ):
        bbar = np.linalg.norm(model.beta_star) + np.sqrt(R0 / model.lambda_min)
        return float(np.sqrt(LinearDEQ.Q(th0) / (1.0 + bbar**2)))
    Mbar = np.linalg.norm(model.M_star, 2) + np.sqrt(R0 / model.lambda_min)
    lam = np.linalg.eigvalsh(model.C(th0))[0]
    return float(np.sqrt(lam / (1.0 + Mbar**2)))


def gd_control_step(model, th0) -> float:
    """A tenth of the local curvature scale sigma_min(A0)^2 / (2 Lam (1 +
    ||M0||^2)): a GD step small enough that GD stays close to gradient flow (its
    total drift of Q is a few percent), the control the adaptive runs are compared
    with."""
    if isinstance(model, LinearDEQ):
        s2, mm = model.one_minus_v(th0) ** 2, float(np.sum(model.beta(th0) ** 2))
    else:
        s2 = float(np.linalg.svd(model.A(th0), compute_uv=False)[-1]) ** 2
        mm = float(np.linalg.norm(model.end_to_end(th0), 2)) ** 2
    return 0.1 * s2 / (LOSS_FACTOR * model.lambda_max * (1.0 + mm))

"""The claim catalogue of ``spec/claims.md``: one entry per stable claim ID.

This module is data. The checks that test each claim live in
:mod:`proofs_check.checks` and attach themselves to these IDs through
:func:`proofs_check.registry.check`; an ID without a check is reported
``not-implemented``.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Claim:
    id: str
    result: str          # R-number or spec section it realises
    statement: str       # formula in plain text
    kinds: tuple[str, ...]


def _c(id_, result, statement, *kinds):
    return Claim(id_, result, statement, tuple(kinds))


CLAIMS: tuple[Claim, ...] = (
    # Linear DEQ (deq_gradient_dynamics.md R1-R6)
    _c("LIN-GRAD", "§2.2-2.3", "grad_u R = g_beta/(1-v), d_v R = <g_beta, beta>/(1-v); matrix: "
       "grad_U = A^-T G, grad_W = A^-T G M^T, grad_B = G_out M^T", "numeric", "property"),
    _c("LIN-FACTOR", "R3", "Q = (1-v)^2 (1 + ||beta||^2); matrix: A A^T + U U^T = "
       "A (I + M M^T) A^T", "symbolic", "property"),
    _c("LIN-SYM-CONS", "R1", "for arbitrary smooth loss: <u, grad_u R> - (1-v) d_v R = 0; "
       "d/dt(A A^T + U U^T) = 0; with readout d/dt(A^T A + B^T B) = 0", "symbolic"),
    _c("LIN-SYM-GD", "R5", "Q(theta - eta grad R) - Q(theta) = eta^2 ||grad R||^2; "
       "matrix C_{k+1} - C_k = eta^2 (G_W G_W^T + G_U G_U^T) and the C' analogue",
       "symbolic"),
    _c("LIN-GF-CONS", "R1", "along gradient flow Q(t) = Q(0); matrix C(t) = C_0, and "
       "C'(t) = C'_0 with readout", "numeric", "property"),
    _c("LIN-SPHERE", "R2", "||theta(t) - (0,1)|| = r_0, |1-v(t)| <= r_0, ||u(t)|| <= r_0; "
       "matrix ||I-W||_F^2 + ||U||_F^2 = tr C_0", "numeric"),
    _c("LIN-COND", "R3", "|1-v(t)| = r_0/sqrt(1+||beta(t)||^2) >= r_0/sqrt(1+bbar^2), "
       "sign(1-v) constant; matrix sigma_min(I-W(t))^2 >= lambda_min(C_0)/(1+Mbar^2)",
       "numeric", "property"),
    _c("LIN-PL", "R4", "||grad R||^2 = (1+||beta||^2)(||g||^2 + <g,beta>^2)/Q >= "
       "4 lambda R / Q; matrix ||grad R||^2 >= 4 lambda R / lambda_max(C)", "property"),
    _c("LIN-GF-RATE", "R4", "R(t) <= R_0 exp(-4 lambda t / Q_0); matrix "
       "R(t) <= R_0 exp(-4 lambda t / lambda_max(C_0))", "numeric"),
    _c("LIN-GF-LIMIT", "R4", "theta(t) -> (beta* (1-v_inf), v_inf), 1-v_inf = "
       "sign(1-v_0) r_0 / sqrt(1+||beta*||^2)", "numeric"),
    _c("LIN-GD-DRIFT", "R5", "for any eta: Q_{k+1} - Q_k = eta^2 ||grad R_k||^2; matrix "
       "C_{k+1} - C_k = eta^2 (G_W G_W^T + G_U G_U^T)", "numeric", "property"),
    _c("LIN-GD-MONO", "R5", "||theta_k - (0,1)|| non-decreasing; matrix C_{k+1} >= C_k",
       "numeric", "property"),
    _c("LIN-GD-CUMDRIFT", "R5", "under the descent inequality Q_0 <= Q_k <= "
       "Q_0 + 2 eta (R_0 - R_k); matrix tr(C_k - C_0) <= 2 eta (R_0 - R_k)", "numeric"),
    _c("LIN-GD-RATE", "R6", "eta <= 1/ell => R_k <= (1 - 2 eta lambda/(Q_0 + 2 eta R_0))^k R_0;"
       " conditional matrix form with lambda_max(C_0)", "numeric", "property"),
    _c("LIN-GD-STEP", "R6, P2", "beyond the step-size condition GD near (0,1) can cross "
       "v = 1 or fail; with eta <= 1/ell it never crosses (P-SWEEP)", "benchmark"),
    # Linear DEQ under momentum and adaptive optimisers (docs/momentum.md)
    _c("LIN-MOM-DRIFT", "docs/momentum.md", "heavy ball D = mu p - eta g: Q_{k+1} - Q_k = "
       "||D||^2 + 2 mu P_k, P_{k+1} = mu P_k + ||D||^2 (P = <theta - c, p>), E = Q + "
       "2mu/(1-mu) P gains (1+mu)/(1-mu)||D||^2; Nesterov: Q_{k+1} - Q_k = eta^2 "
       "||g(y_k)||^2 + 2 mu P_k + mu^2 ||p_k||^2; matrix: same with C = Phi Phi^T, "
       "P = Phi V^T", "symbolic", "numeric"),
    _c("LIN-MOM-SPHERE", "docs/momentum.md", "heavy ball and Nesterov from rest, "
       "0 <= mu < 1, any eta: Q_k (C_k) non-decreasing; under the heavy-ball descent "
       "inequality Q_k <= Q_0 + 2 eta (1+mu)/(1-mu)^2 (R_0 - R_k); as eta -> 0 the final "
       "drift / (eta (R_0 - R_K)) -> (1+mu)/(1-mu)^2 (HB), (1-mu+2mu^2)/(1-mu)^2 "
       "(Nesterov)", "numeric"),
    _c("LIN-ADAM-COND", "docs/momentum.md", "Adam/RMSProp (checked against torch.optim) "
       "break the law at first order (|Q_1 - Q_0| = Theta(eta)); tested conjecture: the "
       "LIN-COND bound |1-v_k| >= r_0/sqrt(1+bbar^2) (matrix sigma_min(I-W_k)^2 >= "
       "lambda_min(C_0)/(1+Mbar^2)) survives along Adam/RMSProp runs whose risk never "
       "exceeds R_0", "numeric", "benchmark"),
    # Single-index DEQ (R7)
    _c("SIM-GRAD", "§2.4", "w_i = 2(f_i-y_i) s'(s_i)/(1 - v s'(s_i)), grad_u R = mean w_i x_i, "
       "d_v R = mean w_i f_i", "numeric", "property"),
    _c("SIM-FP", "§2.4, P4", "inside the guard y = s(<u,x> + v y) has a unique root; "
       "solver matches bracketed Brent", "property"),
    _c("SIM-HESS", "R7", "H* = (2/n) sum s'(z_i)^2 w_i w_i^T; lambda_min(H*) > 0 for "
       "non-affine s; H*(-xi, 1) = 0 for s = id", "numeric"),
    _c("SIM-EPS2", "R7", "s_eps(z) = z + eps tanh z: lambda_min(H*) = Theta(eps^2), with the "
       "Rayleigh upper bound", "numeric"),
    _c("SIM-NONCONS", "R7", "dQ/dt = -(2/n) sum w_i (s_i - s(s_i)); nonzero for non-affine s,"
       " zero for id, O(eps) for s_eps", "numeric", "property"),
    _c("SIM-LOCAL-RATE", "R7", "GD near theta* converges linearly with per-step risk ratio "
       "-> rho_lin^2, rho_lin = max |1 - eta lambda_i(H*)|", "numeric"),
    _c("SIM-MONO", "R7, P-WEAK", "under P-WEAK the training risk never increases", "numeric"),
    # Approximate backprop (§4)
    _c("APX-NEUMANN-FACTOR", "§4", "approximate gradient = c(v) x exact: Neumann-m 1-v^m, "
       "JFB 1-v, damped/phantom 1-(1-lambda(1-v))^m", "symbolic", "property"),
    _c("APX-STALL", "§4", "even-m Neumann stalls at v = -1 with positive risk when "
       "v_inf < -1; exact, JFB, odd-m, damped-2 converge (P-APX-LIN)", "numeric", "benchmark"),
    _c("APX-JFB", "§4", "grad_JFB = (1-v) grad R: descent on v < 1, ascent on v > 1; "
       "single-index JFB = exact at v = 0", "symbolic", "numeric"),
    _c("APX-LOCAL", "§4", "at theta* the Jacobian of each approximate direction is c_0 H*; "
       "local GD factor max |1 - c_0 eta lambda_i(H*)|", "numeric"),
    # Reversible DEQ (reversible_deq.md)
    _c("REV-INVERT", "§5", "one step then its algebraic inverse returns (y, z) up to "
       "rounding", "property"),
    _c("REV-EXACT", "§6", "reversible adjoint = gradient of the unrolled N-step map, for "
       "parameters and input", "numeric", "property"),
    _c("REV-FD", "§6", "reversible dL/dtheta matches central finite differences", "numeric"),
    _c("REV-MEMORY", "§7", "memory held for backward is independent of N; unrolled grows "
       "linearly", "benchmark"),
    _c("REV-NFE", "§3, §7", "forward NFE = 1 + 2N; backward 2N evaluations + 2N VJPs",
       "numeric"),
    _c("REV-SAME-FP", "§10.1", "for contractive f, (y_N, z_N) -> (z*, z*), the Picard fixed "
       "point", "numeric", "property"),
    _c("REV-RATE", "§10.2", "e_{n+1} <= (|1-beta| + beta L) e_n", "numeric", "property"),
    _c("REV-SHARP", "§10.3", "rotation A = L J: rho < 1 for beta < 2/(1+L), p(-1) = 0 at "
       "beta = 2/(1+L), rho > 1 beyond", "symbolic", "numeric"),
    _c("REV-SYM", "§10.4", "real |a| < 1: Jury conditions hold for every beta in (0, 2)",
       "symbolic", "property"),
    _c("REV-DET", "§10.5", "det M = (1-beta)^{2d}; hence rho(M) >= |1-beta|",
       "symbolic", "property"),
    _c("REV-RECON", "§6, §9", "reconstruction error is measured and reported; non-finite "
       "states give result nonfinite", "property"),
    _c("REV-IFT-APPROX", "§11", "IFT matches unrolled/reversible only at tight tolerance; "
       "differs at training tolerances", "numeric", "benchmark"),
    # Scale
    _c("SCALE-COND", "R3", "LIN-COND (b) on >= 1e4 batched trajectories: sigma_min(I-W(t))^2 "
       ">= lambda_min(C_0)/(1+Mbar^2)", "benchmark", "numeric"),
    _c("SCALE-RATE", "R4, R6", "LIN-GF-RATE and LIN-GD-RATE (b) on the same batch; "
       "distribution of measured-rate/bound", "benchmark"),
    # Conservation-law discovery (§7)
    _c("DISC-LIN", "§7", "discovery finds exactly the known laws of the linear DEQs "
       "(1; m(m+1)/2; m(m+1) with readout)", "symbolic", "numeric"),
    _c("DISC-DLN", "§7", "linear networks: counts sum r_i(r_i+1)/2", "numeric"),
    _c("DISC-SIM", "§7", "single-index DEQ with non-affine s: no law; s = id: exactly 1",
       "numeric"),
    # Reproduction records
    _c("REPRO-LEG", "§6.1-6.2", "P-LEG, P-SWEEP, P-SRC write per-run JSON and figures",
       "benchmark"),
    _c("REPRO-APX", "§6.3-6.4", "P-APX-LIN and P-APX-TANH write per-method JSON and plots",
       "benchmark"),
    _c("REPRO-WEAK", "§6.5", "P-WEAK writes per-eps JSON and its figures", "benchmark"),
)

CLAIM_IDS: tuple[str, ...] = tuple(c.id for c in CLAIMS)
BY_ID: dict[str, Claim] = {c.id: c for c in CLAIMS}

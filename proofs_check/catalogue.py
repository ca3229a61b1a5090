"""The claim catalogue: one entry per stable claim ID.

This module is data, and so are the tolerances: each claim carries its own
``tolerances`` (name -> :class:`Tolerance`, a value with the one-line rounding model,
finite-difference truncation or integrator order it comes from). Checks and tests read
them with :func:`tol`. The checks that test each claim live in
:mod:`proofs_check.checks` and attach themselves to these IDs through
:func:`proofs_check.registry.check`; an ID without a check is reported
``not-implemented``.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """A tolerance and why it has that size."""

    value: float
    reason: str


@dataclasses.dataclass(frozen=True)
class Claim:
    id: str
    result: str          # R-number or spec section it realises
    statement: str       # formula in plain text
    kinds: tuple[str, ...]
    tolerances: dict[str, Tolerance] = dataclasses.field(
        default_factory=dict, compare=False, hash=False
    )
    #: The sizes the claim is stated for (instances, steps, largest N, ...): a check
    #: that ran less reports ``reduced`` (allowed in the quick profile only).
    sizes: dict[str, int] = dataclasses.field(
        default_factory=dict, compare=False, hash=False
    )
    #: The paper the claim comes from (arXiv identifier).
    paper: str = ""


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
    _c("LIN-MOM-DRIFT", "M-HB, M-NAG", "heavy ball D = mu p - eta g: Q_{k+1} - Q_k = "
       "||D||^2 + 2 mu P_k, P_{k+1} = mu P_k + ||D||^2 (P = <theta - c, p>), E = Q + "
       "2mu/(1-mu) P gains (1+mu)/(1-mu)||D||^2; Nesterov: Q_{k+1} - Q_k = eta^2 "
       "||g(y_k)||^2 + 2 mu P_k + mu^2 ||p_k||^2; matrix: same with C = Phi Phi^T, "
       "P = Phi V^T", "symbolic", "numeric"),
    _c("LIN-MOM-SPHERE", "M-SPHERE, P-MOM", "heavy ball and Nesterov from rest, "
       "0 <= mu < 1, any eta: Q_k (C_k) non-decreasing; under the heavy-ball descent "
       "inequality Q_k <= Q_0 + 2 eta (1+mu)/(1-mu)^2 (R_0 - R_k); as eta -> 0 the final "
       "drift / (eta (R_0 - R_K)) -> (1+mu)/(1-mu)^2 (HB), (1-mu+2mu^2)/(1-mu)^2 "
       "(Nesterov)", "numeric"),
    _c("LIN-ADAM-COND", "M-ADAM, P-MOM", "Adam/RMSProp (checked against torch.optim) "
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
    _c("APX-COSINE", "§4, A.5", "cosine of each approximate gradient with the exact one: "
       "scalar linear DEQ cos = sign c(v), ||grad_m||/||grad R|| = |c(v)|; single-index "
       "grad_m = sum_i c(v s'(s_i)) e_i, so cos = 1 at v = 0, and for v != 0 "
       "sign(c_mid) cos >= sqrt(1 - rho^2), rho = delta S/(|c_mid| ||grad R|| - delta S) "
       "(c_mid, delta: midpoint and half-spread of c over the samples, S = sum ||e_i||); "
       "strictly below 1 in general there", "numeric"),
    # Reversible DEQ (reversible_deq.md)
    _c("REV-INVERT", "§5", "one step then its algebraic inverse returns (y, z) up to "
       "rounding", "property"),
    _c("REV-EXACT", "§6", "reversible adjoint = gradient of the unrolled N-step map (any f, "
       "any N, converged or not), for parameters and input, up to the rounding of the "
       "backward reconstruction: float64, for every N <= 30, "
       "rel <= C eps64 A_N with C = 100 and A_N the product, along the forward "
       "trajectory, of the norms of the inverse step's Jacobian (computed, not fitted); "
       "the reconstruction divides by 1 - beta at every step, so its rounding may grow "
       "geometrically in N; and rel <= 1e-8 for N <= 10. Measured: the fixed 1e-8 has "
       "no rounding model and fails at seed 12 (L = 0.9, beta = 1.2, N = 10: rel = "
       "1.54e-8 while C eps A_N = 7.0), so the claim as written is false there and the "
       "check says fail. E-UNIT: the reversible gradient within atol 1e-5 (the "
       "authors') and its rounding model; implicit and phantom gradients, which are not "
       "exact, within 2 x their computed first-order truncation (atol 1e-5 reported; "
       "seed 1 pair phantom 1.31e-5, predicted 1.33e-5)", "numeric", "property"),
    _c("REV-FD", "§6", "reversible dL/dtheta matches central finite differences (step "
       "1e-6) of L(z_N) on E-TOY, N in {10, 20}, beta in {0.5, 0.8, 1.2}, L in "
       "{0.5, 0.9}: rel <= 1e-6 (FD) + C eps64 A_N (the REV-EXACT bound of the same "
       "run)", "numeric"),
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
    _c("REV-IFT-APPROX", "§11", "IFT matches unrolled/reversible only at tight tolerance "
       "(forward and adjoint to 1e-8: within 2 x the computed first-order truncation "
       "of the forward solve; the fixed rel 1e-6 failed at seed 14, where the "
       "prediction itself is 5.4e-6); differs at training tolerances", "numeric",
       "benchmark"),
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

#: float64 tolerances, one row each: (claim, name, value, why that size). eps = 2.2e-16;
#: "a few ulps x cond" is the rounding of a short closed-form computation whose
#: condition number is at most about 1e3.
_TOLERANCE_ROWS: tuple[tuple[str, str, float, str], ...] = (
    ("LIN-GRAD", "autograd", 1e-12, "two float64 evaluations of the same closed form: a few ulps x cond(I - W) <= 1e3"),
    ("LIN-GRAD", "fd", 1e-7, "central FD, step eps^(1/3): truncation + rounding ~ eps^(2/3) = 4e-11 times the third derivative scale"),
    ("LIN-FACTOR", "numeric", 1e-12, "identity of products of O(1) matrices: a few ulps x cond"),
    ("LIN-PL", "identity", 1e-12, "algebraic identity, a few ulps x cond"),
    ("LIN-PL", "inequality", 1e-12, "relative slack of an inequality whose two sides are computed by different roundings"),
    ("LIN-GF-CONS", "dop853", 1e-9, "DOP853 (order 8) at rtol 1e-12 accumulates drift ~ rtol x steps"),
    ("LIN-GF-CONS", "stage", 1e-14, "stage-solve tolerance of the implicit Gauss rules"),
    ("LIN-GF-CONS", "implicit-factor", 10.0, "Gauss rules conserve quadratic laws exactly, so drift <= 10 x the stage-solve tolerance"),
    ("LIN-COND", "bound", 1e-9, "DOP853 trajectory error ~ 1e-9 relative on sigma_min^2"),
    ("LIN-GF-RATE", "envelope", 1e-8, "DOP853 at rtol 1e-12 over a flow reaching R = 1e-12 R0: relative error of R(t) amplified by the ratio R0/R(t) up to 1e4"),
    ("LIN-GF-LIMIT", "limit", 1e-7, "||theta(T) - theta_inf|| ~ sqrt(R(T)) = 1e-7 once R(T) <= 1e-14"),
    ("LIN-GD-DRIFT", "drift", 1e-12, "one GD step in float64: a few ulps x max(Q, 1) per step"),
    ("LIN-GD-MONO", "mono", 1e-12, "the authors' own assertion uses -1e-12; one step's rounding of ||theta - (0,1)||"),
    ("LIN-GD-CUMDRIFT", "cumdrift", 1e-12, "relative slack of a sum of per-step identities, each exact up to a few ulps"),
    ("LIN-GD-RATE", "envelope", 1e-9, "float64 GD: per-step rounding ~ eps x k accumulated over <= 1e5 steps, relative to R_k (tighter than LIN-GF-RATE: no integrator error)"),
    ("LIN-GD-STEP", "delta", 1e-9, "R6 floor |1-v_k| >= delta is attained exactly in d = 1, so only rounding over the control run (~eps x 1e4 steps) may cross it"),
    ("LIN-MOM-DRIFT", "ulps", 64.0, "residual / (eps x (sum of the magnitudes of the identity's terms + eta <|theta - c|, |g|> x cond(I - W))): a dozen roundings per step, margin 4"),
    ("LIN-MOM-SPHERE", "mono-ulps", 64.0, "decrease of Q (or -lambda_min(C_{k+1} - C_k)) over eps (|Q_k| + |Q_{k+1}|): the rounding of two sums of squares"),
    ("LIN-MOM-SPHERE", "bound", 1e-12, "relative slack of a sum of per-step identities, each exact up to a few ulps (as LIN-GD-CUMDRIFT)"),
    ("LIN-MOM-SPHERE", "scaling", 0.05, "the eta -> 0 drift constant has an O(eta) correction: 0.03 % (heavy ball) to 3.2 % (Nesterov, mu = 0.9) at eta = 2e-3"),
    ("LIN-ADAM-COND", "oracle", 200 * 1e3 * 2.220446049250313e-16, "engine vs torch.optim over 200 steps: a few ulps per step amplified at most 1e3 along a converging run"),
    ("LIN-ADAM-COND", "slope", 0.05, "log-log slope of |Q_1 - Q_0| in eta judged where the eta^2 term is < 1 % of the first-order term"),
    ("LIN-ADAM-COND", "bound", 1e-9, "LIN-COND margin (claims.md): min_k scale/bound >= 1 - 1e-9"),
    ("SIM-GRAD", "fd", 1e-7, "central FD, step eps^(1/3) x max(1, |theta|): eps^(2/3) x curvature"),
    ("SIM-GRAD", "autograd", 1e-10, "autograd through a Newton solve to residual 1e-13, amplified by 1/(1 - v s') <= 1e3"),
    ("SIM-FP", "brent", 1e-12, "both roots solved to residual 1e-13; absolute"),
    ("SIM-HESS", "torch", 1e-10, "torch.func.hessian through the root solve at residual 1e-13, amplified by 1/(1 - v s')"),
    ("SIM-HESS", "fd", 1e-6, "FD of an analytic gradient, step eps^(1/3): eps^(2/3) x third derivative"),
    ("SIM-HESS", "at-target", 1e-12, "the closed-form H* at theta* against the model's Hessian there: same formula, a few ulps x cond"),
    ("SIM-HESS", "null", 1e-10, "identity activation: H* (-xi, 1) vanishes up to root-solve residual x ||H*||"),
    ("SIM-EPS2", "bound", 1e-12, "Rayleigh quotient against an eigenvalue: a few ulps x cond"),
    ("SIM-NONCONS", "formula", 1e-10, "closed form against <grad Q, -grad R>, both through the root solve at residual 1e-13"),
    ("APX-NEUMANN-FACTOR", "drift-ulps", 64.0, "one approximate GD step: |(Q_k+1 - Q_k) - eta^2 c^2 |grad R|^2| / (eps (|Q_k| + |Q_k+1| + |pred|) max(1, 1/|1 - v|)): a dozen roundings of quantities of those sizes, the gradient through 1/(1 - v); measured <= 26 at seeds 0-15"),
    ("APX-NEUMANN-FACTOR", "identity", 1e-12, "c(v) x exact against the method's own direction: a few ulps x cond"),
    ("REV-FD", "fd", 1e-6, "central FD, step 1e-6, of an O(1) loss: truncation h^2 ~ 1e-12 and rounding eps/h ~ 2e-10, times the unrolled map's conditioning"),
    ("REV-SAME-FP", "fixed-point", 1e-10, "Picard iterated to 1e-12 (N >= log(1e-12)/log(rate) + 2 steps); 100x for the reversible pair's rounding over N steps"),
    ("REV-SAME-FP", "drift", 1e-13, "one forward step at the Picard fixed point moves it by a few ulps x ||z*||"),
    ("REV-RATE", "slack", 1e-9, "ratio of consecutive float64 error norms, judged only while the errors are far above rounding"),
    ("REV-IFT-APPROX", "unit-C", 2.0, "E-UNIT: |g_method - g_unrolled| <= 2 x the computed first-order truncation (offset of the unrolled iterates from z_K, the series tail beyond K steps, the adjoint solve's residual, phantom's damped steps; ReLU maps are piecewise linear in z) + rounding; measured err/prediction 0.3-1.01 at seeds 0-15"),
    ("REV-IFT-APPROX", "round-ulps", 64.0, "E-UNIT rounding floor: 64 eps x (differentiated steps + 1) x max(1, |g|), a few roundings per step of cond-1 maps"),
    ("REV-EXACT", "unit-C", 2.0, "E-UNIT: |g_method - g_unrolled| <= 2 x the computed first-order truncation (offset of the unrolled iterates from z_K, the series tail beyond K steps, the adjoint solve's residual, phantom's damped steps; ReLU maps are piecewise linear in z) + rounding; measured err/prediction 0.3-1.01 at seeds 0-15"),
    ("REV-EXACT", "tight-rel", 1e-8, "the claim as written: rel <= 1e-8 for N <= 10 on E-TOY; it has no rounding model (C eps A_N reaches 7.0 at N = 10) and fails at seed 12 (1.54e-8): reported as a fail, not dropped"),
    ("REV-EXACT", "unit-atol", 1e-5, "E-UNIT: the authors' test atol, binding the exact (reversible) gradient together with its rounding model (the stricter is judged)"),
    ("REV-EXACT", "round-ulps", 64.0, "E-UNIT rounding floor: 64 eps x (differentiated steps + 1) x max(1, |g|), a few roundings per step of cond-1 maps"),
    ("REV-IFT-APPROX", "reversible-own", 1e-10, "reversible gradient against autograd through its own unrolled steps: a few ulps x N"),
    ("APX-COSINE", "identity", 1e-12, "cosines and norm ratios of two float64 vectors, one a scalar (or per-sample) multiple of the other computed by another formula: a few ulps x 1/(1-v)^2 <= 1e2"),
    ("APX-COSINE", "bound", 1e-12, "absolute slack of cos >= sqrt(1 - rho^2): both sides O(1), each rounded to a few ulps x the 1e2 conditioning of the per-sample terms"),
    ("APX-LOCAL", "fd", 1e-6, "central FD Jacobian, step eps^(1/3): eps^(2/3) x third derivative of the direction"),
    ("REPRO-LEG", "src-theta-digits", 10.0, "P-SRC engine vs reference, digits of theta: roots to residual 1e-13 move each GD step by lr x 1e-13 and contracting runs do not amplify it (~13 digits expected)"),
    ("REPRO-LEG", "src-loss-rel", 1e-10, "P-SRC losses: |dL| <= this x (L + 2 sqrt(L) max|y|), ten digits of the loss or of the predictions it is built from"),
    ("REPRO-LEG", "src-brent", 4.2e-12, "SciPy brentq defaults the scripts use (xtol 2e-12 + rtol 4 eps |y|, |y| <= 10) plus the engine's 1e-13, times 2"),
    ("LIN-GF-RATE", "tight-family", 1e-4, "the family A0 = I, U0 = 1e-3 along e_min, M* = 0 attains R4 up to O(eps^2) = 1e-6, plus the integrator's error of ln R over the window"),
    ("LIN-GD-RATE", "smoothness", 1e-12, "||Hessian||_2 and ell are float64 closed forms: a few ulps x cond <= 1e3, relative"),
    ("SCALE-RATE", "constants", 1e-10, "batched torch eigvalsh against NumPy closed forms of one instance: a few ulps x cond(C0) <= 1e3"),
    ("SCALE-RATE", "tight-family", 1e-4, "the tight family attains R4 up to O(eps^2) = 1e-6; RK4 at kappa h = 0.04 adds O(h^4) to ln R"),
    ("DISC-LIN", "eval-cond", 1e3, "rounding model of the rank rule (dynamics.lie.noise_floor): each entry of a unit-normalised field row carries error <= 1e3 eps (a few ulps x cond <= 1e3 of the inverses the maps and their nested derivatives go through), so no singular value moves by more than tau = (sqrt(q D) 1e3 + max(q, D)) eps (Weyl); dropped values must be <= tau (measured <= 3 eps at seeds 0-15)"),
    ("DISC-LIN", "clear-factor", 1e3, "a kept normalised singular value must be >= 1e3 tau: rounding 1e3 times worse than the model could still not produce it (replaces the fixed gap 1e6, which had no rounding model)"),
    ("DISC-DLN", "eval-cond", 1e3, "rounding model of the rank rule (dynamics.lie.noise_floor): each entry of a unit-normalised field row carries error <= 1e3 eps (a few ulps x cond <= 1e3 of the inverses the maps and their nested derivatives go through), so no singular value moves by more than tau = (sqrt(q D) 1e3 + max(q, D)) eps (Weyl); dropped values must be <= tau (measured <= 3 eps at seeds 0-15)"),
    ("DISC-DLN", "clear-factor", 1e3, "a kept normalised singular value must be >= 1e3 tau: rounding 1e3 times worse than the model could still not produce it (replaces the fixed gap 1e6, which had no rounding model)"),
    ("DISC-SIM", "eval-cond", 1e3, "rounding model of the rank rule (dynamics.lie.noise_floor): each entry of a unit-normalised field row carries error <= 1e3 eps (a few ulps x cond <= 1e3 of the inverses the maps and their nested derivatives go through), so no singular value moves by more than tau = (sqrt(q D) 1e3 + max(q, D)) eps (Weyl); dropped values must be <= tau (measured <= 3 eps at seeds 0-15)"),
    ("DISC-SIM", "clear-factor", 1e3, "a kept normalised singular value must be >= 1e3 tau: rounding 1e3 times worse than the model could still not produce it (replaces the fixed gap 1e6 and the cutoffs 1e-4 kept / 1e-12 dropped, which had no rounding model)"),
    ("REPRO-APX", "replay", 1e-12, "one GD step recomputed in float64 from the same theta_k: a few ulps x 1/(1-v)^2 <= 1e2"),
)
#: Stated sizes, one row each: (claim, name, size, where it is stated). A check
#: reports what it ran in ``CheckResult.ran`` under the same name, and the registry
#: marks the row ``reduced`` when it ran less.
_SIZE_ROWS: tuple[tuple[str, str, int, str], ...] = (
    ("SCALE-COND", "instances", 10_000, "the claim: LIN-COND on >= 1e4 batched trajectories"),
    ("SCALE-RATE", "instances", 10_000, "the same batch as SCALE-COND"),
    ("SIM-MONO", "updates", 60_000, "P-WEAK: 60000 GD updates per run"),
    ("SIM-MONO", "seeds", 5, "P-WEAK: every protocol seed (1729-1733)"),
    ("REV-EXACT", "max_N", 30, "the amended claim: the C eps A_N bound for every N <= 30"),
    ("REV-FD", "max_N", 20, "N in {10, 20} at every (beta, L)"),
)
_SIZES: dict[str, dict[str, int]] = {}
for _cid, _name, _size, _where in _SIZE_ROWS:
    _SIZES.setdefault(_cid, {})[_name] = _size

#: Linear-DEQ and single-index claims come from the gradient-dynamics paper, REV-*
#: from the reversible-DEQ paper.
PAPERS = {
    "dynamics": "arXiv:2511.16976",
    "reversible": "arXiv:2509.12917",
}


def _paper(cid: str) -> str:
    return PAPERS["reversible" if cid.startswith("REV-") else "dynamics"]


_TOLERANCES: dict[str, dict[str, Tolerance]] = {}
for _cid, _name, _value, _reason in _TOLERANCE_ROWS:
    _TOLERANCES.setdefault(_cid, {})[_name] = Tolerance(_value, _reason)

CLAIMS = tuple(
    dataclasses.replace(
        c,
        tolerances=_TOLERANCES.get(c.id, {}),
        sizes=_SIZES.get(c.id, {}),
        paper=_paper(c.id),
    )
    for c in CLAIMS
)
CLAIM_IDS: tuple[str, ...] = tuple(c.id for c in CLAIMS)
BY_ID: dict[str, Claim] = {c.id: c for c in CLAIMS}
if set(_TOLERANCES) - set(CLAIM_IDS):  # pragma: no cover - a typo in the table above
    raise KeyError(f"tolerances for unknown claims {set(_TOLERANCES) - set(CLAIM_IDS)}")
if set(_SIZES) - set(CLAIM_IDS):  # pragma: no cover - a typo in the table above
    raise KeyError(f"sizes for unknown claims {set(_SIZES) - set(CLAIM_IDS)}")


def tol(claim_id: str, name: str) -> float:
    """The tolerance ``name`` of claim ``claim_id`` (see its ``tolerances``)."""
    return BY_ID[claim_id].tolerances[name].value

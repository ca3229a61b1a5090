"""Conservation-law discovery checks: DISC-LIN, DISC-DLN, DISC-SIM
(docs/theory/discovery.md).

``lie-rank`` parts (numeric): the count D - dim Lie must equal the spec table for every
shape, each rank decision must have a singular-value gap >= 1e6 that agrees at every
point, and every bracket level must match finite differences. Margin: the smallest
log10(gap / 1e6) over the shapes (>= 0 passes), or -1 when a count is wrong.
``poly-laws`` (DISC-LIN, exact): the degree-2 polynomial search returns exactly the
span of the known laws, every law verified symbolically, as many functionally
independent laws as the expected count.
"""

from __future__ import annotations

import math

from dynamics.lie import GAP_MIN

from ..discovery import FD_TOL, Discovery, discover, maps, polynomial_laws
from ..registry import CheckResult, Context, check, judged

#: DISC-SIM: smallest normalised singular value required of a nonlinear sigma's
#: generators, and largest allowed for the dropped direction with sigma = id
#: (claims.md).
SIM_MIN_KEPT = 1e-4
SIM_MAX_DROPPED = 1e-12

MATRIX_QUICK = ((2, 1), (2, 2), (2, 3))
MATRIX_FULL = tuple((m, d) for m in (2, 3) for d in (1, 2, 3))
READOUT_QUICK = ((1, 2, 2), (2, 1, 2), (2, 2, 1))
READOUT_FULL = (
    (1, 2, 2),
    (1, 2, 1),
    (1, 1, 2),
    (2, 2, 1),
    (2, 1, 2),
    (2, 2, 2),
    (2, 3, 3),
    (2, 1, 3),
    (3, 2, 2),
    (3, 1, 2),
    (3, 3, 1),
    (3, 3, 3),
)
NETS = ((2, 2, 2), (3, 2, 2), (2, 3, 2), (2, 2, 2, 2))
SIM_ACTS_QUICK = ("tanh", "sigmoid", "sigma_eps:1/4", "identity")
SIM_ACTS_FULL = ("tanh", "sigmoid", "sigma_eps:1/4", "sigma_eps:1/2", "identity")


def _case(r: Discovery) -> dict:
    L = r.lie
    return {
        "model": r.model,
        "D": r.n_params,
        "laws": L.n_laws,
        "expected": r.expected_laws,
        "ranks_by_level": list(L.ranks_by_level),
        "levels": L.levels,
        "gap": L.gap,
        "min_kept_sv": L.min_kept_sv,
        "max_dropped_sv": L.max_dropped_sv,
        "clear": L.clear,
        "fd_errors": list(r.fd_errors),
        "seconds": round(r.seconds, 3),
    }


def _judge(results: list[Discovery], extra_ok=lambda r: (True, "")) -> CheckResult:
    bad, margins = [], []
    for r in results:
        ok_extra, why = extra_ok(r)
        problems = []
        if r.n_laws != r.expected_laws:
            problems.append(f"{r.n_laws} laws, expected {r.expected_laws}")
        if not r.lie.clear:
            problems.append(
                "a rank decision had a small gap or disagreed across points"
            )
        if not r.fd_ok:
            problems.append(f"bracket vs FD error {max(r.fd_errors):.1e} > {FD_TOL:g}")
        if not ok_extra:
            problems.append(why)
        if problems:
            bad.append(f"{r.model}: " + "; ".join(problems))
        margins.append(-1.0 if problems else math.log10(r.lie.gap / GAP_MIN))
    return judged(
        not bad,
        measured=min(r.lie.gap for r in results),
        predicted=GAP_MIN,
        worst_margin=min(margins),
        tolerance=GAP_MIN,
        instances=len(results),
        reason="; ".join(bad),
        details={
            "cases": [_case(r) for r in results],
            "margin": "min log10(gap / 1e6); -1 if a count is wrong",
            "fd_tolerance": FD_TOL,
        },
    )


def _run(ctx: Context, models, tag: str) -> list[Discovery]:
    seed = int(ctx.rng(tag).integers(2**31))
    return [discover(m, degree=None, points=3, seed=seed) for m in models]


@check("DISC-LIN", part="lie-rank", kind="numeric")
def disc_lin_rank(ctx: Context) -> CheckResult:
    models = [maps.scalar_linear(d) for d in (1, 2, 3)]
    models += [
        maps.matrix_linear(m, d) for m, d in (MATRIX_FULL if ctx.full else MATRIX_QUICK)
    ]
    models += [
        maps.matrix_linear_readout(*s)
        for s in (READOUT_FULL if ctx.full else READOUT_QUICK)
    ]
    return _judge(_run(ctx, models, "DISC-LIN"))


@check("DISC-LIN", part="poly-laws", kind="symbolic")
def disc_lin_poly(ctx: Context) -> CheckResult:
    models = [maps.scalar_linear(d) for d in (1, 2, 3)]
    models += [maps.matrix_linear(2, d) for d in ((1, 2, 3) if ctx.full else (1, 2))]
    models += [
        maps.matrix_linear_readout(*s)
        for s in (
            ((1, 2, 2), (2, 1, 2), (2, 2, 1), (2, 2, 2), (2, 1, 3))
            if ctx.full
            else ((1, 2, 2), (2, 1, 2))
        )
    ]
    if ctx.full:
        models += [maps.matrix_linear(3, 1), maps.matrix_linear(3, 2)]
    seed = int(ctx.rng("DISC-LIN-poly").integers(2**31))
    cases, bad = [], []
    for m in models:
        P = polynomial_laws(m, degree=2, seed=seed)
        ok = (
            P.verified
            and P.known_span_equal is True
            and P.functionally_independent == len(P.laws) == m.expected_laws
        )
        if not ok:
            bad.append(
                f"{m.name}: {len(P.laws)} laws (expected {m.expected_laws}), "
                f"verified {P.verified}, span equal {P.known_span_equal}, "
                f"independent {P.functionally_independent}"
            )
        cases.append(
            {
                "model": m.name,
                "laws": [str(h) for h in P.laws],
                "verified": P.verified,
                "known_span_equal": P.known_span_equal,
                "functionally_independent": P.functionally_independent,
                "expected": m.expected_laws,
                "monomials": P.n_monomials,
                "points": P.n_points,
                "seconds": round(P.seconds, 3),
            }
        )
    return judged(
        not bad,
        measured=float(len(bad)),
        predicted=0.0,
        worst_margin=0.0 if not bad else -float(len(bad)),
        tolerance=0.0,
        instances=len(models),
        reason="; ".join(bad),
        details={
            "cases": cases,
            "margin": "0 when every search is exact "
            "and equals the known span; minus the number of failures",
        },
    )


@check("DISC-DLN", part="lie-rank", kind="numeric")
def disc_dln_rank(ctx: Context) -> CheckResult:
    return _judge(_run(ctx, [maps.linear_net(w) for w in NETS], "DISC-DLN"))


@check("DISC-SIM", part="lie-rank", kind="numeric")
def disc_sim_rank(ctx: Context) -> CheckResult:
    acts = SIM_ACTS_FULL if ctx.full else SIM_ACTS_QUICK
    dims = (1, 2, 3) if ctx.full else (1, 2)
    seed = int(ctx.rng("DISC-SIM-probes").integers(2**31))
    models = [maps.single_index(d, a, seed=seed + d) for d in dims for a in acts]

    def extra(r: Discovery):
        if "identity" in r.model:
            ok = r.lie.max_dropped_sv <= SIM_MAX_DROPPED
            return (
                ok,
                f"dropped singular value {r.lie.max_dropped_sv:.1e} > "
                f"{SIM_MAX_DROPPED:g}",
            )
        ok = r.lie.min_kept_sv >= SIM_MIN_KEPT
        return ok, f"smallest singular value {r.lie.min_kept_sv:.1e} < {SIM_MIN_KEPT:g}"

    return _judge(_run(ctx, models, "DISC-SIM"), extra)

"""Symbolic certificates as claim checks (part ``symbolic`` of each certified claim).

A part passes only when every certificate of the claim reduced exactly to 0 with all
its side conditions proven. The margin is 0 for a pass and minus the number of failed
certificates otherwise. Claims whose certificates derive a gradient also require the
lambdified gradient to agree with the numeric engine (:mod:`..symbolic.consistency`),
so that the two models cannot drift apart.
"""

from __future__ import annotations

from ..registry import CheckResult, Context, check, judged
from ..symbolic import CATALOGUE, certificates, consistency


def _consistency(ctx: Context, claim_id: str) -> list[consistency.Agreement]:
    rng = ctx.rng(f"{claim_id}-consistency")
    if claim_id == "LIN-SYM-CONS":
        out = [
            consistency.scalar_linear(rng, d) for d in ((1, 2, 3) if ctx.full else (2,))
        ]
        # The readout case exercises every general-shape gradient (W, U and B).
        out.append(consistency.matrix_general(rng, 2, 2, 3))
        if ctx.full:
            out += [
                consistency.matrix_general(rng, 2, 3, None),
                consistency.matrix_general(rng, 3, 2, None),
                consistency.matrix_general(rng, 3, 1, 2),
                consistency.matrix_explicit(rng, 2, 1, 1),
            ]
        out.append(consistency.matrix_explicit(rng, 2, 1, None))
        return out
    if claim_id == "SIM-NONCONS":
        shapes = ((1, 2), (2, 3), (3, 4)) if ctx.full else ((2, 3),)
        return [consistency.single_index_gradient(rng, d, n) for d, n in shapes]
    if claim_id == "SIM-HESS":
        return [
            consistency.single_index_hessian(rng, d, n)
            for d, n in (((1, 2), (2, 3)) if ctx.full else ((1, 2),))
        ]
    if claim_id == "APX-NEUMANN-FACTOR":
        return [consistency.backprop_factors(rng)]
    return []


def _run(ctx: Context, claim_id: str) -> CheckResult:
    certs = certificates(claim_id, full=ctx.full)
    agreements = _consistency(ctx, claim_id)
    failed = [c for c in certs if not c.passed]
    drift = [a for a in agreements if not a.passed]
    reason = ""
    if failed:
        reason = "; ".join(
            f"{c.name} ({c.shapes}): residual {c.residual[:120]}" for c in failed
        )
    if drift:
        reason += ("; " if reason else "") + "; ".join(
            f"{a.name} ({a.shapes}) disagrees by {a.max_rel_err:.2e}" for a in drift
        )
    details = {
        "certificates": [
            {
                "name": c.name,
                "shapes": c.shapes,
                "model": c.model,
                "passed": c.passed,
                "residual": c.residual,
                "seconds": round(c.seconds, 3),
                "conditions": [
                    {"statement": s, "proven": ok} for s, ok in c.conditions
                ],
                "sympy": c.sympy_version,
            }
            for c in certs
        ],
        "consistency": [
            {
                "name": a.name,
                "shapes": a.shapes,
                "points": a.points,
                "max_rel_err": a.max_rel_err,
                "tolerance": consistency.CONSISTENCY_TOL,
            }
            for a in agreements
        ],
        "margin": "0 when every residual is exactly 0; minus the number of failures",
    }
    worst_err = max((a.max_rel_err for a in agreements), default=None)
    ok = not failed and not drift
    return judged(
        ok,
        measured=float(len(failed)),
        predicted=0.0,
        worst_margin=0.0 if ok else -float(len(failed) + len(drift)),
        tolerance=0.0,
        instances=len(certs) + len(agreements),
        reason=reason,
        details={**details, "max_consistency_rel_err": worst_err},
    )


def _register(claim_id: str) -> None:
    def fn(ctx: Context) -> CheckResult:
        return _run(ctx, claim_id)

    fn.__name__ = fn.__qualname__ = "certify_" + claim_id.lower().replace("-", "_")
    check(claim_id, part="symbolic", kind="symbolic")(fn)


for _cid in CATALOGUE:
    _register(_cid)

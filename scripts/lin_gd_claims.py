#!/usr/bin/env python
"""Run the registered linear-DEQ static and gradient-descent checks: LIN-GRAD,
LIN-FACTOR, LIN-PL, LIN-GD-* (R3-R6), and print one summary line per claim.

    python scripts/lin_gd_claims.py [--quick] [--seed N] [--figures DIR] [--json PATH]

``--quick`` uses the CI-sized profile; the default is the full profile.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from proofs_check.registry import Context, Status, claim_status, run
from proofs_check.report import report_payload, write_json

CLAIMS = ["LIN-GRAD", "LIN-FACTOR", "LIN-PL", "LIN-GD-*"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized profile")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figures", type=Path, default=None, help="figure directory")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = ap.parse_args(argv)
    profile = "quick" if args.quick else "full"
    ctx = Context(seed=args.seed, profile=profile, figures_dir=args.figures)
    rows = run(CLAIMS, ctx)
    if args.json:
        write_json(args.json, report_payload(rows, args.seed, profile))
    for cid, status in claim_status(rows).items():
        parts = [r for r in rows if r.claim_id == cid]
        margins = [
            r.result.worst_margin for r in parts if r.result.worst_margin is not None
        ]
        worst = f"{min(margins):.3g}" if margins else "-"
        secs = sum(r.seconds for r in parts)
        print(
            f"{cid:<16} {status.value:<16} worst margin {worst:>10}  "
            f"instances {sum(r.result.instances for r in parts):>5}  {secs:6.2f} s"
        )
        for r in parts:
            if r.result.status is Status.failed:
                print(f"    {r.part}: {r.result.reason}")
    return 1 if any(s is Status.failed for s in claim_status(rows).values()) else 0


if __name__ == "__main__":
    sys.exit(main())

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

from proofs_check.commands.verify import claim_lines, verify
from proofs_check.registry import Status, claim_status

CLAIMS = ["LIN-GRAD", "LIN-FACTOR", "LIN-PL", "LIN-GD-*"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized profile")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figures", type=Path, default=None, help="figure directory")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = ap.parse_args(argv)
    profile = "quick" if args.quick else "full"
    rows = verify(
        CLAIMS,
        seed=args.seed,
        profile=profile,
        figures_dir=args.figures,
        json_path=args.json,
    )
    print("\n".join(claim_lines(rows)))
    return 1 if any(s is Status.failed for s in claim_status(rows).values()) else 0


if __name__ == "__main__":
    sys.exit(main())

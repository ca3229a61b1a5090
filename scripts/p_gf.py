#!/usr/bin/env python
"""P-GF (spec §6.8): reference gradient flows of random linear DEQs, and the checks
they feed: LIN-GF-CONS, LIN-SPHERE, LIN-COND, LIN-GF-RATE, LIN-GF-LIMIT (R1-R4).

    python scripts/p_gf.py [--quick] [--seed N] [--figures DIR] [--json PATH]

Writes the figures (conservation drift per integrator, risk against the R4 envelope
with GD overlaid, the (u, v) plane for d = 1, the conditioning against its R3 bound)
and a JSON report with the protocol ID and the seed; prints one line per claim.
``--quick`` uses the CI-sized profile; the default is the full profile.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from proofs_check.commands.verify import claim_lines, verify
from proofs_check.registry import Status, claim_status

PROTOCOL = "P-GF"
CLAIMS = ["LIN-GF-CONS", "LIN-SPHERE", "LIN-COND", "LIN-GF-RATE", "LIN-GF-LIMIT"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized profile")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--figures",
        type=Path,
        default=Path("figures"),
        help="figure directory (default figures/)",
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=Path("reports/p_gf.json"),
        help="JSON report (default reports/p_gf.json)",
    )
    args = ap.parse_args(argv)
    profile = "quick" if args.quick else "full"
    rows = verify(
        CLAIMS,
        seed=args.seed,
        profile=profile,
        figures_dir=args.figures,
        json_path=args.json,
        extra={"protocol": PROTOCOL},
    )
    status = claim_status(rows)
    print("\n".join(claim_lines(rows, prefix=f"{PROTOCOL} ", width=13)))
    print(
        f"wrote {args.json} and {sum(len(r.result.figures) for r in rows)} figures "
        f"under {args.figures} (seed {args.seed}, profile {profile})"
    )
    return 1 if any(s is Status.failed for s in status.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

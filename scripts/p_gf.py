#!/usr/bin/env python
"""P-GF (docs/theory/protocols.md): reference gradient flows of random linear DEQs, and
the checks
they feed: LIN-GF-CONS, LIN-SPHERE, LIN-COND, LIN-GF-RATE, LIN-GF-LIMIT (R1-R4).

    python scripts/p_gf.py [--quick] [--seed N] [--figures DIR] [--json PATH]

Writes the figures (conservation drift per integrator, risk against the R4 envelope
with GD overlaid, the (u, v) plane for d = 1, the conditioning against its R3 bound)
and a JSON report with the protocol ID and the seed; prints one line per claim.
``--quick`` uses the CI-sized profile; the default is the full profile.
"""

from __future__ import annotations

import sys
from pathlib import Path

from proofs_check.commands.verify import claims_script

CLAIMS = ["LIN-GF-CONS", "LIN-SPHERE", "LIN-COND", "LIN-GF-RATE", "LIN-GF-LIMIT"]


def main(argv=None) -> int:
    return claims_script(
        CLAIMS,
        argv,
        doc=__doc__,
        figures=Path("figures"),
        json_path=Path("reports/p_gf.json"),
        protocol="P-GF",
    )


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Run the registered linear-DEQ static and gradient-descent checks: LIN-GRAD,
LIN-FACTOR, LIN-PL, LIN-GD-* (R3-R6), and print one summary line per claim.

    python scripts/lin_gd_claims.py [--quick] [--seed N] [--figures DIR] [--json PATH]

``--quick`` uses the CI-sized profile; the default is the full profile.
"""

from __future__ import annotations

import sys

from proofs_check.commands.verify import claims_script

CLAIMS = ["LIN-GRAD", "LIN-FACTOR", "LIN-PL", "LIN-GD-*"]


def main(argv=None) -> int:
    return claims_script(CLAIMS, argv, doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())

"""proofs_check: the papers' claims, their checks and certificates, and the CLI.

The claim catalogue (:mod:`proofs_check.catalogue`), the registry and runner
(:mod:`proofs_check.registry`), the case data checks and protocols share
(:mod:`proofs_check.cases`), reports (:mod:`proofs_check.report`), protocols
(:mod:`proofs_check.protocols`) and the ``deq-dynamics`` command line
(:mod:`proofs_check.cli`). It calls :mod:`dynamics`; ``dynamics`` never imports it.
"""

from .catalogue import CLAIM_IDS as CLAIM_IDS, CLAIMS as CLAIMS
from .registry import (
    CheckResult as CheckResult,
    Context as Context,
    Status as Status,
    check as check,
    run as run,
)

"""Case data shared by the checks and the protocols: seeded instance streams, the
runs they are driven through, and the constants and tolerances that go with them.

This package sits below both :mod:`proofs_check.checks` (which judges the cases) and
:mod:`proofs_check.protocols` (which runs them as named experiments), and imports
neither, so the two never import each other's internals:

* :mod:`.lin`: instance counts per profile and the scalar / matrix linear-DEQ case
  streams (LIN-GRAD, LIN-PL, LIN-GD-*, LIN-GF-*, LIN-MOM-*, LIN-ADAM-COND);
* :mod:`proofs_check.cases.lin_gd`: gradient-descent run analysis and the P-SWEEP
  constants (LIN-GD-*, REPRO-LEG; the P-LEG / P-SWEEP / P-SRC protocols);
* :mod:`proofs_check.cases.lin_mom`: momentum and adaptive-optimizer identities, case
  streams and the drift / conditioning studies (LIN-MOM-*, LIN-ADAM-COND; the P-MOM
  protocol).
"""

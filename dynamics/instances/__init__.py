"""Seeded problem instances: the linear-DEQ instances and the paper's legs
(:mod:`.linear`), the single-index instances (:mod:`.single_index`) and the torch
example maps f(z, x) of the reversible checks (:mod:`.torch_examples`).

The package re-exports :mod:`.linear`, so ``from dynamics.instances import
scalar_instance`` keeps working.
"""

from .linear import *  # noqa: F403
from .linear import __all__ as __all__

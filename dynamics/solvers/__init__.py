"""Fixed-point solvers (init / step / terminate) and the single driver loop."""

from .anderson import Anderson as Anderson
from .base import (
    AbstractFixedPointSolver as AbstractFixedPointSolver,
    relative_residual as relative_residual,
)
from .broyden import Broyden as Broyden
from .iterate import (
    STATUS_CODES as STATUS_CODES,
    FixedPointRun as FixedPointRun,
    iterate as iterate,
    worst_result as worst_result,
)
from .picard import Picard as Picard
from .relaxed import Relaxed as Relaxed
from .reversible import (
    ReversibilityWarning as ReversibilityWarning,
    Reversible as Reversible,
)
from .stopping import IterateRelativeTol as IterateRelativeTol

"""dynamics: the numerical engine of deq-dynamics (models, flows, integrators,
fixed-point solvers, gradient methods, the batched torch backend, training).

This module only re-exports; see the submodules for the implementations.
"""

from ._result import Result as Result
from .errors import (
    ConvergenceError as ConvergenceError,
    DEQError as DEQError,
    InvalidInputError as InvalidInputError,
    NonContractiveError as NonContractiveError,
    NonFiniteError as NonFiniteError,
    ReconstructionError as ReconstructionError,
    ShapeError as ShapeError,
    SingularEquilibriumError as SingularEquilibriumError,
    StepSizeError as StepSizeError,
    UnknownOptionError as UnknownOptionError,
    WellPosednessError as WellPosednessError,
)
from .flows.descent import gradient_descent as gradient_descent
from .flows.trajectory import Trajectory as Trajectory
from .models.linear_deq import LinearDEQ as LinearDEQ
from .models.matrix_deq import MatrixLinearDEQ as MatrixLinearDEQ

__version__ = "0.1.0"

"""dynamics: the numerical engine of deq-dynamics (models, flows, integrators,
fixed-point solvers, gradient methods, the DEQ layer, the batched at-scale
engine, training).

This module only re-exports; see the submodules for the implementations.
"""

from ._fixed_point import fixed_point as fixed_point
from ._result import Result as Result, Solution as Solution
from .errors import (
    ConvergenceError as ConvergenceError,
    DEQError as DEQError,
    HyperparameterError as HyperparameterError,
    InvalidInputError as InvalidInputError,
    NonContractiveError as NonContractiveError,
    NonFiniteError as NonFiniteError,
    NonSmoothActivationError as NonSmoothActivationError,
    ReconstructionError as ReconstructionError,
    ShapeError as ShapeError,
    SingularEquilibriumError as SingularEquilibriumError,
    StepSizeError as StepSizeError,
    UnknownOptionError as UnknownOptionError,
    WellPosednessError as WellPosednessError,
)
from .flows.descent import gradient_descent as gradient_descent
from .flows.gradient_flow import (
    flow_ivp as flow_ivp,
    gradient_field as gradient_field,
    integrate as integrate,
)
from .flows.trajectory import Trajectory as Trajectory
from .gradients import (
    JFB as JFB,
    DenseIFT as DenseIFT,
    ImplicitIFT as ImplicitIFT,
    Phantom as Phantom,
    ReversibleExact as ReversibleExact,
    Unrolled as Unrolled,
)
from .integrators import (
    RK4 as RK4,
    GaussLegendre as GaussLegendre,
    ImplicitMidpoint as ImplicitMidpoint,
    ScipyIVP as ScipyIVP,
)
from .layer import DEQLayer as DEQLayer
from .models.activations import get_activation as get_activation
from .models.linear_deq import LinearDEQ as LinearDEQ
from .models.matrix_deq import MatrixLinearDEQ as MatrixLinearDEQ
from .models.single_index import SingleIndexDEQ as SingleIndexDEQ
from .solvers import (
    Anderson as Anderson,
    Broyden as Broyden,
    Picard as Picard,
    Relaxed as Relaxed,
    Reversible as Reversible,
)

__version__ = "0.1.0"

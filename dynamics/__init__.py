"""dynamics: the numerical engine of deq-dynamics (models, flows, integrators,
fixed-point solvers, gradient methods, the DEQ layer, the batched at-scale
engine, training).

This module only re-exports; see the submodules for the implementations. The
PyTorch parts (fixed-point solvers, gradient methods, the layer) are re-exported
lazily, so that ``import dynamics`` and the NumPy-only linear API do not import torch.
"""

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
from .integrators import (
    RK4 as RK4,
    GaussLegendre as GaussLegendre,
    ImplicitMidpoint as ImplicitMidpoint,
    ScipyIVP as ScipyIVP,
)
from .models.activations import get_activation as get_activation
from .models.linear_deq import LinearDEQ as LinearDEQ
from .models.matrix_deq import MatrixLinearDEQ as MatrixLinearDEQ
from .models.single_index import SingleIndexDEQ as SingleIndexDEQ

__version__ = "0.1.0"

#: Names re-exported on first access (their modules import torch).
_LAZY = {
    "fixed_point": "._fixed_point",
    "JFB": ".gradients",
    "DenseIFT": ".gradients",
    "ImplicitIFT": ".gradients",
    "Phantom": ".gradients",
    "ReversibleExact": ".gradients",
    "Unrolled": ".gradients",
    "DEQLayer": ".layer",
    "diagnose": ".diagnosis",
    "Diagnosis": ".diagnosis",
    "MethodDiagnosis": ".diagnosis",
    "DiagnosticInputError": ".diagnosis",
    "FixedPointNotFoundError": ".diagnosis",
    "Anderson": ".solvers",
    "Broyden": ".solvers",
    "Picard": ".solvers",
    "Relaxed": ".solvers",
    "Reversible": ".solvers",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

"""How gradients flow through a fixed-point solve, as objects (never flags).

Each method carries its torch solve (``solve``) and its closed forms for the scalar
theory: ``inverse_factor(J)`` (what replaces (1 - J)^{-1}) and ``linear_factor(v)``
= c(v) (its gradient over the exact one on the scalar linear DEQ). Methods: unrolled,
implicit (IFT), dense IFT, exact IFT, JFB, Neumann-m, damped-m, phantom-k and the
reversible exact adjoint (with its autograd Function). ``parse_backprop`` reads the
string names scripts use; ``approx_direction`` turns a method into a descent direction
for the NumPy scalar-state models.
"""

from ._parse import parse_backprop as parse_backprop
from ._reversible_function import (
    ReconstructionWarning as ReconstructionWarning,
    RevConfig as RevConfig,
    ReversibleFunction as ReversibleFunction,
)
from .base import AbstractGradient as AbstractGradient
from .damped import Damped as Damped
from .dense_ift import DenseIFT as DenseIFT
from .directions import approx_direction as approx_direction
from .exact import ExactIFT as ExactIFT
from .implicit import ImplicitIFT as ImplicitIFT
from .jfb import JFB as JFB
from .neumann import Neumann as Neumann
from .phantom import Phantom as Phantom
from .reversible import ReversibleExact as ReversibleExact
from .unrolled import Unrolled as Unrolled

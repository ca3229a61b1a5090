"""Torch backend: the reversible autograd Function, the DEQ layer and batched flows."""

from .layer import DEQLayer as DEQLayer
from .reversible import (
    ReconstructionWarning as ReconstructionWarning,
    ReversibleFunction as ReversibleFunction,
)
from .solve import fixed_point as fixed_point

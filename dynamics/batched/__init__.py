"""Torch backend: the reversible autograd Function, the DEQ layer and batched flows."""

from .batched_linear import BatchedMatrixDEQ as BatchedMatrixDEQ
from .batched_single_index import BatchedSingleIndexDEQ as BatchedSingleIndexDEQ
from .instances_batched import ScaleSpec as ScaleSpec
from .layer import DEQLayer as DEQLayer
from .reversible import (
    ReconstructionWarning as ReconstructionWarning,
    ReversibleFunction as ReversibleFunction,
)
from .scale import (
    ScaleConfig as ScaleConfig,
    replay as replay,
    run_scale as run_scale,
)
from .solve import fixed_point as fixed_point

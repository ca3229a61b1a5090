"""The at-scale engine (P-SCALE): B independent matrix linear DEQs and single-index
DEQs advanced at once in torch, batch last, with per-instance statistics reduced
online."""

from .batched_linear import BatchedMatrixDEQ as BatchedMatrixDEQ
from .batched_single_index import BatchedSingleIndexDEQ as BatchedSingleIndexDEQ
from .instances_batched import ScaleSpec as ScaleSpec
from .scale import (
    ScaleConfig as ScaleConfig,
    replay as replay,
    run_scale as run_scale,
)

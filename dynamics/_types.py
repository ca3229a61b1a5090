"""Type aliases shared across the engine."""

from __future__ import annotations

import numpy as np

#: Flat float64 parameter vector of a NumPy model.
Params = np.ndarray
#: A real scalar.
Scalar = float

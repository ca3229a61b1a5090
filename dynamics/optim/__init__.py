"""Momentum and adaptive optimisers for the NumPy DEQ models (heavy ball, Nesterov,
Adam, RMSProp), run by one driver that mirrors :func:`dynamics.gradient_descent`."""

from .driver import (
    OptimTrajectory as OptimTrajectory,
    adam as adam,
    conserved_quantity as conserved_quantity,
    heavy_ball as heavy_ball,
    nesterov as nesterov,
    optimize as optimize,
    rmsprop as rmsprop,
)
from .optimizers import (
    Adam as Adam,
    HeavyBall as HeavyBall,
    Nesterov as Nesterov,
    Optimizer as Optimizer,
    RMSProp as RMSProp,
)

"""Named exceptions of the engine.

Every public entry point validates its input and raises one of these with a message
that says what was wrong and what to do. Inner loops do not raise: they return a
:class:`dynamics.Result` code, and the public entry point raises only when asked
(``throw=True``).
"""

from __future__ import annotations


class DEQError(Exception):
    """Base class of every error raised by deq-dynamics."""


class InvalidInputError(DEQError, ValueError):
    """An argument has the wrong shape, sign or range."""


class NonFiniteError(InvalidInputError):
    """Data or parameters contain NaN or infinity."""


class ShapeError(InvalidInputError):
    """Arrays whose shapes do not fit together."""


class StepSizeError(InvalidInputError):
    """A step size (learning rate, integrator step) that is not positive and finite."""


class HyperparameterError(InvalidInputError):
    """An optimiser hyperparameter outside its range (momentum, Adam betas, eps)."""


class RankDeficientError(InvalidInputError):
    """Data whose second-moment matrix is (numerically) singular, e.g. fewer samples
    than features (n < d), where a bound needs lambda_min(Sigma_hat) > 0."""


class NonSmoothActivationError(InvalidInputError):
    """A computation that needs a C^2 activation (a Hessian, dQ/dt, a theorem check)
    was asked of a non-smooth one (ReLU, leaky ReLU): refused, never computed through
    the kink."""


class CheckpointError(DEQError, RuntimeError):
    """A checkpoint that is missing, truncated, unsafe to load or from another run."""


class ConfigMismatchError(CheckpointError):
    """``--resume`` with a configuration or seed that differs from the checkpoint's."""


class OutputPathError(DEQError, OSError):
    """An output path that cannot be written, or a run directory that is not empty."""


class SingularEquilibriumError(DEQError, ArithmeticError):
    """No equilibrium: ``1 - v = 0`` or ``I - W`` is (numerically) singular.

    A linear DEQ's fixed point needs ``I - W`` invertible (not ``|v| < 1``): move the
    parameters away from the singular set, or take a smaller step near it.
    """


class WellPosednessError(DEQError, ValueError):
    """A nonlinear DEQ outside the region where its fixed point is unique."""


class NonContractiveError(DEQError, ValueError):
    """A fixed-point iteration asked of a map that is not contractive."""


class ConvergenceError(DEQError, RuntimeError):
    """An iterative solve stopped before its tolerance (raised only with throw=True)."""


class ReconstructionError(DEQError, RuntimeError):
    """A reversible backward whose reconstructed states are non-finite or inexact."""


class UnknownOptionError(DEQError, TypeError):
    """An option name or value the library does not know (nothing is ignored)."""


def reject_unknown(kind: str, name: str, known) -> UnknownOptionError:
    """The error for an unknown option ``name`` among ``known`` (to raise)."""
    options = ", ".join(sorted(map(str, known)))
    return UnknownOptionError(f"unknown {kind} {name!r}; choose one of: {options}")

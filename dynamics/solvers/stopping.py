"""The stopping rule of every fixed-point solve.

Default (the optimistix / scipy convention ``||r|| <= atol + rtol * scale``, with
``atol = rtol = tol``): an example has converged when

    ||z - f(z)||_2 <= tol * (1 + scale_0),   scale_0 = max(||z_0||_2, ||f(z_0)||_2),

per example over the flattened state. ``scale_0`` is fixed before the first step, so it
cannot grow with a diverging iterate: for ``z -> z + 1`` the residual stays at
``||1||`` and the solve never reports success, however large ``z`` becomes. With
``z_0 = 0`` the scale is ``||f(0, x)||``, the size of the injected input's image; for
an ``L``-contraction ``||z*|| <= scale_0 / (1 - L)``, so the tolerance is relative to
the problem's own size.

The authors' criterion, ``||z - f(z)|| / (1e-5 + ||f(z)||) <= tol``, is available by
name for protocol replications: pass ``tol=IterateRelativeTol(1e-3)``. It is *not*
safe on its own (its denominator grows with a diverging iterate), which is why it is
never the default; the driver's divergence guard still applies.
"""

from __future__ import annotations

import torch

from .base import RESIDUAL_EPS


class IterateRelativeTol(float):
    """A tolerance that asks for the authors' relative residual
    ``||z - f(z)|| / (1e-5 + ||f(z)||) <= tol`` instead of the default scaled rule.

    It is a ``float`` (``IterateRelativeTol(1e-3) == 1e-3``), so it passes through
    every ``tol=`` argument unchanged; the driver reads its type. Use it only to
    replicate a protocol that used that criterion.
    """

    def __repr__(self) -> str:
        return f"IterateRelativeTol({float(self)!r})"


def _norms(t: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(t.detach().reshape(t.shape[0], -1), dim=1)


def initial_scale(z0: torch.Tensor, fz0: torch.Tensor) -> torch.Tensor:
    """Per-example ``max(||z_0||, ||f(z_0)||)``, shape ``(B,)`` (fixed for the run)."""
    return torch.maximum(_norms(z0), _norms(fz0))


def absolute_residual(z: torch.Tensor, fz: torch.Tensor) -> torch.Tensor:
    """Per-example ``||z - f(z)||_2``, shape ``(B,)``."""
    return _norms(z - fz)


def stopping_residual(
    z: torch.Tensor, fz: torch.Tensor, scale: torch.Tensor, tol: float
) -> torch.Tensor:
    """The residual compared with ``tol``: ``||z - f(z)|| / (1 + scale_0)`` by
    default, the authors' relative residual for an :class:`IterateRelativeTol`."""
    if isinstance(tol, IterateRelativeTol):
        return absolute_residual(z, fz) / (RESIDUAL_EPS + _norms(fz))
    return absolute_residual(z, fz) / (1.0 + scale)

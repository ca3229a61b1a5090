"""The string registry of the closed-form family for scripts (``neumann:2``,
``damped:2:0.5``, ``phantom:5:0.5``); library code takes the objects."""

from __future__ import annotations

from ..errors import InvalidInputError, reject_unknown
from .base import AbstractGradient
from .damped import Damped
from .exact import ExactIFT
from .jfb import JFB
from .neumann import Neumann
from .phantom import Phantom

_REGISTRY = {
    "exact": (ExactIFT, 0),
    "jfb": (JFB, 0),
    "neumann": (Neumann, 1),
    "damped": (Damped, 2),
    "phantom": (Phantom, 2),
}


def parse_backprop(spec: str) -> AbstractGradient:
    """``"exact"``, ``"jfb"``, ``"neumann:M"``, ``"damped:M[:LAM]"``,
    ``"phantom:K[:LAM]"`` -> the object; unknown names raise UnknownOptionError."""
    name, *args = spec.split(":")
    if name not in _REGISTRY:
        raise reject_unknown("backprop method", name, _REGISTRY)
    cls, max_args = _REGISTRY[name]
    if len(args) > max_args or (max_args and not args):
        raise InvalidInputError(
            f"cannot read {spec!r}: {name} takes "
            f"{'no' if not max_args else 'up to ' + str(max_args)} "
            "':'-separated arguments (terms, then damping)"
        )
    try:
        vals = [int(args[0])] + [float(a) for a in args[1:]] if args else []
    except ValueError as exc:
        raise InvalidInputError(f"cannot read the arguments of {spec!r}") from exc
    return cls(*vals)

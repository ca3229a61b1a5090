"""Named experiment protocols of docs/theory/protocols.md, run by ``deq-dynamics
reproduce NAME``.

Each module in this package registers its protocols with :func:`protocol`. A protocol
function takes a :class:`ProtocolContext` (and optional keyword options, e.g. reduced
sizes) and returns a JSON-able dict; it must record the full-precision final
parameters and the risk history, and may write figures. Checks get a protocol's data
through :func:`protocol_data`, which runs it once per ``verify`` run.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

from ..registry import figure_file


@dataclasses.dataclass(frozen=True)
class ProtocolContext:
    """Where a protocol writes figures and reports progress.

    Attributes:
        figures_dir: figure directory (None: no figures).
        progress: callback for progress lines.
        suffix: appended to every figure name; ``"-quick"`` for a reduced run (the
            ``--quick`` of ``reproduce`` and the quick ``verify`` profile).
    """

    figures_dir: Path | None = None
    progress: Callable[[str], None] = lambda msg: None
    suffix: str = ""

    def figure_path(self, name: str) -> Path | None:
        if self.figures_dir is None:
            return None
        return figure_file(self.figures_dir, name, self.suffix)


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    spec_id: str  # e.g. "P-LEG"
    description: str
    fn: Callable[..., dict]  # (ctx: ProtocolContext, **options) -> payload


_PROTOCOLS: dict[str, Protocol] = {}


def protocol(name: str, spec_id: str, description: str):
    """Register ``fn`` as protocol ``name`` (a docs/theory/protocols.md protocol ID in
    ``spec_id``)."""

    def register(fn):
        if name in _PROTOCOLS and _PROTOCOLS[name].fn.__qualname__ != fn.__qualname__:
            raise KeyError(f"protocol {name!r} is registered twice")
        _PROTOCOLS[name] = Protocol(name, spec_id, description, fn)
        return fn

    return register


def load_protocols() -> dict[str, Protocol]:
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    return dict(sorted(_PROTOCOLS.items()))


def protocol_data(ctx, name: str, **options) -> dict:
    """The payload of protocol ``name`` run with ``options``, produced once per check
    context (one ``verify`` run) and shared by every check that judges it.

    ``ctx`` is a :class:`proofs_check.registry.Context`; figures go to its
    ``figures_dir``, suffixed ``-quick`` when ``options`` reduce the protocol in the
    quick profile. Checks must not mutate the returned payload.
    """
    key = ("protocol", name, tuple(sorted(options.items())))
    suffix = ctx.figure_suffix if options else ""
    pctx = ProtocolContext(figures_dir=ctx.figures_dir, suffix=suffix)
    return ctx.memo(key, lambda: load_protocols()[name].fn(pctx, **options))

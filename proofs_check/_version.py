"""The package version, in one place below both the command line (``--version``)
and the reports (their provenance), so neither has to import the other."""

from __future__ import annotations

import importlib.metadata


def version() -> str:
    """The installed distribution's version, or the source tree's when not installed."""
    try:
        return importlib.metadata.version("deq-dynamics")
    except importlib.metadata.PackageNotFoundError:
        from dynamics import __version__

        return __version__

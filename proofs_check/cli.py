"""The ``deq-dynamics`` command line: one subcommand per module of
:mod:`proofs_check.commands`."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import pkgutil
import sys

from . import commands


def version() -> str:
    """The installed distribution's version, or the source tree's when not installed."""
    try:
        return importlib.metadata.version("deq-dynamics")
    except importlib.metadata.PackageNotFoundError:
        from dynamics import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deq-dynamics",
        description="Check what the theory says about how DEQs train.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version()}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``deq-dynamics`` command line: one subcommand per module of
:mod:`proofs_check.commands`."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from . import commands
from ._version import version


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deq-dynamics",
        description="Check what the theory says about how DEQs train.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe is reported here
        return rc
    except KeyboardInterrupt:
        print(
            f"deq-dynamics {args.command}: interrupted (Ctrl-C); files already "
            "written are complete, nothing was half-written",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:
        # The reader went away (``deq-dynamics prove --json | head``): stop quietly.
        # Point stdout at devnull so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``deq-dynamics discover MODEL``: count and find the conservation laws of a map."""

from __future__ import annotations

import argparse
import sys

from dynamics.errors import DEQError, InvalidInputError

from ..discovery import discover, maps


def register(sub) -> None:
    p = sub.add_parser(
        "discover",
        help="find the conservation laws of a model map (docs/theory/discovery.md)",
        description="Count the conservation laws shared by the gradient flows of every "
        "loss of a model map (Lie-algebra rank, numeric) and find the polynomial laws "
        "up to a degree (exact, verified symbolically).",
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        nargs="?",
        help=f"one of {', '.join(maps.BUILTINS)} (omit with --map)",
    )
    p.add_argument(
        "--shape",
        metavar="N,N,...",
        help="sizes: scalar-linear d; matrix-linear m,d; "
        "matrix-linear-readout m,d,k; linear-net n_in,r,...,n_out; "
        "single-index d",
    )
    p.add_argument(
        "--map",
        metavar="FILE.py",
        help="a user map: a Python file defining PARAMS and OUTPUTS (SymPy). The "
        "file is imported, i.e. run as Python code with your permissions: use only "
        "maps you trust (strings in OUTPUTS are parsed, never evaluated)",
    )
    p.add_argument(
        "--degree",
        type=int,
        default=2,
        help="degree of the polynomial law search (0 to skip; default 2)",
    )
    p.add_argument(
        "--activation",
        default="tanh",
        help="single-index activation: tanh, sigmoid, identity, "
        "sigma_eps:EPS (default tanh)",
    )
    p.add_argument(
        "--points",
        type=int,
        default=3,
        help="random evaluation points of the rank (default 3)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of points and probes")
    p.set_defaults(func=_main)


def _shape(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise InvalidInputError(
            f"--shape {text!r}: give comma-separated positive integers, e.g. 2,3"
        ) from None
    if any(n < 1 for n in shape):
        raise InvalidInputError(
            f"--shape {text!r}: every size must be >= 1 (a map with an empty "
            "parameter or output block has nothing to discover)"
        )
    return shape


def _main(args: argparse.Namespace) -> int:
    try:
        if args.degree < 0:
            raise InvalidInputError(
                f"--degree must be >= 0 (0 skips the polynomial search); got "
                f"{args.degree}"
            )
        if args.points < 1:
            raise InvalidInputError(f"--points must be >= 1; got {args.points}")
        if args.map:
            if args.model:
                raise ValueError("give either MODEL or --map, not both")
            model = maps.from_file(args.map)
        else:
            if args.model not in maps.BUILTINS:
                raise ValueError(
                    f"unknown model {args.model!r}; choose one of "
                    f"{', '.join(maps.BUILTINS)} or pass --map FILE.py"
                )
            shape = _shape(args.shape)
            model = maps.BUILTINS[args.model](
                shape, activation=args.activation, seed=args.seed
            )
        result = discover(model, degree=args.degree, points=args.points, seed=args.seed)
    except (ValueError, TypeError, DEQError) as exc:
        print(f"deq-dynamics discover: {exc}", file=sys.stderr)
        return 2
    print(result.report())
    return 0

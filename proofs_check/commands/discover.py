"""``deq-dynamics discover MODEL``: count and find the conservation laws of a map."""

from __future__ import annotations

import argparse
import sys

from ..discovery import discover, maps


def register(sub) -> None:
    p = sub.add_parser(
        "discover",
        help="find the conservation laws of a model map (spec §7)",
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
        help="a user map: a Python file defining PARAMS and OUTPUTS (SymPy)",
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


def _main(args: argparse.Namespace) -> int:
    try:
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
            shape = tuple(int(s) for s in args.shape.split(",")) if args.shape else None
            model = maps.BUILTINS[args.model](
                shape, activation=args.activation, seed=args.seed
            )
    except (ValueError, TypeError) as exc:
        print(f"deq-dynamics discover: {exc}", file=sys.stderr)
        return 2
    result = discover(model, degree=args.degree, points=args.points, seed=args.seed)
    print(result.report())
    return 0

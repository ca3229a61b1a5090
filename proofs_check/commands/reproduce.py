"""``deq-dynamics reproduce PROTOCOL``: run a named protocol of spec §6 exactly."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..protocols import ProtocolContext, load_protocols
from ..report import write_json


def register(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="run a named experiment protocol (spec §6)",
        description="Run a protocol exactly as specified and write its "
        "full-precision results and figures.",
    )
    p.add_argument(
        "protocol",
        metavar="PROTOCOL",
        help="protocol name, e.g. leg-linear; 'list' shows them all",
    )
    p.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="results file (default reports/<protocol>.json)",
    )
    p.add_argument(
        "--figures",
        type=Path,
        default=Path("figures"),
        metavar="DIR",
        help="figure directory (default figures/)",
    )
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    protocols = load_protocols()
    if args.protocol == "list":
        for name, proto in protocols.items():
            print(f"{name:<28} {proto.spec_id:<12} {proto.description}")
        return 0
    if args.protocol not in protocols:
        print(
            f"deq-dynamics reproduce: unknown protocol {args.protocol!r}; "
            f"choose one of: {', '.join(protocols)}",
            file=sys.stderr,
        )
        return 2
    proto = protocols[args.protocol]
    ctx = ProtocolContext(
        figures_dir=args.figures,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    t0 = time.perf_counter()
    result = proto.fn(ctx)
    payload = {
        "protocol": proto.name,
        "spec_id": proto.spec_id,
        "wall_seconds": time.perf_counter() - t0,
        **result,
    }
    path = write_json(args.json or Path("reports") / f"{proto.name}.json", payload)
    print(f"{proto.name}: wrote {path} in {payload['wall_seconds']:.1f} s")
    return 0

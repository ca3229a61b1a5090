"""``deq-dynamics prove ID``: print the symbolic derivation(s) certifying a claim."""

from __future__ import annotations

import argparse
import json
import sys

from ..symbolic import CATALOGUE, runs


def register(sub) -> None:
    p = sub.add_parser(
        "prove",
        help="print the SymPy derivation certifying a claim",
        description="Run the symbolic certificates of a claim and print "
        "each derivation: its steps, its residual after reduction (must "
        "be exactly 0) and the time taken. Exit 1 if any fails.",
    )
    p.add_argument(
        "claim",
        metavar="ID",
        help="claim ID (e.g. LIN-SYM-CONS); 'list' shows the certified ones",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="only the quick-profile certificates (smaller shapes)",
    )
    p.add_argument(
        "--only",
        metavar="NAME",
        help="only certificates whose function name contains NAME",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.claim == "list":
        for cid, rs in CATALOGUE.items():
            print(f"{cid:<20} " + ", ".join(r.label for r in rs))
        return 0
    cid = args.claim.upper()
    try:
        chosen = runs(cid, full=not args.quick)
    except KeyError as exc:
        print(f"deq-dynamics prove: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.only:
        names = [r.fn.__name__ for r in chosen]
        chosen = tuple(r for r in chosen if args.only in r.fn.__name__)
        if not chosen:
            print(
                f"deq-dynamics prove: no certificate of {cid} matches --only "
                f"{args.only!r}; its certificates are: {', '.join(names)}",
                file=sys.stderr,
            )
            return 2
    certs = []
    for run in chosen:
        cert = run()
        certs.append(cert)
        if not args.json:
            print(cert.render(), end="\n\n", flush=True)
    if args.json:
        print(json.dumps([c.to_dict() for c in certs], indent=2))
    else:
        ok = sum(c.passed for c in certs)
        print(
            f"{cid}: {ok}/{len(certs)} certificates reduce exactly to 0 "
            f"({sum(c.seconds for c in certs):.2f} s)"
        )
    return 0 if all(c.passed for c in certs) else 1

"""``deq-dynamics reproduce PROTOCOL``: run a named protocol of docs/theory/protocols.md
exactly."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dynamics.errors import OutputPathError

from ..outputs import check_dir, check_file
from ..protocols import ProtocolContext, load_protocols
from ..report import write_json


def register(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="run a named experiment protocol (docs/theory/protocols.md)",
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
    p.add_argument(
        "--quick",
        action="store_true",
        help="reduced sizes (as the quick verify profile uses them); results and "
        "figures are named PROTOCOL-quick, never the full protocol's names",
    )
    p.set_defaults(func=_main)


def quick_options(name: str) -> dict:
    """The reduced sizes of protocol ``name`` under ``--quick`` (the quick ``verify``
    profile's sizes); empty for protocols that are CI-sized already."""
    from dynamics.instances.single_index import (
        APX_LIN_STARTS,
        APX_TANH_SEEDS,
        WEAK_SEEDS,
    )

    if name == "apx-lin":
        return {"starts": APX_LIN_STARTS[:1]}
    if name == "apx-tanh":
        return {
            "seeds": APX_TANH_SEEDS[:1],
            "steps": 200,
            "n_train": 500,
            "n_eval": 500,
        }
    if name.startswith("leg-sigmoid"):
        return {"steps": 200}
    if name == "weak":
        return {"seeds": WEAK_SEEDS[:1], "updates": 200, "n_train": 512, "n_eval": 512}
    return {}


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def reproduce(
    name: str,
    *,
    json_path: Path | None = None,
    figures_dir: Path | None = Path("figures"),
    options: dict | None = None,
    extra: dict | None = None,
    progress: bool = True,
    quick: bool = False,
) -> tuple[dict, Path]:
    """Run protocol ``name`` and write its full-precision JSON; the one code path of
    ``deq-dynamics reproduce`` and the ``scripts/p_*.py`` wrappers.

    Args:
        name: a registered protocol (``deq-dynamics reproduce list``).
        json_path: results file (default ``reports/<name>.json``).
        figures_dir: figure directory, or None for no figures.
        options: keyword options of the protocol function (e.g. reduced sizes).
        extra: fields added to the payload (e.g. ``{"quick": True}``).
        progress: print the protocol's progress lines on stderr.
        quick: run at :func:`quick_options` sizes (merged under ``options``); the
            results file and figures are then named ``...-quick``.

    Returns:
        The payload written and the path it was written to.
    """
    protocols = load_protocols()
    if name not in protocols:
        raise KeyError(
            f"unknown protocol {name!r}; choose one of: {', '.join(protocols)}"
        )
    proto = protocols[name]
    reduced = quick_options(name) if quick else {}
    options = {**reduced, **(options or {})}
    suffix = "-quick" if reduced else ""
    json_path = json_path or Path("reports") / f"{proto.name}{suffix}.json"
    check_file(json_path, "--json")
    check_dir(figures_dir, "--figures")
    ctx = ProtocolContext(
        figures_dir=figures_dir,
        progress=_stderr if progress else lambda msg: None,
        suffix=suffix,
    )
    if quick:
        extra = {"quick": True, "quick_options": reduced, **(extra or {})}
    t0 = time.perf_counter()
    result = proto.fn(ctx, **(options or {}))
    payload = {
        "protocol": proto.name,
        "spec_id": proto.spec_id,
        **(extra or {}),
        "wall_seconds": time.perf_counter() - t0,
        **result,
    }
    path = write_json(json_path, payload)
    return payload, path


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
    try:
        payload, path = reproduce(
            args.protocol, json_path=args.json, figures_dir=args.figures,
            quick=args.quick,
        )
    except OutputPathError as exc:
        print(f"deq-dynamics reproduce: {exc}", file=sys.stderr)
        return 2
    print(f"{args.protocol}: wrote {path} in {payload['wall_seconds']:.1f} s")
    return 0

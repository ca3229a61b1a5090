"""``deq-dynamics verify``: run the claim checks and write the reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..progress import progress_bar
from ..registry import PROFILES, Context, Row, Status, claim_status, run
from ..report import atomic_write_text, markdown, report_payload, table, write_json


def register(sub) -> None:
    p = sub.add_parser(
        "verify",
        help="run the claim checks and report",
        description="Run the checks of the claim catalogue; exit 1 if any claim fails.",
    )
    p.add_argument(
        "--claims",
        action="extend",
        nargs="+",
        type=_split_claims,
        metavar="GLOB",
        help="claim IDs or globs, space- or comma-separated (repeatable), e.g. "
        "'LIN-*' or LIN-GF-CONS,LIN-GD-DRIFT; default all",
    )
    p.add_argument(
        "--json", type=Path, metavar="PATH", help="write the JSON report here"
    )
    p.add_argument(
        "--markdown", type=Path, metavar="PATH", help="write the Markdown report here"
    )
    p.add_argument("--figures", type=Path, metavar="DIR", help="write figures here")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="quick",
        help="quick (CI-sized; figures named *-quick) or full (many more instances)",
    )
    p.add_argument(
        "--quick",
        dest="profile",
        action="store_const",
        const="quick",
        help="same as --profile quick (the default)",
    )
    p.add_argument(
        "--quiet",
        "--no-progress",
        dest="quiet",
        action="store_true",
        help="no progress bar or progress lines",
    )
    p.set_defaults(func=_main)


def _split_claims(text: str) -> list[str]:
    """``A,B`` -> [A, B] (so that --claims A,B and --claims A B mean the same)."""
    return [c.strip() for c in text.split(",") if c.strip()]


def _flatten(claims):
    return None if claims is None else [c for group in claims for c in group]


def _progress(i: int, n: int, row: Row) -> None:
    print(
        f"[{i:>3}/{n}] {row.claim_id:<20} {row.part:<14} "
        f"{row.result.status.value:<16} {row.seconds:6.2f} s",
        file=sys.stderr,
        flush=True,
    )


def verify(
    claims: list[str] | None,
    *,
    seed: int = 0,
    profile: str = "quick",
    figures_dir: Path | None = None,
    json_path: Path | None = None,
    extra: dict | None = None,
    progress=None,
) -> list[Row]:
    """Run the checks of ``claims`` (globs; all when None) in one context, so each
    protocol runs once, and write the JSON report when ``json_path`` is given (with
    the ``extra`` fields). The one code path of ``deq-dynamics verify`` and the
    claim-running scripts."""
    ctx = Context(seed=seed, profile=profile, figures_dir=figures_dir)
    rows = run(claims, ctx, progress=progress)
    if json_path:
        write_json(json_path, {**(extra or {}), **report_payload(rows, seed, profile)})
    return rows


def claim_lines(rows: list[Row], prefix: str = "", width: int = 16) -> list[str]:
    """One summary line per claim (status, worst margin, instances, seconds), and
    the reason of every failing part."""
    lines = []
    for cid, status in claim_status(rows).items():
        parts = [r for r in rows if r.claim_id == cid]
        margins = [
            r.result.worst_margin for r in parts if r.result.worst_margin is not None
        ]
        worst = f"{min(margins):.3g}" if margins else "-"
        secs = sum(r.seconds for r in parts)
        lines.append(
            f"{prefix}{cid:<{width}} {status.value:<{width}} worst margin {worst:>10}"
            f"  instances {sum(r.result.instances for r in parts):>5}  {secs:6.2f} s"
        )
        lines += [
            f"    {r.part}: {r.result.reason}"
            for r in parts
            if r.result.status is Status.failed
        ]
    return lines


def claims_script(
    claims: list[str],
    argv: list[str] | None,
    *,
    doc: str,
    figures: Path | None = None,
    json_path: Path | None = None,
    protocol: str | None = None,
) -> int:
    """``main`` of a script that runs some claims: options ``--quick`` (CI-sized
    profile; the default is full), ``--seed``, ``--figures``, ``--json``; prints
    :func:`claim_lines`; exit 1 if a claim fails. ``protocol`` names the protocol
    the claims belong to (a line prefix and a field of the JSON report)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized profile")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figures", type=Path, default=figures, help="figure directory")
    ap.add_argument("--json", type=Path, default=json_path, help="JSON report")
    args = ap.parse_args(argv)
    profile = "quick" if args.quick else "full"
    rows = verify(
        claims,
        seed=args.seed,
        profile=profile,
        figures_dir=args.figures,
        json_path=args.json,
        extra={"protocol": protocol} if protocol else None,
    )
    prefix, width = (f"{protocol} ", 13) if protocol else ("", 16)
    print("\n".join(claim_lines(rows, prefix=prefix, width=width)))
    if args.json:
        print(
            f"wrote {args.json} and {sum(len(r.result.figures) for r in rows)} "
            f"figures under {args.figures} (seed {args.seed}, profile {profile})"
        )
    return 1 if any(s is Status.failed for s in claim_status(rows).values()) else 0


def _main(args: argparse.Namespace) -> int:
    bar = None if args.quiet else progress_bar("verify")
    try:
        rows = verify(
            _flatten(args.claims),
            seed=args.seed,
            profile=args.profile,
            figures_dir=args.figures,
            progress=None if args.quiet else (bar or _progress),
        )
    except ValueError as exc:
        print(f"deq-dynamics verify: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    print(table(rows))
    status = claim_status(rows)
    counts = {s.value: sum(1 for v in status.values() if v is s) for s in Status}
    print("\n" + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    if args.json:
        write_json(args.json, report_payload(rows, args.seed, args.profile))
    if args.markdown:
        atomic_write_text(args.markdown, markdown(rows, args.seed, args.profile))
    return 1 if any(s is Status.failed for s in status.values()) else 0

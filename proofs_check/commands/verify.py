"""``deq-dynamics verify``: run the claim checks and write the reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..catalogue import CLAIMS
from ..outputs import check_dir, check_file
from ..progress import progress_bar
from ..registry import PROFILES, Context, Row, Status, claim_status, run, select
from ..report import (
    atomic_write_text,
    markdown,
    provenance,
    report_payload,
    table,
    write_json,
)


def register(sub) -> None:
    p = sub.add_parser(
        "verify",
        help="run the claim checks and report",
        description="Run the checks of the claim catalogue; exit 1 if any claim "
        "fails or its check errors (with --strict: unless every claim passes).",
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
    p.add_argument(
        "--mutants",
        nargs="*",
        metavar="NAME",
        help="checks of the checks: plant each catalogued bug (or only NAME ...) "
        "in-process, run the claims it targets, print the kill table; exit 1 if a "
        "mutant survives",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 unless every selected claim passes (error, not-implemented, "
        "skipped count as failures)",
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="print the claim catalogue (ID, paper, stated sizes, statement) and exit",
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
    claim-running scripts. Output paths are checked before any claim runs."""
    check_file(json_path, "--json")
    check_dir(figures_dir, "--figures")
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
    return exit_code(rows)


def exit_code(rows: list[Row], strict: bool = False) -> int:
    """0 when the run is acceptable: every claim passes (``strict``), or none fails
    and no check errors (default); 1 otherwise."""
    status = claim_status(rows).values()
    if strict:
        return 0 if all(s is Status.passed for s in status) else 1
    return 1 if any(s in (Status.failed, Status.error) for s in status) else 0


def catalogue_listing(patterns: list[str] | None = None) -> str:
    """The catalogue as text: one block per claim (ID, source, paper, kinds, stated
    sizes, statement)."""
    chosen = set(select(patterns))
    out = []
    for c in CLAIMS:
        if c.id not in chosen:
            continue
        sizes = ", ".join(f"{k} {v}" for k, v in c.sizes.items())
        out.append(
            f"{c.id:<20} {c.paper} {c.result}  [{'/'.join(c.kinds)}]"
            + (f"  sizes: {sizes}" if sizes else "")
        )
        out.append(f"    {c.statement}")
    return "\n".join(out)


def _mutants(args: argparse.Namespace) -> int:
    import time

    from ..mutants import BY_NAME, MUTANTS, kill_table, run_mutant

    unknown = [n for n in args.mutants if n not in BY_NAME]
    if unknown:
        print(
            f"deq-dynamics verify: unknown mutant(s) {unknown}; choose from "
            f"{sorted(BY_NAME)}",
            file=sys.stderr,
        )
        return 2
    chosen = [BY_NAME[n] for n in args.mutants] if args.mutants else list(MUTANTS)
    t0 = time.perf_counter()
    kills = []
    for m in chosen:
        kills.append(run_mutant(m, seed=args.seed, profile=args.profile))
        if not args.quiet:
            k = kills[-1]
            print(
                f"{m.name:<16} {'killed' if k.killed else 'SURVIVED':<9} "
                f"{k.seconds:6.1f} s",
                file=sys.stderr,
                flush=True,
            )
    print(kill_table(kills))
    print(f"wall time {time.perf_counter() - t0:.1f} s")
    return 0 if all(k.killed for k in kills) else 1


def _main(args: argparse.Namespace) -> int:
    if args.list:
        try:
            print(catalogue_listing(args.claims))
        except ValueError as exc:
            print(f"deq-dynamics verify: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.mutants is not None:
        return _mutants(args)
    bar = None if args.quiet else progress_bar("verify")
    try:
        check_file(args.json, "--json")
        check_file(args.markdown, "--markdown")
        rows = verify(
            _flatten(args.claims),
            seed=args.seed,
            profile=args.profile,
            figures_dir=args.figures,
            progress=None if args.quiet else (bar or _progress),
        )
    except (ValueError, OSError) as exc:
        print(f"deq-dynamics verify: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    print(table(rows))
    status = claim_status(rows)
    counts = {s.value: sum(1 for v in status.values() if v is s) for s in Status}
    print("\n" + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    prov = provenance(args.seed, args.profile)
    if args.json:
        write_json(args.json, report_payload(rows, args.seed, args.profile, prov))
    if args.markdown:
        atomic_write_text(
            args.markdown,
            markdown(
                rows, args.seed, args.profile, prov, base=args.markdown.parent
            ),
        )
    return exit_code(rows, strict=args.strict)

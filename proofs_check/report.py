"""Reports: JSON at full float precision and Markdown, both written atomically."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import platform
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ._version import version
from .catalogue import BY_ID
from .registry import Row, Status, claim_reduced, claim_status

#: The one definition of ``worst margin`` used by every row of every report.
MARGIN_DEFINITION = (
    "margin = 1 - (measured deviation) / (allowed deviation), minimised over the "
    "instances of the row: for a tolerance check 1 - error/tolerance, for an "
    "inequality 1 - measured/bound (or its relative slack), for a yes/no sub-claim "
    "0 when it held and -1 when not. margin >= 0 means the claim held on every "
    "instance; the formula of each row is its details['margin']."
)


def to_jsonable(obj):
    """Convert numpy values, enums, dataclasses and paths into plain JSON values.

    Floats keep full precision (``repr`` round-trips); non-finite floats become the
    strings ``"nan"``, ``"inf"``, ``"-inf"`` because JSON has no such numbers.
    """
    if isinstance(obj, enum.Enum):
        return obj.value
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)
        }
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer | int):
        return int(obj)
    if isinstance(obj, np.floating | float):
        x = float(obj)
        return (
            x
            if math.isfinite(x)
            else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))
        )
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` so that readers see the old file or the new one, never half.
    The file gets the mode a plain ``open`` would give (0666 less the umask), not
    the 0600 of the temporary file it is written through."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path, payload) -> Path:
    return atomic_write_text(
        path, json.dumps(to_jsonable(payload), indent=2, allow_nan=False) + "\n"
    )


def environment() -> dict:
    import scipy
    import sympy

    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sympy": sympy.__version__,
    }
    try:
        import torch

        env["torch"] = torch.__version__
    except ImportError:  # torch is a dependency, but a report should still be written
        env["torch"] = None
    return env


def git_commit() -> str | None:
    """The commit of the source tree the package was imported from (None when it is
    not a git checkout); ``+dirty`` when it has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def provenance(seed: int, profile: str) -> dict:
    """Who made the report: package version, git commit, UTC date, seed, profile."""
    return {
        "version": version(),
        "commit": git_commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "profile": profile,
    }


def _counts(rows: list[Row]) -> dict[str, int]:
    status = claim_status(rows)
    return {s.value: sum(1 for v in status.values() if v is s) for s in Status}


def report_payload(
    rows: list[Row], seed: int, profile: str, prov: dict | None = None
) -> dict:
    status = claim_status(rows)
    prov = prov or provenance(seed, profile)
    return {
        "tool": "deq-dynamics verify",
        **prov,
        "margin_definition": MARGIN_DEFINITION,
        "environment": environment(),
        "summary": _counts(rows),
        "claims": {cid: s.value for cid, s in status.items()},
        "reduced": claim_reduced(rows),
        "rows": [
            {
                "claim": r.claim_id,
                "part": r.part,
                "kind": r.kind,
                "statement": r.statement,
                "paper": BY_ID[r.claim_id].paper,
                "seconds": r.seconds,
                "reduced": r.reduced,
                **to_jsonable(r.result),
            }
            for r in rows
        ],
    }


def _fmt(x) -> str:
    if x is None:
        return ""
    if isinstance(x, float | np.floating):
        return f"{float(x):.3g}"
    return str(x)


def md_cell(text) -> str:
    """Text safe inside a Markdown table cell: ``|`` escaped (shown as ``|``, not
    replaced), newlines as spaces."""
    return (
        str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    )


def _status_cell(r: Row) -> str:
    s = r.result.status.value
    return f"{s} (reduced: {', '.join(r.reduced)})" if r.reduced else s


def _figure_links(figures: list[str], base: Path | None) -> str:
    links = []
    for f in figures:
        p = Path(f)
        if base is not None:
            try:
                p = Path(os.path.relpath(p.resolve(), base.resolve()))
            except ValueError:  # another drive
                pass
        links.append(f"[{md_cell(p.name)}]({p.as_posix().replace(' ', '%20')})")
    return " ".join(links)


def markdown(
    rows: list[Row],
    seed: int,
    profile: str,
    prov: dict | None = None,
    base: Path | None = None,
) -> str:
    """The Markdown report: provenance, the margin definition, one table row per
    claim part, then each claim's statement and paper. Figure links are relative to
    ``base`` (the report's directory) when given."""
    prov = prov or provenance(seed, profile)
    counts = _counts(rows)
    lines = [
        f"# deq-dynamics verify (profile {profile}, seed {seed})",
        "",
        f"deq-dynamics {prov['version']}, commit {prov['commit'] or 'unknown'}, "
        f"{prov['date']}, seed {seed}, profile {profile}.",
        "",
        ", ".join(f"{v} {k}" for k, v in counts.items() if v),
        "",
        f"**Margin.** {MARGIN_DEFINITION}",
        "",
        "**Status.** pass / fail (the claim did not hold) / error (the check crashed, "
        "its input was invalid, or the full profile ran less than stated) / "
        "not-implemented / skipped; `reduced: name ran/stated` marks a row that ran "
        "fewer instances or steps than the catalogue states (quick profile only).",
        "",
        "| claim | part | status | measured | predicted/bound | worst margin "
        "| tol | n | s | figures | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        res = r.result
        lines.append(
            f"| {r.claim_id} | {md_cell(r.part)} | {md_cell(_status_cell(r))} | "
            f"{_fmt(res.measured)} | {_fmt(res.predicted)} | "
            f"{_fmt(res.worst_margin)} | {_fmt(res.tolerance)} | "
            f"{res.instances} | {r.seconds:.2f} | "
            f"{_figure_links(res.figures, base)} | {md_cell(res.reason)} |"
        )
    lines += ["", "## Claims", "", "| claim | paper | statement |", "|---|---|---|"]
    seen = []
    for r in rows:
        if r.claim_id not in seen:
            seen.append(r.claim_id)
    for cid in seen:
        c = BY_ID[cid]
        lines.append(
            f"| {cid} | {c.paper} {md_cell(c.result)} | {md_cell(c.statement)} |"
        )
    return "\n".join(lines) + "\n"


def table(rows: list[Row]) -> str:
    """A plain-text table for the terminal."""
    head = (
        f"{'claim':<20} {'part':<14} {'status':<16} {'worst margin':>13} "
        f"{'n':>6} {'s':>7}"
    )
    out = [head, "-" * len(head)]
    for r in rows:
        res = r.result
        st = res.status.value + ("*" if r.reduced else "")
        out.append(
            f"{r.claim_id:<20} {r.part[:14]:<14} {st:<16} "
            f"{_fmt(res.worst_margin):>13} {res.instances:>6} {r.seconds:>7.2f}"
        )
        if r.reduced:
            out.append(f"{'':<20} * reduced: {', '.join(r.reduced)}")
        if (
            res.status in (Status.failed, Status.error, Status.skipped)
            and res.reason
        ):
            out.append(f"{'':<20} -> {res.reason}")
    return "\n".join(out)

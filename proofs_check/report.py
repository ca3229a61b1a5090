"""Reports: JSON at full float precision and Markdown, both written atomically."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

from .registry import Row, Status, claim_status


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


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
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


def report_payload(rows: list[Row], seed: int, profile: str) -> dict:
    status = claim_status(rows)
    counts = {s.value: sum(1 for v in status.values() if v is s) for s in Status}
    return {
        "tool": "deq-dynamics verify",
        "seed": seed,
        "profile": profile,
        "environment": environment(),
        "summary": counts,
        "claims": {cid: s.value for cid, s in status.items()},
        "rows": [
            {
                "claim": r.claim_id,
                "part": r.part,
                "kind": r.kind,
                "statement": r.statement,
                "seconds": r.seconds,
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


def markdown(rows: list[Row], seed: int, profile: str) -> str:
    status = claim_status(rows)
    counts = {s.value: sum(1 for v in status.values() if v is s) for s in Status}
    lines = [
        f"# deq-dynamics verify (profile {profile}, seed {seed})",
        "",
        ", ".join(f"{v} {k}" for k, v in counts.items() if v),
        "",
        "| claim | part | status | measured | predicted/bound | worst margin "
        "| tol | n | s | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        res = r.result
        note = res.reason.replace("|", "/").replace("\n", " ")
        lines.append(
            f"| {r.claim_id} | {r.part} | {res.status.value} | "
            f"{_fmt(res.measured)} | {_fmt(res.predicted)} | "
            f"{_fmt(res.worst_margin)} | {_fmt(res.tolerance)} | "
            f"{res.instances} | {r.seconds:.2f} | {note} |"
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
        out.append(
            f"{r.claim_id:<20} {r.part[:14]:<14} {res.status.value:<16} "
            f"{_fmt(res.worst_margin):>13} {res.instances:>6} {r.seconds:>7.2f}"
        )
        if res.status in (Status.failed, Status.skipped) and res.reason:
            out.append(f"{'':<20} -> {res.reason}")
    return "\n".join(out)

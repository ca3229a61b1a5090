"""Reports: full-precision JSON, Markdown, atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from proofs_check.registry import CheckResult, Row, Status
from proofs_check.report import (
    atomic_write_text,
    markdown,
    report_payload,
    to_jsonable,
    write_json,
)


def _row(status=Status.passed, margin=0.25):
    return Row(
        "LIN-PL",
        "scalar",
        "property",
        "stmt",
        CheckResult(status, measured=1 / 3, worst_margin=margin, instances=7),
        0.5,
    )


def test_floats_round_trip_at_full_precision(tmp_path):
    x = np.float64(1.0) / 3.0
    path = write_json(tmp_path / "r.json", {"x": x, "a": np.arange(3.0) / 7.0})
    data = json.loads(path.read_text())
    assert data["x"] == float(x)
    assert data["a"] == (np.arange(3.0) / 7.0).tolist()


def test_non_finite_values_are_spelled_out():
    assert to_jsonable([np.nan, np.inf, -np.inf]) == ["nan", "inf", "-inf"]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_payload_and_markdown_carry_every_row():
    rows = [_row(), _row(Status.failed, -1.0)]
    payload = report_payload(rows, seed=5, profile="quick")
    assert payload["claims"] == {"LIN-PL": "fail"}
    assert payload["summary"]["fail"] == 1 and payload["seed"] == 5
    assert [r["status"] for r in payload["rows"]] == ["pass", "fail"]
    md = markdown(rows, 5, "quick")
    assert md.count("| LIN-PL | scalar |") == 2 and "| fail |" in md


def test_pipes_are_escaped_not_replaced():
    """A ``|`` in a reason or statement stays a ``|`` (escaped), and the row keeps
    its column count."""
    row = _row()
    row.result.reason = "|1 - v| <= r_0"
    md = markdown([row], 0, "quick")
    line = next(x for x in md.splitlines() if x.startswith("| LIN-PL | scalar"))
    assert "\\|1 - v\\| <= r_0" in line
    head = next(x for x in md.splitlines() if x.startswith("| claim | part"))
    unescaped = lambda s: s.replace("\\|", "").count("|")  # noqa: E731
    assert unescaped(line) == unescaped(head)


def test_written_files_follow_the_umask(tmp_path):
    """Reports get 0666 less the umask, like a plain open(), not mkstemp's 0600."""
    old = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "r.md", "x")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644


def test_reduced_rows_are_visible():
    row = _row()
    row.reduced = ["instances 512/10000"]
    md = markdown([row], 0, "quick")
    assert "pass (reduced: instances 512/10000)" in md
    payload = report_payload([row], seed=0, profile="quick")
    assert payload["reduced"] == {"LIN-PL": ["instances 512/10000"]}

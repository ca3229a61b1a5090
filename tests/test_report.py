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
    assert md.count("| LIN-PL |") == 2 and "| fail |" in md

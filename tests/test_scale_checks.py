"""SCALE-COND / SCALE-RATE checks and the ``deq-dynamics scale`` command."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from dynamics.batched import scale as scale_mod
from dynamics.batched.scale import ScaleConfig, run_scale, summarise
from proofs_check.checks.scale import FLOAT32_TOLERANCES, TOLERANCES, judge
from proofs_check.cli import main
from proofs_check.registry import Context, Status, run

SMALL = dict(instances=48, gf_steps=10, gd_steps=20, midpoint_every=8, midpoint_steps=3)


@pytest.mark.claim("SCALE-COND")
@pytest.mark.claim("SCALE-RATE")
def test_scale_checks_pass_in_quick_profile():
    """SCALE-COND, SCALE-RATE: the quick-profile checks pass, margins above -tol."""
    rows = run(["SCALE-*"], Context(seed=0, profile="quick"))
    assert {r.claim_id for r in rows} == {"SCALE-COND", "SCALE-RATE"}
    for r in rows:
        assert r.result.status is Status.passed, (r.claim_id, r.result.reason)
        assert r.result.worst_margin >= -r.result.tolerance
    rows = [r for r in rows if r.part == "batched"]  # the sweep (not constants)
    assert all(r.result.instances == 512 for r in rows)
    cond = next(r for r in rows if r.claim_id == "SCALE-COND").result
    assert cond.details["replay"]["max_theta_diff"] <= TOLERANCES["replay"]
    assert cond.details["verdict"]["max_drift"] <= TOLERANCES["drift"]
    rate = next(r for r in rows if r.claim_id == "SCALE-RATE").result
    assert rate.details["verdict"]["kappa_ratio_min"] >= 1 - TOLERANCES["kappa_ratio"]


def test_too_tight_bound_is_detected(monkeypatch):
    """Falsification: a deliberately wrong bound (kappa x 50, cond floor x 1e3) is
    reported as a violation of both claims."""
    real = scale_mod.rate_constants

    def too_tight(*args, **kwargs):
        c = real(*args, **kwargs)
        return dataclasses.replace(
            c, kappa=c.kappa * 50.0, cond_lower=c.cond_lower * 1e3
        )

    monkeypatch.setattr(scale_mod, "rate_constants", too_tight)
    result = run_scale(ScaleConfig(**SMALL))
    verdicts = judge(summarise(result.arrays))
    for claim in ("SCALE-COND", "SCALE-RATE"):
        v = verdicts[claim]
        assert not v["passed"], claim
        assert v["worst_margin"] < 0
        assert any("violated" in r for r in v["reasons"])


def test_judge_uses_loosened_float32_tolerances():
    result = run_scale(ScaleConfig(**SMALL, dtype="float32"))
    summary = summarise(result.arrays)
    v = judge(summary, "float32")
    assert v["SCALE-COND"]["tolerance"] == FLOAT32_TOLERANCES["cond"]
    assert v["SCALE-COND"]["max_drift"] <= FLOAT32_TOLERANCES["drift"]


def test_cli_scale_writes_report(tmp_path, capsys):
    out = tmp_path / "scale.json"
    figs = tmp_path / "figs"
    rc = main(
        [
            "scale",
            "--instances",
            "48",
            "--gf-steps",
            "10",
            "--gd-steps",
            "20",
            "--midpoint-every",
            "8",
            "--json",
            str(out),
            "--figures",
            str(figs),
        ]
    )
    text = capsys.readouterr()
    assert rc == 0, text.out + text.err
    assert "SCALE-COND pass" in text.out and "SCALE-RATE pass" in text.out
    assert "[chunk 1/1]" in text.err  # progress is shown
    payload = json.loads(out.read_text())
    assert payload["summary"]["instances"] == 48
    assert payload["verdicts"]["SCALE-COND"]["passed"]
    assert payload["replay"]["max_theta_diff"] <= TOLERANCES["replay"]
    assert sorted(p.name for p in figs.iterdir()) == [
        "scale-drift-vs-dtype.pdf",
        "scale-drift-vs-dtype.png",
        "scale-rate-ratio-hist.pdf",
        "scale-rate-ratio-hist.png",
        "scale-worst-sigma-min.pdf",
        "scale-worst-sigma-min.png",
    ]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cli_scale_cuda_without_cuda_is_a_clear_error(capsys):
    rc = main(["scale", "--instances", "4", "--device", "cuda"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "CUDA is not available" in err and "--device cpu" in err

"""The deq-dynamics command line: verify's exit code, reports and determinism."""

from __future__ import annotations

import json

import pytest

from proofs_check import registry
from proofs_check.cli import main
from proofs_check.registry import judged


@pytest.fixture
def fake_checks(monkeypatch):
    checks: dict = {}
    monkeypatch.setattr(registry, "_CHECKS", checks)
    monkeypatch.setattr(registry, "load_checks", lambda: checks)

    def seeded(ctx):
        draw = float(ctx.rng("LIN-PL").normal())
        return judged(True, measured=draw, worst_margin=abs(draw), instances=3)

    registry.check("LIN-PL")(seeded)
    return checks


def _strip_seconds(payload):
    for row in payload["rows"]:
        row.pop("seconds")
    payload.pop("date")
    return payload


def test_verify_writes_reports_and_is_deterministic(fake_checks, tmp_path, capsys):
    args = [
        "verify",
        "--claims",
        "LIN-PL",
        "--claims",
        "LIN-GRAD",
        "--seed",
        "7",
        "--quiet",
    ]
    assert (
        main(
            args
            + ["--json", str(tmp_path / "a.json"), "--markdown", str(tmp_path / "a.md")]
        )
        == 0
    )
    assert main(args + ["--json", str(tmp_path / "b.json")]) == 0
    a = _strip_seconds(json.loads((tmp_path / "a.json").read_text()))
    b = _strip_seconds(json.loads((tmp_path / "b.json").read_text()))
    assert a == b
    assert a["claims"] == {"LIN-GRAD": "not-implemented", "LIN-PL": "pass"}
    assert "LIN-PL" in (tmp_path / "a.md").read_text()
    assert (
        main(args[:-3] + ["--seed", "8", "--quiet", "--json", str(tmp_path / "c.json")])
        == 0
    )
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["rows"][-1]["measured"] != a["rows"][-1]["measured"]
    assert "LIN-PL" in capsys.readouterr().out


def test_verify_exits_1_when_a_claim_fails(fake_checks):
    registry.check("LIN-GRAD")(lambda ctx: judged(False, reason="off by 2"))
    assert main(["verify", "--claims", "LIN-*", "--quiet"]) == 1


def test_verify_rejects_an_unknown_glob(fake_checks, capsys):
    assert main(["verify", "--claims", "NOPE-*", "--quiet"]) == 2
    assert "no claim matches" in capsys.readouterr().err


def test_verify_rejects_an_unknown_profile(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--profile", "medium"])


def test_reproduce_unknown_protocol(capsys):
    assert main(["reproduce", "no-such-protocol"]) == 2
    assert "unknown protocol" in capsys.readouterr().err


def test_reproduce_list(capsys):
    assert main(["reproduce", "list"]) == 0


def test_strict_exits_1_unless_every_claim_passes(fake_checks):
    """Without --strict a not-implemented claim is no failure; with it, it is."""
    args = ["verify", "--claims", "LIN-PL", "--claims", "LIN-GRAD", "--quiet"]
    assert main(args) == 0
    assert main(args + ["--strict"]) == 1
    assert main(["verify", "--claims", "LIN-PL", "--quiet", "--strict"]) == 0


def test_an_erroring_check_exits_1(fake_checks):
    registry.check("LIN-GRAD")(lambda ctx: 1 / 0)
    assert main(["verify", "--claims", "LIN-GRAD", "--quiet"]) == 1


def test_list_prints_the_catalogue(capsys):
    assert main(["verify", "--list"]) == 0
    out = capsys.readouterr().out
    from proofs_check.catalogue import CLAIM_IDS

    assert all(cid in out for cid in CLAIM_IDS)
    assert "sizes: instances 10000" in out and "arXiv:2509.12917" in out


def test_reports_carry_provenance(fake_checks, tmp_path):
    from proofs_check._version import version

    md, js = tmp_path / "r.md", tmp_path / "r.json"
    args = ["verify", "--claims", "LIN-PL", "--seed", "3", "--quiet"]
    assert main(args + ["--json", str(js), "--markdown", str(md)]) == 0
    payload = json.loads(js.read_text())
    text = md.read_text()
    for key in ("version", "commit", "date", "seed", "margin_definition"):
        assert key in payload
    assert payload["seed"] == 3 and payload["version"] == version()
    assert f"deq-dynamics {version()}" in text and "seed 3" in text
    assert payload["date"][:10] in text and "**Margin.**" in text
    assert "arXiv:2511.16976" in text  # LIN-PL's paper, in the claims section

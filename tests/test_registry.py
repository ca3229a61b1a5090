"""The claim registry: every catalogue ID is reported, and nothing passes unchecked."""

from __future__ import annotations

import pytest

from proofs_check import registry
from proofs_check.catalogue import BY_ID, CLAIM_IDS
from proofs_check.registry import CheckResult, Context, Status, judged


@pytest.fixture
def empty_registry(monkeypatch):
    checks: dict = {}
    monkeypatch.setattr(registry, "_CHECKS", checks)
    monkeypatch.setattr(registry, "load_checks", lambda: checks)
    return checks


def test_every_claim_cites_a_theory_page():
    """Every catalogued claim links to the page of docs/theory that derives it, so the
    catalogue needs nothing outside the repository."""
    from proofs_check import docs_catalogue as dc

    missing = {
        cid: dc.theory_links(BY_ID[cid])
        for cid in CLAIM_IDS
        if not dc.theory_links(BY_ID[cid])
        or not all(href for _, href in dc.theory_links(BY_ID[cid]))
    }
    assert not missing, missing


def test_unchecked_claims_are_not_implemented(empty_registry):
    rows = registry.run(None, Context())
    assert {r.claim_id for r in rows} == set(CLAIM_IDS)
    assert all(r.result.status is Status.not_implemented for r in rows)


def test_parts_fold_to_worst_status(empty_registry):
    registry.check("LIN-GRAD", part="a")(lambda ctx: judged(True))
    registry.check("LIN-GRAD", part="b")(lambda ctx: judged(False, reason="bad"))
    registry.check("LIN-PL", part="a")(lambda ctx: judged(True))
    rows = registry.run(["LIN-GRAD", "LIN-PL"], Context())
    status = registry.claim_status(rows)
    assert status == {"LIN-GRAD": Status.failed, "LIN-PL": Status.passed}


def test_crashing_check_is_an_error_not_a_fail(empty_registry):
    """A check that crashes says nothing about its theorem: status error, never fail."""

    def boom(ctx):
        raise ZeroDivisionError("division by zero in the check")

    registry.check("LIN-PL")(boom)
    (row,) = registry.run(["LIN-PL"], Context())
    assert row.result.status is Status.error
    assert "ZeroDivisionError" in row.result.reason
    assert registry.claim_status([row]) == {"LIN-PL": Status.error}


def test_check_must_return_a_result(empty_registry):
    registry.check("LIN-PL")(lambda ctx: True)
    (row,) = registry.run(["LIN-PL"], Context())
    assert row.result.status is Status.error and "CheckResult" in row.result.reason


def test_fail_outranks_error_when_parts_fold(empty_registry):
    registry.check("LIN-PL", part="a")(lambda ctx: judged(False, reason="x"))
    registry.check("LIN-PL", part="b")(lambda ctx: 1 / 0)
    rows = registry.run(["LIN-PL"], Context())
    assert registry.claim_status(rows) == {"LIN-PL": Status.failed}


def test_reduced_run_is_marked_in_quick_and_an_error_in_full(empty_registry):
    """A check reporting fewer instances than the catalogue states is marked reduced
    (quick), and is an error in the full profile, which never runs reduced."""
    stated = registry.BY_ID["SCALE-COND"].sizes["instances"]
    assert stated == 10_000
    registry.check("SCALE-COND")(
        lambda ctx: judged(True, ran={"instances": 10_000 if ctx.full else 512})
    )
    (quick,) = registry.run(["SCALE-COND"], Context(profile="quick"))
    assert quick.result.status is Status.passed
    assert quick.reduced == ["instances 512/10000"]
    (full,) = registry.run(["SCALE-COND"], Context(profile="full"))
    assert full.result.status is Status.passed and full.reduced == []

    registry._CHECKS.clear()
    registry.check("SCALE-COND")(lambda ctx: judged(True, ran={"instances": 512}))
    (bad,) = registry.run(["SCALE-COND"], Context(profile="full"))
    assert bad.result.status is Status.error
    assert "instances 512/10000" in bad.result.reason


def test_every_stated_size_is_reported_by_some_check():
    """Each size the catalogue states is reported (``ran``) by a real check, so the
    reduced marker can fire: run the cheap ones and read the source of the rest."""
    import inspect

    from proofs_check.catalogue import CLAIMS

    checks = registry.load_checks()
    for c in CLAIMS:
        for name in c.sizes:
            src = "".join(
                inspect.getsource(chk.fn)
                for (cid, _), chk in checks.items()
                if cid == c.id
            )
            assert f'"{name}"' in src, (c.id, name)


def test_unknown_ids_and_kinds_are_rejected():
    with pytest.raises(KeyError, match="not in the claim catalogue"):
        registry.check("LIN-NOPE")
    with pytest.raises(ValueError, match="unknown check kind"):
        registry.check("LIN-PL", kind="vibes")
    with pytest.raises(ValueError, match="no claim matches"):
        registry.select(["XYZ-*"])
    with pytest.raises(ValueError, match="unknown profile"):
        Context(profile="medium")


def test_glob_selection_is_case_insensitive():
    assert registry.select(["lin-gd-*"]) == [
        c for c in CLAIM_IDS if c.startswith("LIN-GD-")
    ]


def test_context_rng_depends_on_seed_and_tag_only():
    a, b = Context(seed=3), Context(seed=3, profile="full")
    assert a.rng("x").normal() == b.rng("x").normal()
    assert a.rng("x").normal() != a.rng("y").normal()
    assert a.rng("x").normal() != Context(seed=4).rng("x").normal()


def test_registered_checks_use_catalogue_ids():
    checks = registry.load_checks()
    assert {cid for cid, _ in checks} <= set(CLAIM_IDS)
    for chk in checks.values():
        assert isinstance(chk.part, str) and chk.part


def test_checkresult_defaults_are_honest():
    res = CheckResult(Status.skipped, reason="no CUDA")
    assert res.instances == 0 and res.measured is None


def test_every_tolerance_has_a_value_and_a_reason():
    """Tolerances live with their claim in the catalogue, each with its reason."""
    from proofs_check.catalogue import CLAIMS, tol

    named = [(c.id, k, t) for c in CLAIMS for k, t in c.tolerances.items()]
    assert len(named) >= 20
    for cid, name, t in named:
        assert t.value > 0 and len(t.reason) > 20, (cid, name)
        assert tol(cid, name) == t.value
    # The two rate envelopes differ on purpose (integrator error vs rounding only).
    assert tol("LIN-GF-RATE", "envelope") == 1e-8
    assert tol("LIN-GD-RATE", "envelope") == 1e-9


def test_a_protocol_runs_once_per_context(monkeypatch):
    """protocol_data caches per context: two checks judging P-SWEEP share one run;
    another seed or another context runs it again."""
    from proofs_check import protocols

    calls = []
    fake = protocols.Protocol(
        "fake", "P-FAKE", "counts calls", lambda ctx, **kw: calls.append(kw) or {}
    )
    monkeypatch.setattr(protocols, "load_protocols", lambda: {"fake": fake})
    ctx = Context(seed=0)
    a = protocols.protocol_data(ctx, "fake", n=1)
    assert protocols.protocol_data(ctx, "fake", n=1) is a
    protocols.protocol_data(ctx, "fake", n=2)
    protocols.protocol_data(Context(seed=1), "fake", n=1)
    assert calls == [{"n": 1}, {"n": 2}, {"n": 1}]


def test_from_margins_passes_only_when_every_margin_holds():
    from proofs_check.registry import CheckResult

    ok = CheckResult.within([(1e-13, 1e-12), (5e-8, 1e-7)], measured=1e-13)
    assert ok.status is Status.passed and ok.worst_margin == pytest.approx(0.5)
    bad = CheckResult.within([(1e-13, 1e-12)], also=False)
    assert bad.status is Status.failed
    assert CheckResult.from_margins([0.3, -1e-3]).status is Status.failed


def test_figure_names_use_dashes_and_the_reduced_suffix(tmp_path):
    """One naming scheme for checks and protocols: ``_`` becomes ``-``, a reduced run
    adds ``-quick``, a full run does not, and no directory means no figure."""
    from proofs_check.protocols import ProtocolContext

    quick = Context(profile="quick", figures_dir=tmp_path / "f")
    assert quick.figure_path("lin_gd_rate") == tmp_path / "f" / "lin-gd-rate-quick.png"
    assert quick.figure_path("sweep_lm", reduced=False) == tmp_path / "f/sweep-lm.png"
    assert Context(profile="full", figures_dir=tmp_path).figure_path("a_b") == (
        tmp_path / "a-b.png"
    )
    assert Context().figure_path("a_b") is None
    # protocols name their figures with the same function
    pctx = ProtocolContext(figures_dir=tmp_path, suffix="-quick")
    assert pctx.figure_path("p_leg") == tmp_path / "p-leg-quick.png"


def test_load_checks_imports_every_module_of_the_checks_package():
    """The registry imports the check modules by name (it must not import them
    statically: they import it); every module file of the package is loaded."""
    import sys
    from pathlib import Path

    registry.load_checks()
    assert registry.CHECKS_PACKAGE == "proofs_check.checks"
    folder = Path(sys.modules[registry.CHECKS_PACKAGE].__file__).parent
    files = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    assert files and all(f"{registry.CHECKS_PACKAGE}.{f}" in sys.modules for f in files)

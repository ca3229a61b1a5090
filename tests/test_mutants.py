"""Checks of the checks (proofs_check.mutants): every planted bug must turn each of
its target claims to ``fail``. A surviving mutant is a check that cannot see the bug
it exists to catch, so it fails here. The fast subset runs in the CI profile, every
mutant under ``-m slow``."""

from __future__ import annotations

import pytest

from proofs_check.mutants import (
    MUTANTS,
    Mutant,
    kill_table,
    replace_function,
    run_mutant,
)
from proofs_check.registry import Status

FAST = [m for m in MUTANTS if m.fast]
SLOW = [m for m in MUTANTS if not m.fast]


def _assert_killed(m: Mutant) -> None:
    kill = run_mutant(m)
    # A crash is not a kill: each target must fail on a measurement in some part.
    measured = {
        r.claim_id
        for r in kill.rows
        if r.result.status is Status.failed
        and not r.result.reason.startswith("check raised")
    }
    missing = set(m.targets) - measured
    assert kill.killed and not missing, (
        kill_table([kill]) + f"\nno measured failure: {sorted(missing)}"
    )


@pytest.mark.parametrize("mutant", FAST, ids=lambda m: m.name)
def test_fast_mutant_is_killed(mutant):
    """Each fast mutant turns every target claim to fail."""
    _assert_killed(mutant)


@pytest.mark.slow
@pytest.mark.parametrize("mutant", SLOW, ids=lambda m: m.name)
def test_slow_mutant_is_killed(mutant):
    """Each remaining mutant turns every target claim to fail."""
    _assert_killed(mutant)


def test_catalogue_covers_every_family_and_listed_bug():
    """Every claim family has a mutant, and the bugs of issue 11 are all planted."""
    families = {c.split("-")[0] for m in MUTANTS for c in m.targets}
    assert families >= {"LIN", "SIM", "APX", "REV", "SCALE", "DISC", "REPRO"}
    names = {m.name for m in MUTANTS}
    assert names >= {
        "scale-kappa-2x",
        "gd-step-4x",
        "gd-step-100x",
        "hstar-no-2",
        "neumann-short",
        "gf-rate-matrix",
        "rev-beta-swap",
    }


def test_patch_is_undone_everywhere():
    """replace_function patches every binding (module and from-imports) and restores
    them all on exit."""
    from dynamics import rates
    from proofs_check.checks import lin_gf_rate  # noqa: F401 - binds rates by module

    before = rates.gf_rate
    with replace_function("dynamics.rates", "gf_rate", lambda f: lambda *a, **k: -1.0):
        assert rates.gf_rate() == -1.0
    assert rates.gf_rate is before


def test_cli_prints_kill_table(capsys):
    """`verify --mutants NAME` prints the kill table and exits 0 when it is killed;
    an unknown name exits 2."""
    from proofs_check.cli import main

    assert main(["verify", "--mutants", "rev-beta-swap", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "rev-beta-swap" in out and "1/1 mutants killed" in out
    assert main(["verify", "--mutants", "no-such-bug", "--quiet"]) == 2


def test_surviving_mutant_exits_one(capsys, monkeypatch):
    """A mutant whose target does not fail (a no-op patch) is reported as
    surviving and `verify --mutants` exits 1."""
    import contextlib

    from proofs_check import mutants
    from proofs_check.cli import main

    noop = Mutant("noop", "nothing", contextlib.nullcontext, ("REV-INVERT",))
    monkeypatch.setitem(mutants.BY_NAME, "noop", noop)
    assert main(["verify", "--mutants", "noop", "--quiet"]) == 1
    assert "SURVIVED: noop" in capsys.readouterr().out

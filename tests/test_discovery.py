"""Conservation-law discovery (proofs_check.discovery): the counts of
docs/theory/discovery.md's table,
the exact polynomial laws, user maps and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp

from proofs_check.checks.discovery import (
    MATRIX_FULL,
    MATRIX_QUICK,
    NETS,
    READOUT_FULL,
    READOUT_QUICK,
)
from proofs_check.cli import main
from proofs_check.discovery import discover, maps, polynomial_laws
from proofs_check.discovery.polynomial import rational_reconstruction, verify_law

EXAMPLE = Path(__file__).parents[1] / "proofs_check" / "discovery" / "example_map.py"


def _count(model, seed=0):
    # The finite-difference cross-check of each level is tested in test_lie.py.
    r = discover(model, degree=None, seed=seed, fd_check=False)
    assert r.lie.clear, r.report()
    return r.n_laws


@pytest.mark.claim("DISC-LIN")
@pytest.mark.parametrize("d", [1, 2, 3])
def test_disc_lin_scalar(d):
    """DISC-LIN: the scalar linear DEQ has exactly one law (Q), d = 1, 2, 3."""
    assert _count(maps.scalar_linear(d)) == 1


@pytest.mark.claim("DISC-LIN")
@pytest.mark.parametrize("m,d", MATRIX_QUICK + ((3, 1),))
def test_disc_lin_matrix(m, d):
    """DISC-LIN: matrix DEQ without readout, m(m+1)/2 laws."""
    assert _count(maps.matrix_linear(m, d)) == m * (m + 1) // 2


@pytest.mark.claim("DISC-LIN")
@pytest.mark.parametrize("shape", READOUT_QUICK)
def test_disc_lin_readout(shape):
    """DISC-LIN: with readout, m(m+1) laws (shapes of the spec table)."""
    m = shape[0]
    assert _count(maps.matrix_linear_readout(*shape)) == m * (m + 1)


@pytest.mark.slow
@pytest.mark.claim("DISC-LIN")
@pytest.mark.parametrize("shape", [s for s in MATRIX_FULL if s not in MATRIX_QUICK])
def test_disc_lin_matrix_full(shape):
    m = shape[0]
    assert _count(maps.matrix_linear(*shape)) == m * (m + 1) // 2


@pytest.mark.slow
@pytest.mark.claim("DISC-LIN")
@pytest.mark.parametrize("shape", [s for s in READOUT_FULL if s not in READOUT_QUICK])
def test_disc_lin_readout_full(shape):
    m = shape[0]
    assert _count(maps.matrix_linear_readout(*shape)) == m * (m + 1)


@pytest.mark.claim("DISC-LIN")
def test_degenerate_scalar_readout_map():
    """Readout with d = k = 1, m = 2: a single scalar output gives D - 1 = 7 laws."""
    assert _count(maps.matrix_linear_readout(2, 1, 1)) == 7


@pytest.mark.claim("DISC-DLN")
@pytest.mark.parametrize("widths,laws", list(zip(NETS, (3, 3, 6, 6))))
def test_disc_dln(widths, laws):
    """DISC-DLN: linear networks, sum r_i (r_i + 1) / 2 laws."""
    assert _count(maps.linear_net(widths)) == laws


@pytest.mark.claim("DISC-SIM")
@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "sigma_eps:1/4", "identity"])
def test_disc_sim(d, act):
    """DISC-SIM: no law for a nonlinear sigma; exactly one (Q) for sigma = id."""
    r = discover(maps.single_index(d, act, seed=d), degree=None, fd_check=False)
    assert r.lie.clear
    # the rank rule's rounding model, not fixed cutoffs (docs/theory/discovery.md)
    if act == "identity":
        assert r.n_laws == 1 and r.lie.dropped_over_floor <= 1.0
    else:
        assert r.n_laws == 0 and r.lie.kept_over_floor >= r.lie.clear_factor


POLY_CASES = [
    maps.scalar_linear(1),
    maps.scalar_linear(3),
    maps.matrix_linear(2, 1),
    maps.matrix_linear(2, 2),
    maps.matrix_linear_readout(2, 1, 2),
    maps.matrix_linear_readout(1, 2, 2),
    maps.linear_net((2, 2, 2)),
    maps.linear_net((2, 2, 2, 2)),
]


@pytest.mark.claim("DISC-LIN")
@pytest.mark.parametrize("model", POLY_CASES, ids=lambda m: m.name)
def test_polynomial_laws_equal_known_span(model):
    """DISC-LIN: degree-2 laws, verified exactly, span exactly the known laws."""
    P = polynomial_laws(model, 2)
    assert P.verified and P.known_span_equal is True
    assert P.functionally_independent == len(P.laws) == model.expected_laws


def test_verify_law_rejects_a_non_law():
    model = maps.matrix_linear(2, 1)
    assert verify_law(model.known_laws[0][1], model)
    w11, u11 = sp.symbols("w11 u11", real=True)
    assert not verify_law(w11**2 + u11**2, model)


def test_rational_reconstruction():
    from fractions import Fraction

    from proofs_check.discovery.polynomial import PRIME

    for q in (Fraction(1, 2), Fraction(-3, 7), Fraction(5), Fraction(0)):
        c = q.numerator * pow(q.denominator, -1, PRIME) % PRIME
        assert rational_reconstruction(c) == q


def test_user_map_from_file():
    """A user-supplied SymPy map (the README example): one law a^2 - b^2 + c^2."""
    model = maps.from_file(EXAMPLE)
    r = discover(model, degree=2)
    assert r.n_laws == 1 and r.pinned
    a, b, c = model.params
    assert sp.expand(r.poly.laws[0] - (a**2 - b**2 + c**2)) == 0


def test_user_implicit_map(tmp_path):
    """An implicit user map f = tanh(a x + b f) at two probes: no law."""
    src = tmp_path / "implicit.py"
    src.write_text(
        "import sympy as sp\n"
        "a, b = sp.symbols('a b', real=True)\n"
        "f1, f2 = sp.symbols('f1 f2', real=True)\n"
        "PARAMS = [a, b]\n"
        "UNKNOWNS = [f1, f2]\n"
        "EQUATIONS = [f1 - sp.tanh(a * sp.Rational(3, 4) + b * f1),\n"
        "             f2 - sp.tanh(-a * sp.Rational(5, 4) + b * f2)]\n"
    )
    model = maps.from_file(src)
    assert model.implicit and not model.rational
    r = discover(model, degree=2)
    assert r.n_laws == 0 and r.poly is None and r.lie.clear


def test_user_map_missing_names(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import sympy\nPARAMS = sympy.symbols('a b')\n")
    with pytest.raises(ValueError, match="OUTPUTS"):
        maps.from_file(bad)


def test_cli_discover(capsys):
    assert main(["discover", "scalar-linear", "--shape", "2"]) == 0
    out = capsys.readouterr().out
    assert (
        "independent conservation laws: 1" in out
        and "pinned from both sides: True" in out
    )
    assert main(["discover", "--map", str(EXAMPLE), "--degree", "2"]) == 0
    assert "a**2 - b**2 + c**2" in capsys.readouterr().out
    assert main(["discover", "no-such-model"]) == 2


def test_cli_prove(capsys):
    assert main(["prove", "REV-SYM"]) == 0
    out = capsys.readouterr().out
    assert "residual after reduction: 0" in out and "PASS" in out
    assert main(["prove", "LIN-GRAD"]) == 2
    assert main(["prove", "list"]) == 0

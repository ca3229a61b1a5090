"""Symbolic certificates (proofs_check.symbolic): every certificate reduces exactly to
0, and a wrong identity is rejected (non-zero residual, failed certificate)."""

from __future__ import annotations

import pytest
import sympy as sp

from proofs_check.symbolic import (
    CATALOGUE,
    CertificateError,
    approx,
    certify,
    linear,
    reversible,
    runs,
    single_index,
)

QUICK_RUNS = [
    pytest.param(r, id=r.label, marks=pytest.mark.claim(cid))
    for cid in CATALOGUE
    for r in runs(cid, full=False)
]
FULL_ONLY = [
    pytest.param(r, id=r.label, marks=[pytest.mark.claim(cid), pytest.mark.slow])
    for cid in CATALOGUE
    for r in CATALOGUE[cid]
    if r.full_only
]


@pytest.mark.parametrize("run", QUICK_RUNS + FULL_ONLY)
def test_certificate_reduces_to_zero(run):
    """Every catalogued certificate: residual exactly 0, side conditions proven."""
    cert = run().require()
    assert cert.residual == "0" and cert.residual_is_zero
    assert cert.steps and cert.sympy_version == sp.__version__
    assert cert.seconds > 0


@pytest.mark.claim("LIN-SYM-CONS")
def test_lin_sym_cons_rejects_wrong_center():
    """LIN-SYM-CONS: Q with (1 + v)^2 instead of (1 - v)^2 is not conserved."""
    cert = certify(
        linear.lin_sym_cons_scalar,
        d=2,
        Q=lambda u, v: sum(x**2 for x in u) + (1 + v) ** 2,
    )
    assert not cert.passed and not cert.residual_is_zero
    assert "g1" in cert.residual and "u1" in cert.residual
    with pytest.raises(CertificateError):
        cert.require()


@pytest.mark.claim("LIN-SYM-GD")
def test_lin_sym_gd_rejects_first_order_drift():
    """LIN-SYM-GD: the drift eta ||grad R||^2 (eta instead of eta^2) is rejected."""
    cert = certify(linear.lin_sym_gd_scalar, d=2, eta_power=1)
    assert not cert.passed and "eta" in cert.residual


@pytest.mark.claim("LIN-SYM-GD")
def test_lin_sym_gd_matrix_rejects_first_order_drift():
    """LIN-SYM-GD (matrix, general shapes): eta instead of eta^2 is rejected."""
    assert not certify(linear.lin_sym_gd_matrix, readout=False, eta_power=1).passed


@pytest.mark.claim("APX-NEUMANN-FACTOR")
def test_apx_factor_rejects_wrong_factor():
    """APX-NEUMANN-FACTOR: Neumann-2 with the JFB factor 1 - v is rejected."""
    cert = certify(approx.apx_factor, method="neumann", m=2, factor=lambda v, m: 1 - v)
    assert not cert.passed


@pytest.mark.claim("REV-DET")
def test_rev_det_rejects_wrong_power():
    """REV-DET: det M = (1 - beta)^(2d) holds, (1 - beta)^d does not."""
    der = reversible.rev_det_linear(d=2)
    der.residual = (
        der.residual + (1 - reversible.BETA) ** 4 - (1 - reversible.BETA) ** 2
    )
    from proofs_check.symbolic.certificate import reduce_residual

    assert reduce_residual(der.residual) != 0


@pytest.mark.claim("SIM-NONCONS")
def test_sim_noncons_rejects_half_loss_formula():
    """SIM-NONCONS: the formula with the 1/2-MSE factor (half the claim) is rejected."""
    cert = certify(single_index.sim_noncons, d=1, n=1, scale=sp.Rational(1, 2))
    assert not cert.passed


@pytest.mark.claim("REV-SYM")
def test_rev_sym_rejects_wrong_example():
    """REV-SYM: the residual of a wrong example value does not vanish."""
    der = reversible.rev_sym()
    der.residual = der.residual + sp.Matrix(
        [0] * 4 + [sp.Rational(1, 20)] + [0] * (len(der.residual) - 5)
    )
    from proofs_check.symbolic.certificate import reduce_residual

    assert any(e != 0 for e in reduce_residual(der.residual))


def test_certificate_record_is_frozen_and_serialisable():
    cert = certify(linear.lin_factor_scalar, d=2)
    with pytest.raises(AttributeError):
        cert.residual = "1"  # type: ignore[misc]
    out = cert.to_dict()
    assert out["passed"] is True and out["claim_id"] == "LIN-FACTOR"
    assert "LIN-FACTOR" in cert.render() and "PASS" in cert.render()

"""SymPy certificates for the claims whose algebra can be checked exactly.

Each certificate function (one per claim and model, named after the claim) builds the
model from its definition, lets SymPy differentiate it, and returns a
:class:`~.certificate.Derivation` whose residual must reduce to 0;
:func:`~.certificate.certify` turns it into a frozen :class:`~.certificate.Certificate`.
:data:`CATALOGUE` lists, per claim ID, the certificate runs of the quick and full
profiles; :func:`certificates` runs them. This package imports SymPy and NumPy only,
except :mod:`.consistency`, which compares the derived gradients with :mod:`dynamics`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from . import approx, linear, momentum, reversible, single_index
from .certificate import (
    Certificate as Certificate,
    CertificateError as CertificateError,
    Derivation as Derivation,
    certify as certify,
)


@dataclasses.dataclass(frozen=True)
class Run:
    """One certificate run: the function, its arguments, and whether only the full
    profile runs it (large shapes)."""

    fn: Callable[..., Derivation]
    kwargs: tuple[tuple[str, object], ...] = ()
    full_only: bool = False

    def __call__(self) -> Certificate:
        return certify(self.fn, **dict(self.kwargs))

    @property
    def label(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.kwargs)
        return f"{self.fn.__name__}({args})"


def _r(fn, full_only=False, **kwargs) -> Run:
    return Run(fn, tuple(kwargs.items()), full_only)


#: Claim ID -> certificate runs. The quick profile skips ``full_only`` runs.
CATALOGUE: dict[str, tuple[Run, ...]] = {
    "LIN-SYM-CONS": (
        *(_r(linear.lin_sym_cons_scalar, d=d) for d in (1, 2, 3, 4)),
        _r(linear.lin_sym_cons_matrix, readout=False),
        _r(linear.lin_sym_cons_matrix, readout=True),
        _r(linear.lin_sym_cons_matrix_explicit, m=2, d=1),
        _r(linear.lin_sym_cons_matrix_explicit, m=2, d=1, k=1),
        _r(linear.lin_sym_cons_matrix_explicit, True, m=2, d=2),
        _r(linear.lin_sym_cons_matrix_explicit, True, m=3, d=1),
        _r(linear.lin_sym_cons_matrix_explicit, True, m=2, d=2, k=2),
    ),
    "LIN-SYM-GD": (
        *(_r(linear.lin_sym_gd_scalar, d=d) for d in (1, 2, 3)),
        _r(linear.lin_sym_gd_scalar, True, d=4),
        _r(linear.lin_sym_gd_matrix, readout=False),
        _r(linear.lin_sym_gd_matrix, readout=True),
    ),
    "LIN-FACTOR": (
        *(_r(linear.lin_factor_scalar, d=d) for d in (1, 2, 3, 4)),
        _r(linear.lin_factor_matrix),
        *(_r(linear.lin_pl_identity_scalar, d=d) for d in (1, 2, 3)),
        _r(linear.lin_pl_identity_scalar, True, d=4),
    ),
    "LIN-MOM-DRIFT": (
        *(_r(momentum.lin_sym_mom_scalar, d=d, method=mt)
          for mt in momentum.METHODS for d in (1, 2)),
        *(_r(momentum.lin_sym_mom_scalar, True, d=3, method=mt)
          for mt in momentum.METHODS),
        *(_r(momentum.lin_sym_mom_matrix, method=mt, readout=ro)
          for mt in momentum.METHODS for ro in (False, True)),
    ),
    "SIM-NONCONS": (
        _r(single_index.sim_noncons, d=1, n=1),
        _r(single_index.sim_noncons, d=2, n=2),
        _r(single_index.sim_noncons, True, d=3, n=3),
    ),
    "SIM-HESS": (
        _r(single_index.sim_hess, d=1, n=1),
        _r(single_index.sim_hess, d=2, n=2),
        _r(single_index.sim_hess, True, d=3, n=3),
    ),
    "REV-DET": (
        *(_r(reversible.rev_det_linear, d=d) for d in (1, 2, 3)),
        _r(reversible.rev_det_linear, True, d=4),
        _r(reversible.rev_det_nonlinear, d=2),
        _r(reversible.rev_det_nonlinear, True, d=3),
        _r(reversible.rev_det_block),
    ),
    "REV-SYM": (_r(reversible.rev_sym),),
    "REV-SHARP": (_r(reversible.rev_sharp),),
    "APX-NEUMANN-FACTOR": (
        _r(approx.apx_factor, method="jfb", m=1),
        _r(approx.apx_factor, method="neumann", m=2),
        _r(approx.apx_factor, method="neumann", m=3),
        _r(approx.apx_factor, True, method="neumann", m=4),
        _r(approx.apx_factor, method="damped", m=2),
        _r(approx.apx_factor, True, method="damped", m=3),
        _r(approx.apx_factor, method="phantom", m=2),
        _r(approx.apx_factor, True, method="phantom", m=5),
        _r(approx.apx_neumann_general_m),
    ),
    "APX-JFB": (
        _r(approx.apx_jfb_linear),
        _r(approx.apx_jfb_single_index, d=2, n=2),
    ),
}


def runs(claim_id: str, full: bool = True) -> tuple[Run, ...]:
    """The certificate runs of ``claim_id`` (all, or the quick subset)."""
    if claim_id not in CATALOGUE:
        raise KeyError(
            f"no certificate for {claim_id!r}; certified claims: {', '.join(CATALOGUE)}"
        )
    return tuple(r for r in CATALOGUE[claim_id] if full or not r.full_only)


def certificates(claim_id: str, full: bool = True) -> list[Certificate]:
    """Run every certificate of ``claim_id`` and return them (nothing is cached)."""
    return [run() for run in runs(claim_id, full)]

"""Checks of the checks: a catalogue of planted bugs ("mutants") and the claims that
must turn to ``fail`` under each.

Every mutant is a small, reviewable patch of **one** engine function or constant,
applied in-process with :func:`unittest.mock.patch` (never by editing files) and
undone on exit. :func:`run_mutant` runs the checks of the mutant's target claims in
a fresh :class:`~.registry.Context` with the patch active (module-level caches of the
checks are cleared before and after, so no unpatched result is reused and no
patched one leaks out); the mutant is *killed* when every target claim is ``fail``.
A surviving mutant means a check that cannot see the bug it exists to catch.

``deq-dynamics verify --mutants`` runs the whole catalogue and prints the kill
table; ``tests/test_mutants.py`` runs a fast subset in the CI profile and all of
them under ``-m slow``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from unittest import mock

from .registry import Context, Row, Status, claim_status, run


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One planted bug.

    Attributes:
        name: stable identifier (``verify --mutants NAME`` runs one).
        bug: what is wrong, in words.
        patch: a context manager factory applying the bug for its duration.
        targets: claim IDs that must be ``fail`` under the bug.
        fast: part of the CI-profile subset of ``tests/test_mutants.py``.
    """

    name: str
    bug: str
    patch: Callable[[], contextlib.AbstractContextManager]
    targets: tuple[str, ...]
    fast: bool = False


@contextlib.contextmanager
def replace_function(module: str, name: str, make: Callable) -> Iterator[None]:
    """Replace function ``module.name`` by ``make(original)`` everywhere it is bound:
    in its module and in every loaded module that imported it by name (``from m
    import f`` makes a second binding a module-level patch alone would miss)."""
    mod = sys.modules.get(module) or __import__(module, fromlist=["_"])
    orig = getattr(mod, name)
    new = make(orig)
    with contextlib.ExitStack() as stack:
        for other in list(sys.modules.values()):
            if other is None or not getattr(other, "__name__", "").startswith(
                ("dynamics", "proofs_check")
            ):
                continue
            if getattr(other, name, None) is orig:
                stack.enter_context(mock.patch.object(other, name, new))
        yield


def replace_method(cls_path: str, name: str, make: Callable):
    """Patch method ``name`` of class ``module:Class`` with ``make(original)``."""
    module, cls_name = cls_path.split(":")
    mod = __import__(module, fromlist=["_"])
    cls = getattr(mod, cls_name)
    return mock.patch.object(cls, name, make(getattr(cls, name)))


def _scaled(factor: float):
    """``original`` with its return value multiplied by ``factor``."""

    def make(orig):
        def mutated(*args, **kwargs):
            return orig(*args, **kwargs) * factor

        return mutated

    return make


# ------------------------------------------------------------------ the mutants


def _lin_grad_u():
    """LinearDEQ gradient in u missing its 1/(1-v) factor (multiplied back by (1-v))."""

    def make(orig):
        def mutated(self, theta):
            risk, g = orig(self, theta)
            g = g.copy()
            g[:-1] *= 1.0 - float(theta[-1])
            return risk, g

        return mutated

    return replace_method(
        "dynamics.models.linear_deq:LinearDEQ", "value_and_grad", make
    )


def _gd_drift():
    """Gradient descent takes eta (1 + 1e-6) instead of eta: the iterates leave the
    R5 drift identity Q_{k+1} - Q_k = eta^2 ||grad R_k||^2 by ~2e-6 eta <theta, g>."""

    def make(orig):
        def mutated(model, theta0, eta, *args, **kwargs):
            run = orig(model, theta0, eta * (1.0 + 1e-6), *args, **kwargs)
            return run

        return mutated

    return replace_function("dynamics.flows.descent", "gradient_descent", make)


def _gf_rate_matrix():
    """The matrix GF rate uses 5 lambda / lambda_max(C0) instead of 4 lambda: a
    constant 1.25x too large, below the 1.26x the random instances ever reach."""

    def make(orig):
        def mutated(model, theta0, *args, **kwargs):
            k = orig(model, theta0, *args, **kwargs)
            return k if isinstance(model, LinearDEQ) else 1.25 * k

        return mutated

    from dynamics.models.linear_deq import LinearDEQ

    return replace_function("dynamics.rates", "gf_rate", make)


def _hstar_no_two():
    """H* = (1/n) sum s'^2 w w^T: the closed form lost its loss factor 2."""

    def make(orig):
        def mutated(self, xi):
            return orig(self, xi) / 2.0

        return mutated

    return replace_method(
        "dynamics.models.single_index:SingleIndexDEQ", "hessian_at_target", make
    )


def _sim_weights():
    """Single-index IFT weights w_i without the 1/(1 - v s'(s_i)) denominator."""

    def make(orig):
        def mutated(self, theta):
            sol, w = orig(self, theta)
            return sol, w * (1.0 - float(theta[-1]) * sol.slope)

        return mutated

    return replace_method(
        "dynamics.models.single_index:SingleIndexDEQ", "sample_weights", make
    )


def _neumann_abs():
    """Neumann-m backward factor with its sign lost: |sum_{j<m} J^j|. Where the
    truncated series is negative (even m, J < -1) the direction flips from ascent to
    descent; only the cosine's sign sees it (the magnitudes are unchanged)."""

    def make(orig):
        def mutated(self, J):
            return abs(orig(self, J))

        return mutated

    return replace_method("dynamics.gradients.neumann:Neumann", "inverse_factor", make)


def _neumann_short():
    """Neumann-m sums J^j for j < m - 1: one term short (Neumann-2 becomes JFB)."""

    def make(orig):
        def mutated(self, J):
            total = 1 + 0 * J
            power = 1 + 0 * J
            for _ in range(1, self.m - 1):
                power = power * J
                total = total + power
            return total

        return mutated

    return replace_method("dynamics.gradients.neumann:Neumann", "inverse_factor", make)


def _rev_beta_swap():
    """The reversible solver's step with beta and 1 - beta swapped (the inverse in
    the engine is unchanged, so forward then inverse no longer round-trips)."""

    def make(orig):
        def mutated(self, f, z, state):
            b = self.beta
            y = b * state["y"] + (1.0 - b) * state["fz"]
            z_next = b * z + (1.0 - b) * f(y)
            return z_next, {"fz": f(z_next), "y": y}

        return mutated

    return replace_method("dynamics.solvers.reversible:Reversible", "step", make)


def _rev_undo():
    """The reversible inverse half-step divides by beta instead of 1 - beta."""

    def make(orig):
        def mutated(self, u_next, f_value):
            b = self.beta
            return (u_next - b * f_value) / b

        return mutated

    return replace_method("dynamics.solvers.reversible:Reversible", "undo", make)


def _scale_kappa():
    """Batched GF rate kappa = 8 lambda / lambda_max(C0): twice too large."""

    def make(orig):
        def mutated(*args, **kwargs):
            c = orig(*args, **kwargs)
            return dataclasses.replace(c, kappa=2.0 * c.kappa)

        return mutated

    return replace_function("dynamics.batched.batched_linear", "rate_constants", make)


def _disc_rank():
    """The numeric rank of the Lie-bracket rows is one too large (one law lost)."""

    def make(orig):
        def mutated(*args, **kwargs):
            r, gap, s = orig(*args, **kwargs)
            return min(r + 1, len(s)), gap, s

        return mutated

    return replace_function("dynamics.lie", "numeric_rank", make)


def _disc_rank_low():
    """The numeric rank of the Lie-bracket rows is one too small: an independent
    direction far above the rounding floor is declared zero (a law invented)."""

    def make(orig):
        def mutated(*args, **kwargs):
            r, gap, s = orig(*args, **kwargs)
            return max(r - 1, 0), gap, s

        return mutated

    return replace_function("dynamics.lie", "numeric_rank", make)


def _lie_bracket_sign():
    """Lie bracket with the wrong sign: [X, Y] = DY X + DX Y (forward mode)."""
    import torch
    from torch.func import jvp

    def make(orig):
        def mutated(G, F, pairs, mode="forward"):
            def fwd(theta):
                g, f = G(theta), F(theta)
                rows = [
                    jvp(lambda t, j=j: F(t)[j], (theta,), (g[i],))[1]
                    + jvp(lambda t, i=i: G(t)[i], (theta,), (f[j],))[1]
                    for i, j in pairs
                ]
                return torch.stack(rows)

            return fwd

        return mutated

    return replace_function("dynamics.lie", "bracket_rows", make)


def _ift_loose_adjoint():
    """ImplicitIFT ignores its tolerance: the adjoint is solved to 1e-2, not 1e-8."""
    import dataclasses as dc

    def make(orig):
        def mutated(self, *args, **kwargs):
            return orig(dc.replace(self, tol=1e-2), *args, **kwargs)

        return mutated

    return replace_method("dynamics.gradients.implicit:ImplicitIFT", "solve", make)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "lin-grad-u",
        "LinearDEQ.value_and_grad: grad_u = g_beta instead of g_beta / (1 - v)",
        _lin_grad_u,
        ("LIN-GRAD",),
        fast=True,
    ),
    Mutant(
        "gf-rate-2x",
        "rates.gf_rate: kappa = 8 lambda / Q0 (matrix: / lambda_max(C0)), 2x too large",
        lambda: replace_function("dynamics.rates", "gf_rate", _scaled(2.0)),
        ("LIN-GF-RATE",),
        fast=True,
    ),
    Mutant(
        "gf-rate-matrix",
        "rates.gf_rate, matrix form only: 5 lambda / lambda_max(C0) instead of 4",
        _gf_rate_matrix,
        ("LIN-GF-RATE",),
        fast=True,
    ),
    Mutant(
        "gd-step-4x",
        "rates.smoothness_ell 4 times too small: the safe step 1/ell is 4x too large",
        lambda: replace_function("dynamics.rates", "smoothness_ell", _scaled(0.25)),
        ("LIN-GD-RATE", "LIN-GD-STEP"),
        fast=True,
    ),
    Mutant(
        "gd-step-100x",
        "rates.smoothness_ell 100 times too small: the safe step is 100x too large",
        lambda: replace_function("dynamics.rates", "smoothness_ell", _scaled(0.01)),
        ("LIN-GD-STEP",),
    ),
    Mutant(
        "gd-eta-drift",
        "flows.gradient_descent steps with eta (1 + 1e-6) instead of eta",
        _gd_drift,
        ("LIN-GD-DRIFT", "REPRO-LEG"),
    ),
    Mutant(
        "hstar-no-2",
        "SingleIndexDEQ.hessian_at_target: H* without its factor 2",
        _hstar_no_two,
        ("SIM-EPS2", "SIM-HESS"),
        fast=True,
    ),
    Mutant(
        "sim-weights",
        "SingleIndexDEQ.sample_weights: w_i without 1 / (1 - v s'(s_i))",
        _sim_weights,
        ("SIM-NONCONS",),
    ),
    Mutant(
        "neumann-short",
        "Neumann.inverse_factor: the series stops one term short (m - 1 terms)",
        _neumann_short,
        ("APX-NEUMANN-FACTOR", "REPRO-APX"),
        fast=True,
    ),
    Mutant(
        "neumann-abs",
        "Neumann.inverse_factor: |sum_k J^k| (the sign of the series is lost)",
        _neumann_abs,
        ("APX-COSINE",),
        fast=True,
    ),
    Mutant(
        "rev-beta-swap",
        "Reversible.step: beta and 1 - beta swapped",
        _rev_beta_swap,
        ("REV-INVERT",),
        fast=True,
    ),
    Mutant(
        "rev-undo",
        "Reversible.undo: divides by beta instead of 1 - beta",
        _rev_undo,
        ("REV-INVERT", "REV-EXACT"),
    ),
    Mutant(
        "scale-kappa-2x",
        "batched rate_constants: kappa twice too large",
        _scale_kappa,
        ("SCALE-RATE", "SCALE-COND"),
    ),
    Mutant(
        "disc-rank",
        "lie.numeric_rank: rank one too large (one conservation law lost)",
        _disc_rank,
        ("DISC-LIN", "DISC-DLN", "DISC-SIM"),
    ),
    Mutant(
        "disc-rank-low",
        "lie.numeric_rank: rank one too small (a direction above the rounding floor "
        "dropped, a law invented)",
        _disc_rank_low,
        ("DISC-LIN", "DISC-DLN", "DISC-SIM"),
        fast=True,
    ),
    Mutant(
        "lie-bracket-sign",
        "lie.bracket_rows: [X, Y] = DY X + DX Y instead of DY X - DX Y",
        _lie_bracket_sign,
        ("DISC-LIN", "DISC-DLN"),
    ),
    Mutant(
        "ift-loose-adjoint",
        "ImplicitIFT.solve: the adjoint fixed point solved to 1e-2 instead of its tol",
        _ift_loose_adjoint,
        ("REV-IFT-APPROX", "REV-EXACT"),
        fast=True,
    ),
)
BY_NAME: dict[str, Mutant] = {m.name: m for m in MUTANTS}


def clear_check_caches() -> None:
    """Empty the module-level caches of the loaded checks (``functools.lru_cache``),
    so that a mutant run neither reuses nor leaves behind a cached result."""
    for name, mod in list(sys.modules.items()):
        if mod is None or not name.startswith("proofs_check."):
            continue
        for obj in list(vars(mod).values()):
            clear = getattr(obj, "cache_clear", None)
            if callable(clear):
                clear()


@dataclasses.dataclass
class Kill:
    """What happened to one mutant."""

    mutant: Mutant
    statuses: dict[str, str]
    seconds: float
    rows: list[Row]

    @property
    def killed(self) -> bool:
        return all(
            self.statuses.get(c) == Status.failed.value for c in self.mutant.targets
        )


def run_mutant(mutant: Mutant, *, seed: int = 0, profile: str = "quick") -> Kill:
    """Run the checks of ``mutant.targets`` with the bug planted (fresh context)."""
    t0 = time.perf_counter()
    clear_check_caches()
    try:
        with mutant.patch():
            rows = run(list(mutant.targets), Context(seed=seed, profile=profile))
    finally:
        clear_check_caches()
    statuses = {cid: s.value for cid, s in claim_status(rows).items()}
    return Kill(mutant, statuses, time.perf_counter() - t0, rows)


def kill_table(kills: list[Kill]) -> str:
    """A plain-text table: mutant, target claims, their statuses, killed."""
    head = f"{'mutant':<16} {'targets -> status':<58} {'killed':<6} {'s':>6}"
    lines = [head, "-" * len(head)]
    for k in kills:
        st = ", ".join(f"{c}={k.statuses.get(c, '?')}" for c in k.mutant.targets)
        lines.append(
            f"{k.mutant.name:<16} {st:<58} {'yes' if k.killed else 'NO':<6} "
            f"{k.seconds:6.1f}"
        )
    survivors = [k.mutant.name for k in kills if not k.killed]
    lines.append(
        f"\n{len(kills) - len(survivors)}/{len(kills)} mutants killed"
        + (f"; SURVIVED: {', '.join(survivors)}" if survivors else "")
    )
    return "\n".join(lines)

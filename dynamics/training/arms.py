"""The compared arms: how each one turns a task's block ``f`` into a trained model.

(a) ``revdeq``      RevDEQ: reversible solver, few fixed steps, exact reversible
                    gradient (float64 state, docs/theory/reversible.md).
(b) ``deq_ift``     classical DEQ: Anderson forward to a tolerance, IFT backward solved
                    by the same Anderson solver.
    ``deq_ift_jr``  the same with Hutchinson Jacobian regularisation
    (docs/theory/reversible.md).
(c) ``phantom``     Anderson forward, phantom gradient (k damped unrolled steps).
(d) ``tied``        explicit weight-tied network: the same f applied 1 + 2N times
                    (RevDEQ's forward NFE), ordinary backprop.
(e) ``untied``      explicit untied network of 1 + 2N narrower blocks whose parameter
                    count matches the DEQ's within ``cfg.untied_ratio``.
Extra: ``jfb``      Anderson forward, Jacobian-free backprop (not in the default set).

The solvers and gradient methods are the library's (:mod:`dynamics.solvers`,
:mod:`dynamics.gradients`, :class:`dynamics.layer.DEQLayer`); each arm is
a record of :data:`ARMS` naming its solver, its gradient method (built from the
configuration's :class:`DEQSettings`) and its core, so adding an arm is adding a row.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from ..errors import reject_unknown
from ..gradients import JFB, ImplicitIFT, Phantom, ReversibleExact, Unrolled
from ..layer import DEQLayer
from ..solvers import Anderson, Reversible
from .config import DEQSettings, TrainConfig
from .models import EquilibriumCore, TiedUnrolledCore, UntiedCore, n_params

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _anderson(deq: DEQSettings) -> Anderson:
    return Anderson(m=deq.anderson_m, beta=deq.anderson_beta)


def _reversible(deq: DEQSettings) -> Reversible:
    return Reversible(beta=deq.rev_beta)


@dataclasses.dataclass(frozen=True)
class Arm:
    """One compared arm, as data: which core it trains and, for a DEQ arm, which
    solver object and gradient object its layer uses.

    Attributes:
        name: registry key.
        label: plot label.
        kind: ``"deq"`` (an :class:`EquilibriumCore`), ``"tied"`` or ``"untied"``
            (explicit cores of depth ``1 + 2N``).
        solver: ``DEQSettings -> solver`` of the forward pass (DEQ arms).
        gradient: ``DEQSettings -> gradient method`` of the backward pass (DEQ arms).
        fixed_steps: the forward solve is meant to stop at its step cap (RevDEQ: tol
            0, exactly N steps, as the authors' configurations do in practice), so
            ``max_steps_reached`` is not counted as non-convergence.
        regularised: trained with the Hutchinson Jacobian regulariser.
        jac_weight, jac_probes: Jacobian regulariser gamma (0: none) and Hutchinson
            probes, filled in from :class:`DEQSettings` by :func:`arm_info`.
    """

    name: str
    label: str
    kind: str
    solver: Callable[[DEQSettings], object] | None = None
    gradient: Callable[[DEQSettings], object] | None = None
    fixed_steps: bool = False
    regularised: bool = False
    jac_weight: float = 0.0
    jac_probes: int = 1

    @property
    def explicit(self) -> bool:
        """True for the explicit (non-equilibrium) arms."""
        return self.kind != "deq"

    def forward_settings(self, deq: DEQSettings) -> dict:
        """Tolerance, step cap and state dtype of this arm's forward solve."""
        if self.fixed_steps:
            # RevDEQ always keeps a float64 state (the reversible inverse needs it).
            return {
                "tol": 0.0,
                "max_steps": deq.rev_steps,
                "state_dtype": torch.float64,
            }
        return {
            "tol": deq.fwd_tol,
            "max_steps": deq.fwd_max_steps,
            "state_dtype": _DTYPES[deq.baseline_state_dtype],
        }


#: Every arm, in the order of the default run (``jfb`` is an extra).
ARMS: dict[str, Arm] = {
    a.name: a
    for a in (
        Arm(
            "revdeq",
            "(a) RevDEQ",
            "deq",
            _reversible,
            lambda deq: ReversibleExact(recon_threshold=1.0, recon_policy="ignore"),
            fixed_steps=True,
        ),
        Arm(
            "deq_ift",
            "(b) DEQ Anderson+IFT",
            "deq",
            _anderson,
            lambda deq: ImplicitIFT(tol=deq.bwd_tol, max_steps=deq.bwd_max_steps),
        ),
        Arm(
            "deq_ift_jr",
            "(b') DEQ Anderson+IFT+JacReg",
            "deq",
            _anderson,
            lambda deq: ImplicitIFT(tol=deq.bwd_tol, max_steps=deq.bwd_max_steps),
            regularised=True,
        ),
        Arm(
            "phantom",
            "(c) Phantom gradient",
            "deq",
            _anderson,
            lambda deq: Phantom(k=deq.phantom_k, lam=deq.phantom_lam),
        ),
        Arm("tied", "(d) explicit weight-tied", "tied"),
        Arm("untied", "(e) explicit untied", "untied"),
        Arm("jfb", "DEQ Anderson+JFB", "deq", _anderson, lambda deq: JFB()),
    )
}

DEFAULT_ARMS = ("revdeq", "deq_ift", "deq_ift_jr", "phantom", "tied", "untied")
ALL_ARMS = tuple(ARMS)
LABELS = {name: arm.label for name, arm in ARMS.items()}


def arm_info(name: str, deq: DEQSettings) -> Arm:
    """The :class:`Arm` record of ``name`` with the regulariser of ``deq``."""
    if name not in ARMS:
        raise reject_unknown("arm", name, ALL_ARMS)
    arm = ARMS[name]
    return dataclasses.replace(
        arm,
        jac_weight=deq.jac_weight if arm.regularised else 0.0,
        jac_probes=deq.jac_probes,
    )


def make_layer(name: str, f: nn.Module, deq: DEQSettings) -> DEQLayer:
    """The DEQ layer of arm ``name`` around block ``f`` (``throw=False``: failures are
    read from ``last_stats`` and counted by the trainer, never raised mid-training)."""
    arm = ARMS.get(name)
    if arm is None or arm.explicit:
        deq_arms = tuple(n for n, a in ARMS.items() if not a.explicit)
        raise reject_unknown("DEQ arm", name, deq_arms)
    return DEQLayer(
        f,
        arm.solver(deq),
        arm.gradient(deq),
        throw=False,
        **arm.forward_settings(deq),
    )


def unrolled_layer(name: str, f: nn.Module, deq: DEQSettings) -> DEQLayer:
    """Arm ``name``'s solver with its tolerance and cap, differentiated by autograd
    through every step actually run."""
    arm = ARMS[name]
    return DEQLayer(
        f, arm.solver(deq), Unrolled(), throw=False, **arm.forward_settings(deq)
    )


def reference_layers(name: str, f: nn.Module, deq: DEQSettings) -> dict[str, DEQLayer]:
    """Layers whose gradients are the references for arm ``name``'s gradient error.

    ``unrolled``: the same solver, tolerance and cap, differentiated by autograd through
    every step actually run: the exact gradient of the computation the arm performs.
    ``equilibrium``: Anderson solved tightly (``probe_tol``) with a tight IFT adjoint:
    the gradient of the idealised equilibrium model with the same f.
    """
    unrolled = unrolled_layer(name, f, deq)
    tight = DEQLayer(
        f,
        _anderson(deq),
        ImplicitIFT(tol=deq.probe_tol, max_steps=2 * deq.probe_max_steps),
        tol=deq.probe_tol,
        max_steps=deq.probe_max_steps,
        throw=False,
        state_dtype=torch.float64,
    )
    return {"unrolled": unrolled, "equilibrium": tight}


class DEQCore(EquilibriumCore):
    """An :class:`EquilibriumCore` that can also give the Jacobian regulariser and swap
    its layer for a reference one (gradient-error probes)."""

    def __init__(self, f: nn.Module, layer: DEQLayer, keep_io: bool = False):
        super().__init__(f, lambda _f: layer)
        self.keep_io = keep_io
        self._io: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x):
        z = self.layer(x)
        if self.keep_io:
            self._io = (x, z)
        return z

    @property
    def last_stats(self) -> dict:  # type: ignore[override]
        # The layer's dict is updated in place by its backward (nfe_backward, results).
        return self.layer.last_stats

    @last_stats.setter
    def last_stats(self, value) -> None:
        pass

    def jacobian_penalty(self, probes: int) -> torch.Tensor:
        """Hutchinson estimate of ``mean_b ||J_f(z*_b)||_F^2 / d``
        (docs/theory/reversible.md),
        differentiable
        in the parameters of f and in x: ``(1/K) sum_k ||eps_k^T J||^2 / d``."""
        if self._io is None:
            raise RuntimeError(
                "jacobian_penalty needs a forward pass with keep_io=True"
            )
        x, z = self._io
        dt = next(self.f.parameters()).dtype
        zz = z.detach().to(dt).requires_grad_()
        fz = self.f(zz, x)
        total = fz.new_zeros(())
        for _ in range(probes):
            eps = torch.randn_like(fz)
            (vjp,) = torch.autograd.grad(
                fz, zz, eps, create_graph=True, retain_graph=True
            )
            total = total + vjp.pow(2).sum()
        return total / (probes * zz.numel())

    @contextlib.contextmanager
    def using(self, layer: DEQLayer):
        """Temporarily run ``layer`` (sharing ``self.f``) instead of the arm's own."""
        old = self.layer
        self._modules["layer"] = layer
        try:
            yield layer
        finally:
            self._modules["layer"] = old


def build_model(task, cfg: TrainConfig, name: str) -> tuple[nn.Module, Arm]:
    """The model of arm ``name`` for ``task`` (call under a fixed torch seed)."""
    arm = arm_info(name, cfg.deq)
    depth = cfg.deq.explicit_depth
    if arm.kind == "deq":
        f = task.make_block()
        core = DEQCore(f, make_layer(name, f, cfg.deq), keep_io=arm.jac_weight > 0)
    elif arm.kind == "tied":
        core = TiedUnrolledCore(task.make_block(), depth)
    else:
        width = untied_width(task, cfg, depth)
        core = UntiedCore([task.make_block(width) for _ in range(depth)])
    return task.make_model(core), arm


def untied_width(task, cfg: TrainConfig, depth: int) -> float:
    """Width factor of the untied blocks that brings the untied model's parameter count
    closest to the DEQ model's (the encoder and head are shared in shape). Candidate
    blocks are built on the meta device: counted, never allocated."""
    del cfg
    with torch.device("meta"):
        target = n_params(task.make_block())
        best, best_gap = 1.0, float("inf")
        seen = set()
        for k in range(1, 101):
            w = k / 100
            count = n_params(task.make_block(w))
            if count in seen:
                continue
            seen.add(count)
            gap = abs(depth * count - target)
            if gap < best_gap:
                best, best_gap = w, gap
    return best


def parameter_counts(task, cfg: TrainConfig, names=DEFAULT_ARMS) -> dict[str, int]:
    """Trainable parameters of each arm's model (same seed not needed: counts only)."""
    return {n: n_params(build_model(task, cfg, n)[0]) for n in names}

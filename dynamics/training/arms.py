"""The compared arms: how each one turns a task's block ``f`` into a trained model.

(a) ``revdeq``      RevDEQ: reversible solver, few fixed steps, exact reversible
                    gradient (float64 state, spec §8).
(b) ``deq_ift``     classical DEQ: Anderson forward to a tolerance, IFT backward solved
                    by the same Anderson solver.
    ``deq_ift_jr``  the same with Hutchinson Jacobian regularisation (spec §11).
(c) ``phantom``     Anderson forward, phantom gradient (k damped unrolled steps).
(d) ``tied``        explicit weight-tied network: the same f applied 1 + 2N times
                    (RevDEQ's forward NFE), ordinary backprop.
(e) ``untied``      explicit untied network of 1 + 2N narrower blocks whose parameter
                    count matches the DEQ's within ``cfg.untied_ratio``.
Extra: ``jfb``      Anderson forward, Jacobian-free backprop (not in the default set).

The solvers and gradient methods are the library's (:mod:`dynamics.solvers`,
:mod:`dynamics.gradients`, :class:`dynamics.layer.DEQLayer`); this module
only chooses and wires them.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
from torch import nn

from ..errors import reject_unknown
from ..gradients import JFB, ImplicitIFT, Phantom, ReversibleExact, Unrolled
from ..layer import DEQLayer
from ..solvers import Anderson, Reversible
from .config import DEQSettings, TrainConfig
from .models import EquilibriumCore, TiedUnrolledCore, UntiedCore, n_params

DEFAULT_ARMS = ("revdeq", "deq_ift", "deq_ift_jr", "phantom", "tied", "untied")
ALL_ARMS = DEFAULT_ARMS + ("jfb",)

LABELS = {
    "revdeq": "(a) RevDEQ",
    "deq_ift": "(b) DEQ Anderson+IFT",
    "deq_ift_jr": "(b') DEQ Anderson+IFT+JacReg",
    "phantom": "(c) Phantom gradient",
    "tied": "(d) explicit weight-tied",
    "untied": "(e) explicit untied",
    "jfb": "DEQ Anderson+JFB",
}

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclasses.dataclass(frozen=True)
class Arm:
    """What the trainer needs to know about an arm.

    Attributes:
        name, label: registry key and plot label.
        kind: ``"deq"`` (an :class:`EquilibriumCore`) or ``"explicit"``.
        fixed_steps: the forward solve is meant to stop at its step cap (RevDEQ), so
            ``max_steps_reached`` is not counted as non-convergence.
        jac_weight, jac_probes: Jacobian regulariser gamma and Hutchinson probes.
    """

    name: str
    label: str
    kind: str
    fixed_steps: bool = False
    jac_weight: float = 0.0
    jac_probes: int = 1


def arm_info(name: str, deq: DEQSettings) -> Arm:
    """The :class:`Arm` record of ``name``."""
    if name not in ALL_ARMS:
        raise reject_unknown("arm", name, ALL_ARMS)
    kind = "explicit" if name in ("tied", "untied") else "deq"
    jac = deq.jac_weight if name == "deq_ift_jr" else 0.0
    return Arm(
        name,
        LABELS[name],
        kind,
        fixed_steps=name == "revdeq",
        jac_weight=jac,
        jac_probes=deq.jac_probes,
    )


def _anderson(deq: DEQSettings) -> Anderson:
    return Anderson(m=deq.anderson_m, beta=deq.anderson_beta)


def make_layer(name: str, f: nn.Module, deq: DEQSettings) -> DEQLayer:
    """The DEQ layer of arm ``name`` around block ``f`` (``throw=False``: failures are
    read from ``last_stats`` and counted by the trainer, never raised mid-training)."""
    base = _DTYPES[deq.baseline_state_dtype]
    if name == "revdeq":
        # tol 0: exactly N steps, as the authors' configurations do in practice (§4).
        return DEQLayer(
            f,
            Reversible(beta=deq.rev_beta),
            ReversibleExact(recon_threshold=1.0, recon_policy="ignore"),
            tol=0.0,
            max_steps=deq.rev_steps,
            throw=False,
            state_dtype=torch.float64,
        )
    if name in ("deq_ift", "deq_ift_jr"):
        grad = ImplicitIFT(tol=deq.bwd_tol, max_steps=deq.bwd_max_steps)
    elif name == "phantom":
        grad = Phantom(k=deq.phantom_k, lam=deq.phantom_tau)
    elif name == "jfb":
        grad = JFB()
    else:
        raise reject_unknown(
            "DEQ arm", name, ("revdeq", "deq_ift", "deq_ift_jr", "phantom", "jfb")
        )
    return DEQLayer(
        f,
        _anderson(deq),
        grad,
        tol=deq.fwd_tol,
        max_steps=deq.fwd_max_steps,
        throw=False,
        state_dtype=base,
    )


def reference_layers(name: str, f: nn.Module, deq: DEQSettings) -> dict[str, DEQLayer]:
    """Layers whose gradients are the references for arm ``name``'s gradient error.

    ``unrolled``: the same solver, tolerance and cap, differentiated by autograd through
    every step actually run: the exact gradient of the computation the arm performs.
    ``equilibrium``: Anderson solved tightly (``probe_tol``) with a tight IFT adjoint:
    the gradient of the idealised equilibrium model with the same f.
    """
    if name == "revdeq":
        unrolled = DEQLayer(
            f,
            Reversible(beta=deq.rev_beta),
            Unrolled(),
            tol=0.0,
            max_steps=deq.rev_steps,
            throw=False,
            state_dtype=torch.float64,
        )
    else:
        unrolled = DEQLayer(
            f,
            _anderson(deq),
            Unrolled(),
            tol=deq.fwd_tol,
            max_steps=deq.fwd_max_steps,
            throw=False,
            state_dtype=_DTYPES[deq.baseline_state_dtype],
        )
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
        """Hutchinson estimate of ``mean_b ||J_f(z*_b)||_F^2 / d`` (spec §11),
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
    elif name == "tied":
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

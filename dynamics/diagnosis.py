"""How wrong is my gradient? Gradient quality of every method at one shared fixed point.

:func:`diagnose` takes any :class:`~dynamics.layer.DEQLayer` (or an ``f(z, x)``
module) and a batch, converts a copy of ``f`` to float64, solves **one** fixed point
``z*`` to a tight tolerance, and then lets each gradient method of
:mod:`dynamics.gradients` backpropagate a loss of ``z*`` from that same point. Each
method's parameter gradient ``g`` is compared with the exact one ``g*``:

- cosine ``<g, g*> / (||g|| ||g*||)`` over all parameters of ``f`` and per tensor;
- norm ratio ``||g|| / ||g*||``;
- descent direction: ``<g, g*> > 0`` (a small step along ``-g`` lowers the loss);
- wall time of forward + backward, and memory: the bytes autograd saved for backward
  (``saved_bytes``, every device) and the peak CUDA allocation (CUDA only).

The exact gradient is computed two independent ways and their agreement is reported:
(A) the dense IFT, ``(I - J^T)^{-1}`` by an explicit per-example Jacobian and
``torch.linalg.solve`` at ``z*`` (or, for states larger than ``dense_max_dim``, the
iterative IFT at the diagnostic's tolerance); (B) autograd through ``unroll_steps``
Picard steps from ``z0`` (another forward computation: it checks the fixed point and
the backward at once). The two agree to ``rho^N / (1 - rho)`` (Picard truncation, rho =
the contraction factor of f) plus rounding; a non-contractive ``f`` shows up there as
disagreement. Reference (A) is ``g*``.

Why every method restarts from ``z*``: the gradient methods run their own forward
solve; started at ``z*`` (already converged), each takes the single step the driver
always takes, which moves the iterate by the residual only, and the same step for
every method. Approximate methods therefore differ from ``g*`` only through their
backward, which is the quantity of interest (the paper's appendix A.5 protocol; see
docs/theory/approximate.md). ``ReversibleExact`` cannot start from ``z*`` (it needs
its own coupled iteration): it solves from ``z0`` with ``Reversible(beta)`` to the same
tolerance.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ._result import Result
from .errors import ConvergenceError, InvalidInputError
from .gradients import (
    JFB,
    AbstractGradient,
    Damped,
    DenseIFT,
    ImplicitIFT,
    Neumann,
    Phantom,
    ReversibleExact,
    Unrolled,
)
from .layer import DEQLayer
from .solvers import Anderson, Picard, Reversible
from .solvers.base import AbstractFixedPointSolver


class DiagnosticInputError(InvalidInputError):
    """The model or batch cannot be diagnosed (not float64-able, BatchNorm or dropout
    active in train mode inside ``f``, no parameters, a bad loss)."""


class FixedPointNotFoundError(ConvergenceError):
    """The shared fixed point was not solved to the diagnostic's tolerance."""


#: Default tight tolerance of the shared solve: float64 solves reach ~1e-14 on
#: contractive blocks; 1e-10 leaves four digits for conditioning, and the
#: gradient error it causes (~ tol x cond) stays far below the approximate methods'.
DEFAULT_TOL = 1e-10

#: Agreement asked of the two exact gradients: both sit at z* with residual <= tol;
#: their difference is (Picard truncation) + (tol + N eps) x cond(I - J), so 1e-6
#: leaves room for cond up to ~1e3 at tol = 1e-10 and N ~ 1e3.
DEFAULT_AGREEMENT_TOL = 1e-6


#: Step cap of each method's own forward solve, started at the shared z*: the driver
#: always takes one step (which moves z* by its residual only); a second is allowed
#: for rounding. An unconverged z* therefore costs each method two steps, not
#: max_steps.
METHOD_STEPS = 2


def default_methods() -> tuple[AbstractGradient, ...]:
    """The methods practitioners train with (paper A.5 plus Neumann and the
    reversible adjoint): dense IFT (exact, cosine 1 to rounding), iterative IFT at the
    authors' adjoint tolerance, JFB, Neumann-2/5, damped-5 (lam 1/2), phantom-5/10
    (lam 1/2) and the reversible exact adjoint."""
    return (
        DenseIFT(max_dim=1 << 30),
        ImplicitIFT(tol=1e-8, max_steps=100),
        JFB(),
        Neumann(2),
        Neumann(5),
        Damped(5, 0.5),
        Phantom(5, 0.5),
        Phantom(10, 0.5),
        ReversibleExact(recon_threshold=None),
    )


def method_label(m: AbstractGradient) -> str:
    """Stable short label of a method for tables (``ift-dense``, ``damped-5``...)."""
    if isinstance(m, DenseIFT):
        return "ift-dense"
    if isinstance(m, ImplicitIFT):
        return f"ift-implicit(tol={m.tol:g})"
    if isinstance(m, Damped):
        return f"damped-{m.m}" if m.lam == 0.5 else f"damped-{m.m}(lam={m.lam})"
    if isinstance(m, Phantom):
        return f"phantom-{m.k}" if m.lam == 0.5 else f"phantom-{m.k}(lam={m.lam})"
    if isinstance(m, ReversibleExact):
        return "reversible"
    if isinstance(m, Unrolled):
        return "unrolled"
    return m.label


@dataclasses.dataclass(frozen=True)
class MethodDiagnosis:
    """One gradient method against the exact gradient at the shared fixed point.

    Attributes:
        label: method name (``jfb``, ``neumann-5``, ``damped-5``, ...).
        cosine: cosine with the exact gradient over all parameters of f.
        cosine_per_tensor: the same per parameter tensor (None where a norm is 0).
        norm_ratio: ||g|| / ||g*||.
        inner: <g, g*> / ||g*||^2 (the projection factor; > 0 means descent).
        descent: ``inner > 0``.
        seconds: wall time of forward (from z*) + backward.
        saved_bytes: bytes autograd saved for backward (activation memory).
        peak_cuda_bytes: peak CUDA allocation during the call (None on CPU).
        result: worst of the method's forward and backward results (the
            reversible adjoint adds its largest reconstruction error of z0).
    """

    label: str
    cosine: float
    cosine_per_tensor: dict[str, float | None]
    norm_ratio: float
    inner: float
    descent: bool
    seconds: float
    saved_bytes: int
    peak_cuda_bytes: int | None
    result: str


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """What :func:`diagnose` measured.

    Attributes:
        status: ``converged`` only when the shared fixed point meets the residual
            criterion ``max_b ||f(z_b) - z_b|| / (1 + ||z_b||) <= tol``; else
            ``not-converged`` (only returned with ``allow_unconverged=True``).
        residual: that relative residual.
        tol: the tolerance of the shared solve.
        forward_steps: solver steps of the shared solve.
        batch, state_dim, n_params: sizes; ``tensors``: the parameter names of f.
        loss: the loss at z*.
        reference: how g* was computed; ``second_reference``: the independent one.
        reference_rel_err, reference_cosine: agreement of the two exact gradients.
        agreement_tol: the relative error they must stay within.
        methods: one :class:`MethodDiagnosis` per method, in the order given.
    """

    status: str
    residual: float
    tol: float
    forward_steps: int
    batch: int
    state_dim: int
    n_params: int
    tensors: tuple[str, ...]
    loss: float
    reference: str
    second_reference: str
    reference_rel_err: float
    reference_cosine: float
    agreement_tol: float
    methods: tuple[MethodDiagnosis, ...]

    @property
    def converged(self) -> bool:
        """The shared fixed point met the residual criterion."""
        return self.status == "converged"

    @property
    def references_agree(self) -> bool:
        """The two exact gradients agree within ``agreement_tol``."""
        return self.reference_rel_err <= self.agreement_tol

    def method(self, label: str) -> MethodDiagnosis:
        """The row of method ``label``."""
        for m in self.methods:
            if m.label == label:
                return m
        raise KeyError(
            f"no method {label!r}; have {', '.join(m.label for m in self.methods)}"
        )

    def to_dict(self) -> dict:
        """JSON-able dictionary (``references_agree`` included)."""
        out = dataclasses.asdict(self)
        out["references_agree"] = self.references_agree
        return out

    def to_markdown(self) -> str:
        """A markdown table, one row per method, with the header facts above it."""
        lines = [
            f"Shared fixed point: {self.status} (relative residual "
            f"{self.residual:.2e} <= tol {self.tol:g}? "
            f"{'yes' if self.converged else 'NO'}), {self.forward_steps} steps; "
            f"batch {self.batch}, state size {self.state_dim}, "
            f"{self.n_params} parameters of f, loss {self.loss:.6g}.",
            "",
            f"Exact gradient: {self.reference}; independent check: "
            f"{self.second_reference}; relative difference "
            f"{self.reference_rel_err:.2e} (cosine {self.reference_cosine:.12f}), "
            f"{'agree' if self.references_agree else 'DISAGREE'} within "
            f"{self.agreement_tol:g}.",
            "",
            "| method | cosine | min cosine per tensor | norm ratio | descent | "
            "time (ms) | saved for backward (KiB) | result |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m in self.methods:
            per = [c for c in m.cosine_per_tensor.values() if c is not None]
            lines.append(
                f"| {m.label} | {m.cosine:.4f} | "
                f"{min(per) if per else float('nan'):.4f} | {m.norm_ratio:.4f} | "
                f"{'yes' if m.descent else 'no'} | {1e3 * m.seconds:.1f} | "
                f"{m.saved_bytes / 1024:.0f} | {m.result} |"
            )
        return "\n".join(lines)


# ------------------------------------------------------------------- input checks


def _float64_copy(f: nn.Module) -> nn.Module:
    """A float64 deep copy of ``f`` (the user's module is left untouched)."""
    if not isinstance(f, nn.Module):
        raise DiagnosticInputError(
            f"f must be an nn.Module with forward(z, x) (or a DEQLayer); got "
            f"{type(f).__name__}. Wrap a plain function in an nn.Module whose "
            "parameters are registered, so that their gradients can be compared."
        )
    _check_deterministic(f)
    try:
        f64 = copy.deepcopy(f).to(torch.float64)
    except Exception as exc:  # deepcopy or .to of user code: report which
        raise DiagnosticInputError(
            f"could not make a float64 copy of f ({type(exc).__name__}: {exc}); the "
            "diagnostic needs copy.deepcopy(f).to(torch.float64) to work"
        ) from exc
    for name, t in [*f64.named_parameters(), *f64.named_buffers()]:
        if t.is_floating_point() and t.dtype != torch.float64:
            raise DiagnosticInputError(
                f"tensor {name!r} of f stays {t.dtype} after .to(torch.float64); the "
                "diagnostic needs every floating tensor of f in float64"
            )
        if t.is_complex():
            raise DiagnosticInputError(
                f"tensor {name!r} of f is complex ({t.dtype}); only real DEQs are "
                "supported"
            )
    if not any(p.requires_grad for p in f64.parameters()):
        raise DiagnosticInputError(
            "f has no trainable parameters: there is no parameter gradient to compare"
        )
    return f64


def _check_deterministic(f: nn.Module) -> None:
    """Refuse modules that make f a different function at each call in train mode."""
    for name, mod in f.named_modules():
        where = name or "f"
        if isinstance(mod, nn.modules.batchnorm._NormBase) and mod.training:
            raise DiagnosticInputError(
                f"f contains {type(mod).__name__} ({where}) in train mode: it uses "
                "batch statistics and updates running statistics at every call, so "
                "f is not one fixed map and no fixed point of it is shared by the "
                "methods. Call model.eval() first (or use GroupNorm / LayerNorm)"
            )
        if isinstance(mod, nn.modules.dropout._DropoutNd) and mod.training and mod.p:
            raise DiagnosticInputError(
                f"f contains {type(mod).__name__} ({where}) in train mode: f is "
                "random, so each method would see another f. Call model.eval() first"
            )


def _residual(f: nn.Module, z: torch.Tensor, x: torch.Tensor) -> float:
    """max_b ||f(z_b) - z_b|| / (1 + ||z_b||)."""
    with torch.no_grad():
        fz = f(z, x)
    if fz.dtype != torch.float64:
        raise DiagnosticInputError(
            f"f returned {fz.dtype} from float64 inputs after conversion to float64; "
            "it casts internally to another dtype, which the diagnostic cannot follow"
        )
    if fz.shape != z.shape:
        raise DiagnosticInputError(
            f"f(z, x) has shape {tuple(fz.shape)} but z has {tuple(z.shape)}; a DEQ "
            "block must return a tensor shaped like its state"
        )
    b = z.shape[0]
    num = torch.linalg.vector_norm((fz - z).reshape(b, -1), dim=1)
    den = 1.0 + torch.linalg.vector_norm(z.reshape(b, -1), dim=1)
    return float((num / den).max())


# ------------------------------------------------------------------- measurements


class _SavedBytes:
    """Counts the bytes of distinct storages autograd saves for backward."""

    def __init__(self):
        self.seen: set = set()
        self.bytes = 0

    def pack(self, t: torch.Tensor):
        try:
            st = t.untyped_storage()
            key = (st.data_ptr(), t.device)
            if key not in self.seen:
                self.seen.add(key)
                self.bytes += st.nbytes()
        except (RuntimeError, NotImplementedError):  # sparse / meta tensors
            self.bytes += t.numel() * t.element_size()
        return t

    @staticmethod
    def unpack(t: torch.Tensor):
        return t


def _flat(grads: dict[str, torch.Tensor | None], named) -> dict[str, torch.Tensor]:
    return {
        n: (grads.get(n) if grads.get(n) is not None else torch.zeros_like(p)).reshape(
            -1
        )
        for n, p in named
    }


def _cos(a: torch.Tensor, b: torch.Tensor) -> float | None:
    na, nb = float(torch.linalg.vector_norm(a)), float(torch.linalg.vector_norm(b))
    if na == 0.0 or nb == 0.0 or not (math.isfinite(na) and math.isfinite(nb)):
        return None
    return float(a @ b) / (na * nb)


def _run_method(
    f64: nn.Module,
    method: AbstractGradient,
    solver: AbstractFixedPointSolver,
    x: torch.Tensor,
    z0: torch.Tensor,
    loss: Callable[[torch.Tensor], torch.Tensor],
    tol: float,
    max_steps: int,
) -> tuple[dict[str, torch.Tensor | None], float, int, int | None, str]:
    """Forward from ``z0`` with ``method`` and backward of ``loss``; grads by name."""
    layer = DEQLayer(
        f64, solver, method, tol=tol, max_steps=max_steps, throw=False
    ).eval()
    f64.zero_grad(set_to_none=True)
    cuda = x.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
    counter = _SavedBytes()
    t0 = time.perf_counter()
    with (
        torch.enable_grad(),
        torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack),
    ):
        z = layer(x, z0)
        value = loss(z)
        if not (isinstance(value, torch.Tensor) and value.numel() == 1):
            raise DiagnosticInputError(
                "loss(z) must return a scalar tensor; got "
                f"{type(value).__name__} {getattr(value, 'shape', '')}"
            )
        value.backward()
    if cuda:
        torch.cuda.synchronize(x.device)
    seconds = time.perf_counter() - t0
    peak = int(torch.cuda.max_memory_allocated(x.device)) if cuda else None
    stats = layer.last_stats
    res = stats.get("result")
    grads = {
        n: (p.grad.detach().clone() if p.grad is not None else None)
        for n, p in f64.named_parameters()
    }
    f64.zero_grad(set_to_none=True)
    name = res.value if isinstance(res, Result) else str(res)
    rec = stats.get("reconstruction_error")
    if rec is not None:
        name = f"{name}; reconstruction error {float(torch.as_tensor(rec).max()):.1e}"
    return grads, seconds, counter.bytes, peak, name


def diagnose(
    model: DEQLayer | nn.Module,
    x: torch.Tensor,
    *,
    loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
    methods: Sequence[AbstractGradient] | None = None,
    solver: AbstractFixedPointSolver | None = None,
    z0: torch.Tensor | None = None,
    tol: float = DEFAULT_TOL,
    max_steps: int = 2000,
    unroll_steps: int = 400,
    dense_max_dim: int = 4096,
    reversible_beta: float = 0.8,
    agreement_tol: float = DEFAULT_AGREEMENT_TOL,
    allow_unconverged: bool = False,
    seed: int = 0,
) -> Diagnosis:
    """Gradient quality of each method at one shared, tightly solved fixed point.

    Args:
        model: a :class:`DEQLayer` (its ``f``, and its solver unless ``solver`` is
            given) or an ``nn.Module`` ``f(z, x)``. A float64 copy is diagnosed; the
            model itself is not changed. BatchNorm / dropout in train mode inside f
            are refused (call ``.eval()``).
        x: the batch (batch-first), converted to float64.
        loss: ``z* -> scalar``; default ``0.5 mean_b ||z_b - t_b||^2`` with a seeded
            standard-normal target ``t`` (any fixed smooth loss gives a gradient).
        methods: gradient-method objects (default :func:`default_methods`).
        solver: forward solver of the shared solve (default: the layer's, or
            ``Anderson()`` for a bare f; a reversible solver is replaced by Anderson,
            since the approximate methods start from z*).
        z0: initial state (default zeros shaped like x).
        tol: residual tolerance of the shared solve (relative, see
            :attr:`Diagnosis.status`).
        max_steps: step cap of the shared solve (and of the reversible method's).
        unroll_steps: Picard steps of the second exact gradient.
        dense_max_dim: largest per-example state for the dense IFT reference
            (B d^2 float64 numbers); above it the iterative IFT at ``tol`` is used.
        reversible_beta: beta of the reversible solver used by ``ReversibleExact``.
        agreement_tol: relative error allowed between the two exact gradients.
        allow_unconverged: return a ``not-converged`` diagnosis instead of raising
            :class:`FixedPointNotFoundError`.
        seed: seed of the default loss target.

    Returns:
        :class:`Diagnosis`.

    Raises:
        DiagnosticInputError: bad model, batch or loss (see its docstring).
        FixedPointNotFoundError: the shared solve missed ``tol`` (unless
            ``allow_unconverged``).
    """
    f = model.f if isinstance(model, DEQLayer) else model
    if solver is None:
        solver = model.solver if isinstance(model, DEQLayer) else Anderson()
    if not isinstance(solver, AbstractFixedPointSolver):
        raise DiagnosticInputError(f"solver must be a solver object; got {solver!r}")
    if solver.reversible:
        solver = Anderson()
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise DiagnosticInputError(
            f"x must be a floating tensor (batch-first); got "
            f"{getattr(x, 'dtype', type(x).__name__)}"
        )
    if x.dim() < 1 or x.shape[0] == 0:
        raise DiagnosticInputError("x must hold a non-empty batch (batch-first)")
    if not bool(torch.isfinite(x).all()):
        raise DiagnosticInputError("x contains NaN or inf")
    if not (isinstance(tol, float) and 0.0 < tol < 1.0):
        raise DiagnosticInputError(f"tol must be a float in (0, 1); got {tol!r}")
    f64 = _float64_copy(f)
    device = next(f64.parameters()).device
    x64 = x.detach().to(device=device, dtype=torch.float64)
    z_init = (
        torch.zeros_like(x64)
        if z0 is None
        else z0.detach().to(device=device, dtype=torch.float64)
    )
    if loss is None:
        gen = torch.Generator().manual_seed(seed)
        target = torch.randn(x64.shape, generator=gen, dtype=torch.float64).to(device)

        def loss(z):
            return 0.5 * ((z - target) ** 2).reshape(z.shape[0], -1).sum(1).mean()

    methods = tuple(default_methods() if methods is None else methods)
    for m in methods:
        if not isinstance(m, AbstractGradient):
            raise DiagnosticInputError(
                f"methods must be gradient-method objects (JFB(), Neumann(5), ...); "
                f"got {m!r}"
            )

    # The shared fixed point.
    # Solved to tol / 10: the driver's stopping rule scales tol by the start's norm,
    # the status below by the end's; the margin keeps a solve that stopped on the
    # driver's rule inside the stated criterion.
    shared = DEQLayer(
        f64, solver, JFB(), tol=0.1 * tol, max_steps=max_steps, throw=False
    ).eval()
    with torch.no_grad():
        out = shared(x64, z_init, return_stats=True)
    zstar = out.value.detach()
    if not bool(torch.isfinite(zstar).all()):
        raise FixedPointNotFoundError(
            "the shared fixed-point solve produced NaN/inf: f diverges from z0 under "
            f"{type(solver).__name__}; try another solver (Anderson(), Broyden()), "
            "smaller weights or a better z0"
        )
    residual = _residual(f64, zstar, x64)
    steps = int(torch.as_tensor(out.stats.get("nstep", 0)).max())
    status = "converged" if residual <= tol else "not-converged"
    if status != "converged" and not allow_unconverged:
        raise FixedPointNotFoundError(
            f"the shared fixed point reached relative residual {residual:.3e} > tol "
            f"{tol:g} after {steps} steps of {type(solver).__name__}: gradients at an "
            "unconverged point are not the IFT gradient. Raise max_steps, try "
            "Anderson() / Broyden(), check that f is contractive, or pass "
            "allow_unconverged=True to get a 'not-converged' report anyway"
        )

    named = [(n, p) for n, p in f64.named_parameters() if p.requires_grad]
    d = zstar[0].numel()

    def measure(method, solv, start, steps=METHOD_STEPS):
        return _run_method(f64, method, solv, x64, start, loss, tol, steps)

    # Reference (A): dense IFT at z*, or iterative IFT at tol for large states.
    if d <= dense_max_dim:
        ref_method: AbstractGradient = DenseIFT(max_dim=dense_max_dim)
        reference = "dense IFT (explicit Jacobian, torch.linalg.solve, float64)"
    else:
        ref_method = ImplicitIFT(tol=tol, max_steps=max_steps)
        reference = f"iterative IFT at tol {tol:g} (state {d} > dense_max_dim)"
    g_ref = _flat(measure(ref_method, solver, zstar)[0], named)
    # Reference (B): autograd through unroll_steps Picard steps from z0.
    g_unr = _flat(
        _run_method(f64, Unrolled(), Picard(), x64, z_init, loss, 0.0, unroll_steps)[0],
        named,
    )
    ref_all = torch.cat([g_ref[n] for n, _ in named])
    unr_all = torch.cat([g_unr[n] for n, _ in named])
    ref_norm = float(torch.linalg.vector_norm(ref_all))
    if not ref_norm > 0.0 or not math.isfinite(ref_norm):
        raise DiagnosticInputError(
            f"the exact gradient has norm {ref_norm}: the loss does not depend on the "
            "parameters of f at z* (or it is not finite), so cosines are undefined"
        )
    ref_err = float(torch.linalg.vector_norm(unr_all - ref_all)) / ref_norm
    ref_cos = _cos(unr_all, ref_all)

    with torch.no_grad():
        loss_value = float(loss(zstar))
    rows = []
    for m in methods:
        if m.requires_reversible:
            grads, sec, nbytes, peak, res = measure(
                m, Reversible(beta=reversible_beta), z_init, max_steps
            )
        else:
            grads, sec, nbytes, peak, res = measure(m, solver, zstar)
        g = _flat(grads, named)
        g_all = torch.cat([g[n] for n, _ in named])
        inner = float(g_all @ ref_all) / ref_norm**2
        cos = _cos(g_all, ref_all)
        rows.append(
            MethodDiagnosis(
                label=method_label(m),
                cosine=float("nan") if cos is None else cos,
                cosine_per_tensor={n: _cos(g[n], g_ref[n]) for n, _ in named},
                norm_ratio=float(torch.linalg.vector_norm(g_all)) / ref_norm,
                inner=inner,
                descent=inner > 0.0,
                seconds=sec,
                saved_bytes=nbytes,
                peak_cuda_bytes=peak,
                result=res,
            )
        )
    return Diagnosis(
        status=status,
        residual=residual,
        tol=tol,
        forward_steps=steps,
        batch=int(x64.shape[0]),
        state_dim=int(d),
        n_params=int(sum(p.numel() for _, p in named)),
        tensors=tuple(n for n, _ in named),
        loss=loss_value,
        reference=reference,
        second_reference=f"autograd through {unroll_steps} Picard steps from z0",
        reference_rel_err=ref_err,
        reference_cosine=float("nan") if ref_cos is None else ref_cos,
        agreement_tol=float(agreement_tol),
        methods=tuple(rows),
    )

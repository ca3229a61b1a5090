"""Measurements taken along training: memory held for backward, gradient errors, NFEs.

Memory on CPU is measured deterministically as the bytes of the distinct tensor
storages saved for backward (``torch.autograd.graph.saved_tensors_hooks``, which also
sees what custom autograd Functions save with ``save_for_backward``), excluding the
parameters, which exist anyway. It is the memory a training step keeps alive between
forward and backward, not the process's resident size; transient memory inside a
backward pass (e.g. one evaluation of f in the reversible backward) is not included.
On CUDA the trainer also records ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .._result import Result


def saved_tensor_bytes(model: nn.Module, run: Callable[[], torch.Tensor]) -> int:
    """Bytes of the distinct non-parameter storages saved for backward by ``run()``."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        ptr = s.data_ptr()
        if ptr not in params:
            seen[ptr] = max(seen.get(ptr, 0), s.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    total = sum(seen.values())
    del out
    return total


def flat_grad(model: nn.Module) -> torch.Tensor:
    """All parameter gradients as one float64 vector (missing gradients as zeros)."""
    parts = []
    for p in model.parameters():
        g = p.grad
        parts.append(
            torch.zeros(p.numel(), dtype=torch.float64, device=p.device)
            if g is None
            else g.detach().reshape(-1).to(torch.float64)
        )
    return torch.cat(parts)


def compare(g: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Relative error ``||g - ref|| / ||ref||`` and cosine similarity."""
    nr = float(torch.linalg.vector_norm(ref))
    ng = float(torch.linalg.vector_norm(g))
    err = float(torch.linalg.vector_norm(g - ref)) / nr if nr > 0 else math.nan
    cos = float(g @ ref) / (ng * nr) if ng > 0 and nr > 0 else math.nan
    return {"rel_err": err, "cos": cos}


def step_nfe(stats: dict) -> tuple[int, int, int]:
    """``(forward evaluations, backward primal evaluations, backward VJPs)`` of f from a
    layer's ``last_stats``.

    The layer reports ``nfe_backward`` as VJPs for the implicit, phantom, JFB and
    unrolled gradients; the reversible gradient also re-evaluates f, and then reports
    the VJPs separately in ``nvjp_backward``.
    """
    fwd = int(stats.get("nfe_forward", 0) or 0)
    bwd = int(stats.get("nfe_backward", 0) or 0)
    if "nvjp_backward" in stats and stats["nvjp_backward"] is not None:
        return fwd, bwd, int(stats["nvjp_backward"])
    return fwd, 0, bwd


def result_name(r) -> str | None:
    return r.value if isinstance(r, Result) else (None if r is None else str(r))

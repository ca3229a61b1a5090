"""Reversible DEQ benchmark checks of REV-MEMORY (bytes saved for backward do not grow
with N) and REV-NFE (forward and backward evaluation counts).
"""

from __future__ import annotations

import numpy as np
import torch

from dynamics.gradients import (
    ReversibleExact,
    Unrolled,
)
from dynamics.instances.torch_examples import (
    CountingMap,
    TanhMap,
)
from dynamics.solvers import (
    Reversible,
)

from ..registry import CheckResult, Context, judged
from ._rev_common import (
    F64,
    _seed,
    check,
)


# --------------------------------------------------------------------------- MEMORY
def saved_bytes(fn) -> int:
    """Bytes of distinct storages held for backward by ``fn()``'s output: those
    autograd saves (saved-tensor hooks) and those a custom Function keeps on its
    context (:func:`context_tensors`); a storage held several times counts once."""
    seen: dict[int, int] = {}
    # Hold every packed tensor until the count is done: a storage freed mid-run could
    # otherwise hand its address to a later one, which would then count once for two
    # (the count varied from run to run before this).
    alive: list[torch.Tensor] = []

    def pack(t):
        alive.append(t)
        st = t.untyped_storage()
        seen[st.data_ptr()] = max(seen.get(st.data_ptr(), 0), st.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    # Tensors a custom Function keeps as plain attributes of its context (ctx.x =
    # ...) are held for backward too, but the hooks never see them: walk the graph
    # and count every tensor reachable from the nodes' attributes.
    for t in context_tensors(out):
        st = t.untyped_storage()
        seen[st.data_ptr()] = max(seen.get(st.data_ptr(), 0), st.nbytes())
    del out
    alive.clear()
    return sum(seen.values())


def _tensors_in(obj, out: list, depth: int = 0, memo: set | None = None) -> None:
    """Every tensor reachable from ``obj`` through dataclass fields, dicts, lists,
    tuples and object attributes (modules excluded: their parameters are alive
    anyway and are inputs of the call)."""
    memo = set() if memo is None else memo
    if id(obj) in memo or depth > 8:
        return
    memo.add(id(obj))
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, torch.nn.Module | type) or callable(obj) and not hasattr(
        obj, "__dataclass_fields__"
    ):
        return
    elif isinstance(obj, dict):
        for v in obj.values():
            _tensors_in(v, out, depth + 1, memo)
    elif isinstance(obj, list | tuple | set):
        for v in obj:
            _tensors_in(v, out, depth + 1, memo)
    elif hasattr(obj, "__dict__"):
        for v in vars(obj).values():
            _tensors_in(v, out, depth + 1, memo)


def context_tensors(out) -> list[torch.Tensor]:
    """Tensors held as attributes of the autograd nodes behind ``out`` (the ctx of a
    custom Function), found by walking ``grad_fn.next_functions``."""
    found: list[torch.Tensor] = []
    outs = out if isinstance(out, list | tuple) else [out]
    todo = [t.grad_fn for t in outs if isinstance(t, torch.Tensor) and t.grad_fn]
    seen_nodes: set = set()
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if hasattr(node, "__dict__"):
            _tensors_in(vars(node), found)
        todo.extend(nxt for nxt, _ in node.next_functions)
    return found


def memory_profile(d: int, batch: int, ns, seed: int = 0, checkpointed: bool = True):
    """Saved bytes for reversible and unrolled (stored, and checkpointed) vs N."""
    from dynamics import DEQLayer
    from dynamics.instances.torch_examples import ResMLP

    f = ResMLP(d, seed=seed, dtype=torch.float32)
    x = torch.randn(batch, d, generator=torch.Generator().manual_seed(seed))
    grads = {"reversible": ReversibleExact(), "unrolled": Unrolled()}
    if checkpointed:
        grads["checkpointed"] = Unrolled(checkpoint=True)
    out = {k: [] for k in grads}
    for n in ns:
        for name, grad in grads.items():
            layer = DEQLayer(
                f, Reversible(0.8), grad, tol=0.0, max_steps=n, throw=False
            )
            out[name].append(saved_bytes(lambda layer=layer: layer(x)))
    return out


def _linfit(ns, ys):
    a = np.vstack([np.asarray(ns, float), np.ones(len(ns))]).T
    coef, *_ = np.linalg.lstsq(a, np.asarray(ys, float), rcond=None)
    pred = a @ coef
    ss = float(((np.asarray(ys) - pred) ** 2).sum())
    tot = float(((np.asarray(ys) - np.mean(ys)) ** 2).sum())
    return float(coef[0]), 1.0 - ss / tot if tot > 0 else 0.0


@check("REV-MEMORY", part="saved-bytes", kind="benchmark")
def rev_memory(ctx: Context) -> CheckResult:
    """REV-MEMORY: bytes saved for backward (saved-tensor hooks, CPU) are identical for
    every N for the reversible Function; unrolled grows linearly (R^2 > 0.99)."""
    ns = list(range(2, 65, 2)) if ctx.full else [2, 4, 8, 16, 32, 64]
    d, batch = (512, 64) if ctx.full else (32, 4)
    prof = memory_profile(d, batch, ns, seed=_seed(ctx, "mem"), checkpointed=ctx.full)
    rev = prof["reversible"]
    flat = len(set(rev)) == 1
    slope, r2 = _linfit(ns, prof["unrolled"])
    slope_c, r2_c = (
        _linfit(ns, prof["checkpointed"]) if "checkpointed" in prof else (None, None)
    )
    ok = flat and slope > 0 and r2 > 0.99
    # (R^2 - 0.99) / 0.01 is 1 for a perfect line; -1 when the reversible bytes vary
    margin = min((r2 - 0.99) / 0.01, 1.0 if flat else -1.0, 1.0 if slope > 0 else -1.0)
    return judged(
        ok,
        measured=r2,
        predicted=0.99,
        worst_margin=margin,
        tolerance=0.99,
        instances=len(ns),
        details={
            "margin": "min((R^2 - 0.99)/0.01, 1 if reversible bytes constant "
            "else -1, 1 if unrolled slope > 0 else -1)",
            "N": ns,
            "d": d,
            "batch": batch,
            "reversible_bytes": rev,
            "unrolled_bytes": prof["unrolled"],
            "checkpointed_bytes": prof.get("checkpointed"),
            "unrolled_slope_bytes_per_step": slope,
            "unrolled_r2": r2,
            "checkpointed_slope": slope_c,
            "checkpointed_r2": r2_c,
            "ratio_N64_N4_reversible": rev[-1] / rev[ns.index(4)] if 4 in ns else None,
        },
    )


# ------------------------------------------------------------------------------ NFE
@check("REV-NFE", part="numeric", kind="numeric")
def rev_nfe(ctx: Context) -> CheckResult:
    """REV-NFE: forward NFE = 1 + 2N; backward = 2N evaluations and 2N VJPs (counted by
    a wrapper around f, and reported identically in the stats)."""
    from dynamics import DEQLayer

    ns = (1, 2, 3, 4, 7, 16) if ctx.full else (1, 2, 4, 7)
    f = CountingMap(TanhMap(8, 4, 0.8, seed=_seed(ctx, "nfe")))
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    bad, rows = 0, []
    for n in ns:
        layer = DEQLayer(
            f, Reversible(0.8), ReversibleExact(), tol=0.0, max_steps=n, throw=False
        )
        f.reset()
        z = layer(x, torch.zeros(5, 8, dtype=F64))
        fwd = f.nfe
        f.reset()
        z.sum().backward()
        bwd, vjp = f.nfe, f.vjp
        st = layer.last_stats
        row = {
            "N": n,
            "forward": fwd,
            "backward": bwd,
            "vjp": vjp,
            "stats": [st["nfe_forward"], st["nfe_backward"], st["nvjp_backward"]],
        }
        rows.append(row)
        expect = [1 + 2 * n, 2 * n, 2 * n]
        if [fwd, bwd, vjp] != expect or row["stats"] != expect:
            bad += 1
    return judged(
        bad == 0,
        measured=float(bad),
        worst_margin=0.0 if bad == 0 else -1.0,
        tolerance=0.0,
        instances=len(ns),
        details={"margin": "0 if every count matches else -1", "rows": rows},
    )

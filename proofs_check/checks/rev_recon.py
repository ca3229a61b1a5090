"""Reversible DEQ check of REV-RECON: the reported reconstruction error, its
independent replay, and the overflow regime far past convergence.
"""

from __future__ import annotations

import warnings

import torch

from dynamics.gradients import (
    ReversibleExact,
)
from dynamics.instances.torch_examples import (
    ReluMap,
    TanhMap,
)
from dynamics.solvers import (
    Reversible,
    iterate,
)

from ..registry import CheckResult, Context, judged
from ._rev_common import (
    F64,
    _bind,
    _seed,
    check,
)


# ---------------------------------------------------------------------------- RECON
def replay_reconstruction(f, x, beta, y_n, z_n, nstep, z0) -> list[float]:
    """Independent recomputation of the reconstruction error: undo each example's own
    number of steps ``nstep[b]`` with ``Reversible.inverse_step`` and compare
    with ``z0``; per-example max-abs error.

    With tol = 0 an example still stops early when its residual is exactly 0 (a
    float64 fixed point reached after ~30 contractive steps), so the step count is
    per example; undoing more steps than were run amplifies rounding by
    1/|1-beta| per extra step (the seed-dependent mismatches of the old replay)."""
    solver = Reversible(beta)
    fm = _bind(f, x, y_n.dtype)
    nstep = torch.as_tensor([int(k) for k in nstep])
    y, z = y_n, z_n
    with torch.no_grad():
        # the whole batch through f at every step (the same kernels as the forward),
        # rows that had not yet stopped by step n take the undone state
        for n in range(int(nstep.max()) - 1, -1, -1):
            yp, zp = solver.inverse_step(fm, y, z)
            act = (nstep > n).reshape(-1, *([1] * (y.dim() - 1)))
            y, z = torch.where(act, yp, y), torch.where(act, zp, z)
    b = y.shape[0]
    ey = (y - z0).reshape(b, -1).abs().amax(dim=1)
    ez = (z - z0).reshape(b, -1).abs().amax(dim=1)
    return [float(v) for v in torch.maximum(ey, ez)]


def recon_sweep(ctx: Context, d: int = 16):
    """Sweep beta, dtype, N far past convergence (tol = 0), bounded (tanh) and
    unbounded (ReLU) f; one row per case with the layer kept for replays."""
    from dynamics import DEQLayer, Result

    rows = []
    # float32 states overflow by N = 100, float64 ReLU by N = 400
    ns = (20, 100) if not ctx.full else (20, 50, 100, 200, 400, 800)
    seed = _seed(ctx, "recon")
    x64 = torch.randn(3, 8, generator=torch.Generator().manual_seed(seed), dtype=F64)
    with warnings.catch_warnings():
        # overflow in the reconstruction is the point of this sweep
        warnings.simplefilter("ignore", RuntimeWarning)
        for kind in ("tanh", "relu"):
            for dtype in (torch.float32, torch.float64):
                f = (TanhMap if kind == "tanh" else ReluMap)(
                    d, 8, 0.5, seed=seed, dtype=dtype
                )
                x = x64.to(dtype)
                z0 = torch.zeros(3, d, dtype=dtype)
                for beta in (0.5, 0.8, 1.2):
                    for n in ns:
                        grad = ReversibleExact(recon_threshold=None)
                        layer = DEQLayer(
                            f,
                            Reversible(beta),
                            grad,
                            tol=0.0,
                            max_steps=n,
                            throw=False,
                            state_dtype=dtype,
                        )
                        xr = x.clone().requires_grad_()
                        for p in f.parameters():
                            p.grad = None
                        layer(xr, z0).sum().backward()
                        st = layer.last_stats
                        grads = [p.grad for p in f.parameters()] + [xr.grad]
                        rows.append(
                            {
                                "f": kind,
                                "dtype": str(dtype)[6:],
                                "beta": beta,
                                "N": n,
                                "recon": [float(v) for v in st["reconstruction_error"]],
                                "nstep": [int(k) for k in st["nstep"]],
                                "result": st["result"].value,
                                "nan_grad": any(
                                    not bool(torch.isfinite(t).all()) for t in grads
                                ),
                                "flagged": st["result"] is Result.nonfinite,
                                "layer": layer,
                                "x": x,
                                "z0": z0,
                            }
                        )
    return rows


@check("REV-RECON", part="numeric", kind="property")
def rev_recon(ctx: Context) -> CheckResult:
    """REV-RECON: the reported reconstruction error equals an independent
    recomputation (exactly); a non-finite gradient never comes without result
    nonfinite; the sweep reaches the overflow regime (N far past convergence); with
    throw=True the overflow raises ReconstructionError."""
    from dynamics import DEQLayer
    from dynamics.errors import ReconstructionError

    rows = recon_sweep(ctx)
    mismatch, silent_nan, overflow, replayed = 0, 0, 0, 0
    first_mismatch = ""
    for r in rows:
        if r["nan_grad"] and not r["flagged"]:
            silent_nan += 1
        if r["flagged"]:
            overflow += 1
            continue
        layer, x, z0 = r["layer"], r["x"], r["z0"]
        with torch.no_grad():
            fw = iterate(
                layer.solver,
                _bind(layer.f, x, layer.state_dtype),
                z0,
                tol=0.0,
                max_steps=r["N"],
            )
        rep = replay_reconstruction(
            layer.f, x, layer.solver.beta, fw.state["y"], fw.z, r["nstep"], z0
        )
        replayed += 1
        if rep != r["recon"]:
            mismatch += 1
            first_mismatch = first_mismatch or (
                f"{r['f']} {r['dtype']} beta={r['beta']} N={r['N']}: reported "
                f"{r['recon']} vs replay {rep} (nstep {r['nstep']})"
            )
    raised = False
    over = next((r for r in rows if r["flagged"]), None)
    if over is not None:
        lay = over["layer"]
        layer = DEQLayer(
            lay.f,
            lay.solver,
            ReversibleExact(recon_threshold=None),
            tol=0.0,
            max_steps=over["N"],
            throw=True,
            state_dtype=lay.state_dtype,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                layer(over["x"].clone().requires_grad_(), over["z0"]).sum().backward()
            except ReconstructionError:
                raised = True
    ok = mismatch == 0 and silent_nan == 0 and overflow > 0 and raised
    why = []
    if mismatch:
        why.append(f"{mismatch} replay mismatches, first: {first_mismatch}")
    if silent_nan:
        why.append(f"{silent_nan} non-finite gradients without result nonfinite")
    if not overflow:
        why.append("the sweep never reached the overflow regime")
    if over is not None and not raised:
        why.append("throw=True did not raise ReconstructionError on overflow")
    table = [
        {k: v for k, v in r.items() if k not in ("layer", "x", "z0")} for r in rows
    ]
    return judged(
        ok,
        measured=float(overflow),
        worst_margin=0.0 if ok else -1.0,
        tolerance=0.0,
        instances=len(rows),
        reason="; ".join(why),
        details={
            "margin": "0 if every sub-claim holds else -1",
            "replay_mismatches": mismatch,
            "replayed": replayed,
            "silent_nonfinite_gradients": silent_nan,
            "overflow_cases": overflow,
            "throw_raised": raised,
            "rows": table,
        },
    )

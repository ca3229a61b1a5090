#!/usr/bin/env python
"""Benchmark: our Anderson + IFT DEQ against TorchDEQ 0.1.0, side by side in one run.

    python scripts/bench_deq.py [--quick] [--threads N] [--json PATH]

Problem: ``f(z, x) = tanh(W z + U x + b)`` with ``||W||_2 = 0.9``, batch 64, Anderson
with history 6 forward and for the IFT adjoint, loss ``sum(c * z*)``. For each
dtype, width ``d`` and tolerance, both libraries run forward + backward; the table
reports the median wall-clock, forward steps, the achieved max absolute
residual ``||f(z) - z||``, the relative error of ``dL/dW`` against the exact IFT
gradient (a dense solve per example at a tightly converged ``z*``), and the peak CPU
memory of one forward + backward (torch profiler, running sum of allocations).

The two stopping rules differ: TorchDEQ stops when the max absolute residual is below
``tol``; ours when ``||f(z) - z|| <= tol (1 + scale_0)`` per example, so ours is run
with ``tol / (1 + max scale_0)`` (at least as strict). The achieved residual and the
gradient error are reported so the comparison is at equal accuracy. TorchDEQ is
optional (``pip install .[bench]``); without it only our side runs and the reason is
printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from torch import nn

from dynamics import fixed_point
from dynamics.gradients import ImplicitIFT
from dynamics.solvers import Anderson

try:  # optional comparison target
    import torchdeq
except ImportError as exc:  # pragma: no cover - depends on the environment
    torchdeq = None
    TORCHDEQ_MISSING = f"torchdeq not installed ({exc}); pip install .[bench]"
else:
    TORCHDEQ_MISSING = ""

HISTORY = 6


class TanhMap(nn.Module):
    """f(z, x) = tanh(W z + U x + b) with ||W||_2 = 0.9."""

    def __init__(self, d: int, dtype: torch.dtype, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(d, d, generator=g, dtype=torch.float64)
        w = 0.9 * w / torch.linalg.matrix_norm(w, ord=2)
        self.w = nn.Parameter(w.to(dtype))
        self.u = nn.Parameter((torch.randn(d, d, generator=g) / d**0.5).to(dtype))
        self.b = nn.Parameter((0.1 * torch.randn(d, generator=g)).to(dtype))

    def forward(self, z, x):
        return torch.tanh(z @ self.w.T + x @ self.u.T + self.b)


def exact_grad(f: TanhMap, x, c) -> torch.Tensor:
    """dL/dW for L = sum(c z*) by the IFT with a dense solve per example (float64)."""
    w, u, b = (t.detach().double() for t in (f.w, f.u, f.b))
    x, c = x.double(), c.double()
    z = torch.zeros_like(x)
    for _ in range(2000):
        z_new = torch.tanh(z @ w.T + x @ u.T + b)
        if float((z_new - z).abs().max()) < 1e-15:
            z = z_new
            break
        z = z_new
    dd = 1 - z**2  # (B, d)
    jac = dd[:, :, None] * w[None]  # J = D W per example
    eye = torch.eye(w.shape[0], dtype=torch.float64)
    adj = torch.linalg.solve((eye - jac).transpose(1, 2), c[..., None])[..., 0]
    return (dd * adj).T @ z


def _rel(a, b) -> float:
    return float(torch.linalg.norm(a.double() - b) / torch.linalg.norm(b))


def ours(f, x, c, tol, max_steps):
    # Our rule is ||f(z) - z|| <= tol (1 + scale_0); dividing tol by 1 + max scale_0
    # makes it at least as strict as TorchDEQ's absolute max-residual rule.
    with torch.no_grad():
        s0 = float(torch.linalg.vector_norm(f(torch.zeros_like(x), x), dim=1).max())
    tol = tol / (1.0 + s0)
    sol = fixed_point(
        f,
        Anderson(m=HISTORY - 1, beta=1.0),
        None,
        x,
        gradient=ImplicitIFT(
            tol=tol,
            max_steps=max_steps,
            linear_solver=Anderson(m=HISTORY - 1, beta=1.0),
        ),
        tol=tol,
        max_steps=max_steps,
        throw=False,
        state_dtype=x.dtype,
    )
    (sol.value * c).sum().backward()
    st = sol.stats
    return int(st["nstep"].max()), float(st["residual_abs"].max())


def theirs(f, x, c, tol, max_steps):
    deq = torchdeq.get_deq(
        f_solver="anderson",
        b_solver="anderson",
        f_tol=tol,
        b_tol=tol,
        f_max_iter=max_steps,
        b_max_iter=max_steps,
        ift=True,
    )
    z0 = torch.zeros_like(x)
    zs, info = deq(lambda z: f(z, x), z0, solver_kwargs={"m": HISTORY})
    (zs[-1] * c).sum().backward()
    return int(info["nstep"].max()), float(info["abs_lowest"].max())


def peak_memory(fn) -> int:
    """Peak of the running sum of CPU allocations during ``fn()`` (bytes)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    evs = sorted(
        (e for e in prof.events() if e.cpu_memory_usage != 0 and not e.cpu_children),
        key=lambda e: e.time_range.start,
    )
    run = peak = 0
    for e in evs:
        run += e.cpu_memory_usage
        peak = max(peak, run)
    return peak


def measure(name, impl, d, dtype, tol, batch, repeats, max_steps):
    f = TanhMap(d, dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, d, generator=g, dtype=torch.float64).to(dtype)
    c = torch.randn(batch, d, generator=g, dtype=torch.float64).to(dtype)
    ref = exact_grad(f, x, c)
    impl(f, x, c, tol, max_steps)  # warm-up (first-call dispatch, allocator)
    times, steps, res = [], 0, 0.0
    for _ in range(repeats):
        f.zero_grad()
        t0 = time.perf_counter()
        steps, res = impl(f, x, c, tol, max_steps)
        times.append(time.perf_counter() - t0)
    err = _rel(f.w.grad, ref)
    f.zero_grad()
    mem = peak_memory(lambda: impl(f, x, c, tol, max_steps))
    return {
        "lib": name,
        "dtype": str(dtype).removeprefix("torch."),
        "d": d,
        "tol": tol,
        "time_ms": 1e3 * statistics.median(times),
        "steps": steps,
        "residual": res,
        "grad_rel_err": err,
        "peak_mb": mem / 2**20,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke run)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        grid = [(torch.float64, 32, 1e-4)]
        batch, repeats = 8, 1
    else:
        grid = [
            (dt, d, tol)
            for dt in (torch.float64, torch.float32)
            for d in (64, 256)
            for tol in (1e-4, 1e-8)
            if not (dt == torch.float32 and tol < 1e-6)
        ]
        batch, repeats = 64, 7
    libs = [("ours", ours)]
    if torchdeq is not None:
        libs.append(("torchdeq", theirs))
    else:
        print(f"skipping TorchDEQ: {TORCHDEQ_MISSING}")
    rows = []
    hdr = (
        f"{'lib':9} {'dtype':8} {'d':>4} {'tol':>6} {'time ms':>8} {'steps':>5} "
        f"{'residual':>9} {'grad err':>9} {'peak MB':>8}"
    )
    print(hdr)
    for dt, d, tol in grid:
        for name, impl in libs:
            r = measure(name, impl, d, dt, tol, batch, repeats, 100)
            rows.append(r)
            print(
                f"{r['lib']:9} {r['dtype']:8} {d:>4} {tol:>6.0e} {r['time_ms']:>8.2f} "
                f"{r['steps']:>5} {r['residual']:>9.2e} {r['grad_rel_err']:>9.2e} "
                f"{r['peak_mb']:>8.2f}"
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

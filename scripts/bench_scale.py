#!/usr/bin/env python
"""Benchmark (P-SCALE): instances per second of the batched torch engine against a
per-instance NumPy loop doing the same work, side by side in one run.

    python scripts/bench_scale.py [--quick] [--device cpu|cuda] [--json PATH]

Work per instance (both engines, identical): K RK4 steps of the gradient flow with a
fixed per-instance step, then K GD steps, each step followed by the SCALE-* tracking
(risk, conservation drift of C, sigma_min(I - W)^2, ||M||_2^2, sigma_max(I - W)^2 and
the bound margins; GD also the descent inequality). The NumPy loop uses the same
sufficient-statistics risk and IFT gradient (``np.linalg.inv`` per instance,
``eigvalsh``/``svd`` for the spectra); it is timed on a subset of instances and
extrapolated linearly to N (per-instance work is independent of N), which the output
says. Its results on that subset are compared with the batched ones, so both engines
are seen to do the same computation.

On CUDA the batched timing is synchronised and the achieved memory bandwidth is
reported against the device's peak: bytes = the sum, over every torch kernel of one
step, of its input and output sizes (counted by a dispatch hook), i.e. the traffic of
an unfused implementation whose arrays do not stay in cache; peak = the nominal HBM
bandwidth of known devices, else a measured large copy. Without CUDA that part is
skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from dynamics.batched.batched_linear import (
    BatchedMatrixDEQ,
    hessian_norm,
    rate_constants,
    resolve_device,
)
from dynamics.batched.instances_batched import ScaleSpec, generate
from dynamics.batched.linear_runs import gradient_descent, gradient_flow

PROTOCOL = "P-SCALE benchmark"
#: Nominal peak memory bandwidth (bytes/s) by device-name fragment.
PEAK_BANDWIDTH = {
    "H200": 4.8e12,
    "H100 SXM": 3.35e12,
    "H100 PCIe": 2.0e12,
    "H100": 3.35e12,
    "A100-SXM4-80GB": 2.04e12,
    "A100": 1.55e12,
}


# ------------------------------------------------------------ NumPy reference


def _numpy_instance(
    inst,
    p: int,
    h: float,
    eta: float,
    steps: int,
    C0,
    lam_min_C0,
    lam_max_C0,
    cond_lower,
    kappa,
    risk0,
    rho,
    lam_min,
) -> dict:
    """One instance through the same RK4 + GD work in NumPy."""
    X, Y = inst.X[p], inst.Y[p]
    m, d = inst.W0.shape[1], inst.U0.shape[2]
    n = X.shape[0]
    S = X.T @ X / n
    q, r = np.linalg.qr(X)
    T = np.linalg.solve(r, q.T @ Y).T  # least-squares map (k x d)
    res = X @ T.T - Y
    rmin = float(np.sum(res * res) / n)
    eye = np.eye(m)

    def ev(th):
        W = th[: m * m].reshape(m, m)
        U = th[m * m :].reshape(m, d)
        A = eye - W
        Ai = np.linalg.inv(A)
        M = Ai @ U
        D = M - T
        DS = D @ S
        risk = float(np.sum(DS * D)) + rmin
        gU = Ai.T @ (2.0 * DS)
        return risk, np.concatenate([(gU @ M.T).ravel(), gU.ravel()]), A, Ai, M, U

    c0n = max(1.0, np.linalg.norm(C0))
    del lam_min  # part of the bound constants, not needed by the tracking below
    out = {"drift": 0.0, "cond": math.inf, "rate": math.inf}

    def track(k, t, e, gd):
        risk, _, A, Ai, M, U = e
        C = A @ A.T + U @ U.T
        out["drift"] = max(out["drift"], np.linalg.norm(C - C0) / c0n)
        s2 = 1.0 / np.linalg.eigvalsh(Ai @ Ai.T)[-1]
        mn2 = np.linalg.eigvalsh(M @ M.T)[-1]
        up = 1.0 - np.linalg.eigvalsh(A @ A.T)[-1] / lam_max_C0
        out["cond"] = min(out["cond"], s2 / cond_lower - 1.0)
        out["mid"] = s2 * (1.0 + mn2) / lam_min_C0 - 1.0
        out["up"] = up
        if k > 0:
            lb = (k * math.log1p(-rho)) if gd else (-kappa * t)
            out["rate"] = min(out["rate"], lb - math.log((risk - rmin) / risk0))

    th = np.concatenate([inst.W0[p].ravel(), inst.U0[p].ravel()])
    for k in range(steps + 1):  # RK4 gradient flow
        e = ev(th)
        track(k, k * h, e, False)
        if k == steps:
            break
        k1 = -e[1]
        k2 = -ev(th + (h * 0.5) * k1)[1]
        k3 = -ev(th + (h * 0.5) * k2)[1]
        k4 = -ev(th + h * k3)[1]
        th = th + h * (k1 / 6 + k2 / 3 + k3 / 3 + k4 / 6)
    gf_drift = out["drift"]
    th = np.concatenate([inst.W0[p].ravel(), inst.U0[p].ravel()])
    prev = None
    out["drift"] = 0.0
    for k in range(steps + 1):  # gradient descent
        e = ev(th)
        if prev is not None:
            _ = e[0] - rmin <= prev[0] - 0.5 * eta * prev[1]  # descent inequality
        prev = (e[0] - rmin, float(e[1] @ e[1]))
        track(k, k * eta, e, True)
        if k == steps:
            break
        th = th - eta * e[1]
    return {"gf_drift": gf_drift, "cond": out["cond"], "theta": th}


# ------------------------------------------------------------ byte counting


class _ByteCounter(TorchDispatchMode):
    """Sums input + output bytes of every dispatched tensor op (views excluded)."""

    _VIEWS = {
        "view",
        "_unsafe_view",
        "reshape",
        "transpose",
        "permute",
        "select",
        "slice",
        "expand",
        "unsqueeze",
        "squeeze",
        "t",
        "as_strided",
        "alias",
        "detach",
        "unbind",
        "split",
        "diagonal",
    }

    def __init__(self):
        super().__init__()
        self.bytes = 0
        self.kernels = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split(".")[0]
        if name in self._VIEWS:
            return out
        self.kernels += 1

        def size(x):
            if isinstance(x, torch.Tensor):
                return x.numel() * x.element_size()
            if isinstance(x, list | tuple):
                return sum(size(y) for y in x)
            return 0

        self.bytes += size(args) + size(kwargs or {}) + size(out)
        return out


def _bytes_per_step(batch, theta, h, eta, consts):
    """DRAM-traffic model of one RK4 step and one GD step (bytes, kernels), each step
    with its tracking: the difference between a 2-step and a 1-step run."""
    res = {}
    for name, run in (
        ("rk4", lambda k: gradient_flow(batch, theta, h, k, consts=consts)),
        ("gd", lambda k: gradient_descent(batch, theta, eta, k, consts=consts)),
    ):
        counts = []
        for k in (1, 2):
            with _ByteCounter() as c:
                run(k)
            counts.append((c.bytes, c.kernels))
        res[name] = (counts[1][0] - counts[0][0], counts[1][1] - counts[0][1])
    return res


def _peak_bandwidth(dev) -> tuple[float, str]:
    name = torch.cuda.get_device_name(dev)
    for key, bw in PEAK_BANDWIDTH.items():
        if key in name:
            return bw, f"nominal ({key})"
    x = torch.empty(2**28, dtype=torch.float32, device=dev)
    y = torch.empty_like(x)
    torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    torch.cuda.synchronize(dev)
    return 2 * x.numel() * 4 * 10 / (time.perf_counter() - t0), "measured copy"


# ------------------------------------------------------------ one configuration


def bench(
    N: int,
    spec: ScaleSpec,
    steps: int,
    ref_instances: int,
    device: str,
    dtype=torch.float64,
    seed: int = 0,
) -> dict:
    dev = resolve_device(device)
    inst = generate(spec, seed, 0, N)
    batch = BatchedMatrixDEQ(inst.X, inst.Y, spec.m, device=dev, dtype=dtype)
    theta0 = batch.pack(inst.W0, inst.U0)
    consts = rate_constants(batch, theta0)
    H = hessian_norm(batch, theta0)
    h = (0.05 / H).to(dtype)
    eta = (0.2 / H).to(dtype)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    # Warm-up on a slice (first-call allocations, kernel caches), then time.
    gradient_flow(
        batch.select(torch.arange(min(N, 64))),
        theta0[:, : min(N, 64)],
        h[: min(N, 64)],
        2,
        consts=None,
    )
    sync()
    w0, c0 = time.perf_counter(), time.process_time()
    gf = gradient_flow(batch, theta0, h, steps, consts=consts)
    gd = gradient_descent(batch, theta0, eta, steps, consts=consts)
    sync()
    t_batch, cpu_batch = time.perf_counter() - w0, time.process_time() - c0

    n_ref = min(ref_instances, N)
    rho = (
        consts.loss_factor
        * eta.double()
        * batch.lambda_min
        / (consts.lam_max_C0 + consts.loss_factor * eta.double() * consts.risk0)
    )
    cpu = {
        k: v.double().cpu().numpy()
        for k, v in (
            ("lmin", consts.lam_min_C0),
            ("lmax", consts.lam_max_C0),
            ("cl", consts.cond_lower),
            ("kappa", consts.kappa),
            ("r0", consts.risk0),
            ("rho", rho),
            ("lam", batch.lambda_min),
            ("h", h),
            ("eta", eta),
        )
    }
    C0 = consts.C0.double().cpu().numpy()
    w0, c0 = time.perf_counter(), time.process_time()
    ref = [
        _numpy_instance(
            inst,
            p,
            float(cpu["h"][p]),
            float(cpu["eta"][p]),
            steps,
            C0[p],
            cpu["lmin"][p],
            cpu["lmax"][p],
            cpu["cl"][p],
            cpu["kappa"][p],
            cpu["r0"][p],
            cpu["rho"][p],
            cpu["lam"][p],
        )
        for p in range(n_ref)
    ]
    t_ref_subset = time.perf_counter() - w0
    cpu_ref = (time.process_time() - c0) * N / n_ref
    t_ref = t_ref_subset * N / n_ref
    # Agreement: the final GD parameters, and the GF drift (an absolute quantity of
    # size ~1e-10 that is itself a difference of O(1) numbers, so compared absolutely).
    agree = max(
        max(abs(r["gf_drift"] - float(gf.stats.drift[p])) for p, r in enumerate(ref)),
        max(
            float(np.abs(r["theta"] - gd.theta[:, p].double().cpu().numpy()).max())
            for p, r in enumerate(ref)
        ),
    )
    row = {
        "N": N,
        "m": spec.m,
        "d": spec.d,
        "n": spec.n,
        "steps": steps,
        "device": str(dev),
        "dtype": str(dtype).removeprefix("torch."),
        "batched_seconds": t_batch,
        "batched_cpu_seconds": cpu_batch,
        "batched_instances_per_s": N / t_batch,
        "numpy_subset": n_ref,
        "numpy_subset_seconds": t_ref_subset,
        "numpy_seconds_extrapolated": t_ref,
        "numpy_instances_per_s": N / t_ref,
        "numpy_cpu_seconds_extrapolated": cpu_ref,
        "speedup": t_ref / t_batch,
        "speedup_cpu_time": cpu_ref / cpu_batch,
        "max_disagreement": agree,
    }
    if dev.type == "cuda":
        traffic = _bytes_per_step(batch, theta0, h, eta, consts)
        total = steps * (traffic["rk4"][0] + traffic["gd"][0])
        peak, how = _peak_bandwidth(dev)
        row.update(
            bytes_moved=total,
            achieved_bandwidth=total / t_batch,
            peak_bandwidth=peak,
            peak_source=how,
            bandwidth_fraction=total / t_batch / peak,
            kernels_per_rk4_step=traffic["rk4"][1],
            kernels_per_gd_step=traffic["gd"][1],
        )
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (CI)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--json", type=Path, default=None, help="write the table here")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's choice)",
    )
    ap.add_argument(
        "--ref-instances",
        type=int,
        default=None,
        help="instances timed in the NumPy loop (default 20 quick, 40 full)",
    )
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "bench_scale: CUDA not available in this torch build; the GPU benchmark "
            "(instances/s and memory bandwidth) is skipped. Run with --device cpu."
        )
        return 0
    if args.quick:
        plan = [(512, ScaleSpec(), 20), (2048, ScaleSpec(), 20)]
        n_ref = args.ref_instances or 20
    else:
        plan = [
            (1000, ScaleSpec(), 50),
            (10_000, ScaleSpec(), 50),
            (10_000, ScaleSpec(m=2, d=3, n=16), 50),
            (10_000, ScaleSpec(m=5, d=6, n=32), 50),
        ]
        if args.device == "cuda":
            plan += [(100_000, ScaleSpec(), 50), (1_000_000, ScaleSpec(), 20)]
        n_ref = args.ref_instances or 40
    rows = []
    print(
        f"{PROTOCOL}: torch {torch.__version__}, {platform.processor() or 'cpu'}, "
        f"{torch.get_num_threads()} threads, device {args.device}"
    )
    print(
        f"NumPy loop timed on the first {n_ref} instances of each N and extrapolated "
        "linearly to N."
    )
    head = (
        f"{'N':>8} {'m,d,n':>8} {'steps':>5} {'batched s':>10} {'inst/s':>9} "
        f"{'numpy s*':>9} {'inst/s':>7} {'speedup':>8} {'cpu-time':>9} {'max diff':>9}"
    )
    print(head)
    print("-" * len(head))
    for N, spec, steps in plan:
        row = bench(N, spec, steps, n_ref, args.device)
        rows.append(row)
        print(
            f"{N:>8} {f'{spec.m},{spec.d},{spec.n}':>8} {steps:>5} "
            f"{row['batched_seconds']:>10.2f} {row['batched_instances_per_s']:>9.0f} "
            f"{row['numpy_seconds_extrapolated']:>9.1f} "
            f"{row['numpy_instances_per_s']:>7.1f} {row['speedup']:>7.0f}x "
            f"{row['speedup_cpu_time']:>8.0f}x {row['max_disagreement']:>9.1e}",
            flush=True,
        )
        if "achieved_bandwidth" in row:
            print(
                f"{'':>8} memory: {row['achieved_bandwidth'] / 1e9:.0f} GB/s of "
                f"{row['peak_bandwidth'] / 1e9:.0f} GB/s peak ({row['peak_source']}), "
                f"{100 * row['bandwidth_fraction']:.0f} %; "
                f"{row['kernels_per_rk4_step']} kernels per RK4 step"
            )
    print(
        "* NumPy seconds extrapolated linearly from the timed subset; speedup = wall "
        "time ratio, cpu-time = process CPU time ratio (robust to other load)"
    )
    if args.device == "cpu":
        print("(memory-bandwidth measurement: CUDA only; skipped on CPU)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"protocol": PROTOCOL, "rows": rows}, indent=2))
    target = [r for r in rows if r["N"] == 10_000 and (r["m"], r["d"]) == (3, 4)]
    ref = target[0] if target else rows[-1]
    print(
        f"summary: N = {ref['N']}, (m, d, n) = ({ref['m']}, {ref['d']}, {ref['n']}): "
        f"{ref['speedup']:.0f}x wall, {ref['speedup_cpu_time']:.0f}x CPU time "
        "(target >= 50x at N = 1e4 on 2 CPU cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

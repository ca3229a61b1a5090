#!/usr/bin/env python
"""Benchmark (P-SCALE): instance-steps per second of the batched torch engine, against
a per-instance NumPy loop doing the same work, and against this CPU's measured peak,
side by side in one run.

    python scripts/bench_scale.py [--quick] [--threads 1] [--device cpu|cuda]
                                  [--sizes 1000,10000,100000] [--ms 2,3,5,8]
                                  [--json PATH]

Work per instance (both engines, identical): K RK4 steps of the gradient flow with a
fixed per-instance step, then K GD steps, each step followed by the SCALE-* tracking
(risk, conservation drift of C, sigma_min(I - W)^2, ||M||_2^2, sigma_max(I - W)^2 and
the bound margins; GD also the descent inequality). An *instance-step* is one RK4
step or one GD step of one instance (so a run does 2 K instance-steps per instance).

- Batched: instances run in tiles of at most ``--tile`` (default the scale run's CPU
  chunk cap, 16384), as ``deq-dynamics scale`` runs them, so memory stays bounded
  and N = 1e5 measures the same engine at full occupancy.
- NumPy loop: the same sufficient-statistics risk and IFT gradient per instance
  (``np.linalg.inv``, ``eigvalsh``), timed on a subset of instances per m and
  extrapolated linearly (its per-instance cost does not depend on N); the subset's
  results are compared with the batched ones (``max diff``).
- Peak: a large float64 matmul's GFLOP/s and a large stream copy's GB/s, measured in
  the same run with the same thread count. FLOPs and bytes per instance-step are
  *counted* over the torch kernels of one RK4 and one GD step (a dispatch hook):
  elementwise ops 1 flop per output entry, ``bmm`` 2 p q r per product, LU 2/3 m^3,
  LU solve against I 2 m^3, ``eigvalsh`` 4/3 m^3 + 10 m^2 per matrix (LAPACK's
  tridiagonal reduction plus QR on the tridiagonal); bytes = inputs + outputs of every
  kernel (an unfused implementation whose arrays do not stay in cache; with 4 MiB of
  L2 and a large L3 much of it does, so the byte fraction can exceed what DRAM
  alone would allow).

On CUDA the batched timing is synchronised and bandwidth is compared with the device's
nominal HBM bandwidth (or a measured copy). Without CUDA, ``--device cuda`` says so
and exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from dynamics.batched.scale import CPU_CHUNK_CAP

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


# ------------------------------------------------------------ counting


class _Counter(TorchDispatchMode):
    """Sums bytes (inputs + outputs) and a flop model over every dispatched kernel
    (views excluded); see the module docstring for the flop model."""

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
        "lift_fresh",
    }
    _NO_FLOPS = {
        "copy_",
        "clone",
        "cat",
        "stack",
        "_to_copy",
        "index",
        "index_put_",
        "full",
        "zeros",
        "ones",
        "empty",
        "eye",
        "arange",
        "fill_",
        "zeros_like",
        "ones_like",
        "full_like",
        "empty_like",
        "nonzero",
        "linspace",
        "_local_scalar_dense",
    }

    def __init__(self):
        super().__init__()
        self.bytes = 0
        self.flops = 0
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
        self.flops += self._flops(name, args, out)
        return out

    def _flops(self, name, args, out) -> int:
        if name in self._NO_FLOPS:
            return 0
        if name == "bmm":
            b, p, q = args[0].shape
            return 2 * b * p * q * args[1].shape[-1]
        if name.startswith("linalg_lu_factor"):
            b, m = args[0].shape[0], args[0].shape[-1]
            return b * 2 * m**3 // 3
        if name.startswith("linalg_lu_solve"):
            b, m = args[0].shape[0], args[0].shape[-1]
            return b * 2 * m**3
        if name.startswith("_linalg_eigh"):
            b, m = args[0].shape[0], args[0].shape[-1]
            return b * (4 * m**3 // 3 + 10 * m * m)
        first = out[0] if isinstance(out, list | tuple) else out
        if name in ("sum", "prod", "max", "min", "amax", "amin", "all", "any"):
            return args[0].numel() if isinstance(args[0], torch.Tensor) else 0
        return first.numel() if isinstance(first, torch.Tensor) else 0


def _per_instance_step(batch, theta, h, eta, consts) -> dict:
    """Bytes, flops and kernels of one RK4 step and one GD step with their tracking,
    per instance: the difference between a 2-step and a 1-step run over B."""
    res = {}
    for name, run in (
        ("rk4", lambda k: gradient_flow(batch, theta, h, k, consts=consts)),
        ("gd", lambda k: gradient_descent(batch, theta, eta, k, consts=consts)),
    ):
        counts = []
        for k in (1, 2):
            with _Counter() as c:
                run(k)
            counts.append((c.bytes, c.flops, c.kernels))
        b, f, n = (counts[1][i] - counts[0][i] for i in range(3))
        res[name] = {"bytes": b / batch.B, "flops": f / batch.B, "kernels": n}
    return res


# ------------------------------------------------------------ peaks


def cpu_peaks(quick: bool) -> dict:
    """Float64 matmul GFLOP/s and stream-copy GB/s of this CPU, measured now."""
    n = 1024 if quick else 2048
    a = torch.randn(n, n, dtype=torch.float64)
    b = torch.randn(n, n, dtype=torch.float64)
    a @ b
    reps = 3 if quick else 5
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    flops = 2 * n**3 * reps / (time.perf_counter() - t0)
    x = torch.ones(2**23 if quick else 2**25, dtype=torch.float64)  # 64 / 256 MiB
    y = torch.empty_like(x)
    y.copy_(x)
    t0 = time.perf_counter()
    for _ in range(reps):
        y.copy_(x)
    bw = 2 * x.numel() * 8 * reps / (time.perf_counter() - t0)
    return {
        "matmul_gflops": flops / 1e9,
        "copy_gbs": bw / 1e9,
        "matmul_n": n,
        "copy_mib": x.numel() * 8 / 2**20,
    }


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


def _setup(spec: ScaleSpec, N: int, dev, dtype, seed: int = 0):
    inst = generate(spec, seed, 0, N)
    batch = BatchedMatrixDEQ(inst.X, inst.Y, spec.m, device=dev, dtype=dtype)
    theta0 = batch.pack(inst.W0, inst.U0)
    consts = rate_constants(batch, theta0)
    H = hessian_norm(batch, theta0)
    return inst, batch, theta0, consts, (0.05 / H).to(dtype), (0.2 / H).to(dtype)


def time_batched(
    spec: ScaleSpec, N: int, steps: int, tile: int, dev, dtype=torch.float64
) -> dict:
    """Wall and CPU seconds of K RK4 + K GD steps of N instances, tile by tile
    (set-up, i.e. instance generation and bound constants, excluded)."""

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    wall = cpu = 0.0
    first = None
    for lo in range(0, N, tile):
        n = min(tile, N - lo)
        inst, batch, theta0, consts, h, eta = _setup(spec, n, dev, dtype, seed=lo)
        if first is None:
            # Warm-up on a slice (first-call allocations, kernel caches).
            w = min(n, 64)
            gradient_flow(batch.select(torch.arange(w)), theta0[:, :w], h[:w], 2)
        sync()
        w0, c0 = time.perf_counter(), time.process_time()
        gf = gradient_flow(batch, theta0, h, steps, consts=consts)
        gd = gradient_descent(batch, theta0, eta, steps, consts=consts)
        sync()
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        if first is None:
            first = (inst, batch, theta0, consts, h, eta, gf, gd)
    return {"wall": wall, "cpu": cpu, "first": first}


def time_loop(first, steps: int, n_ref: int) -> dict:
    """The NumPy loop on the first ``n_ref`` instances of the first tile."""
    inst, batch, theta0, consts, h, eta, gf, gd = first
    n_ref = min(n_ref, batch.B)
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
    wall = time.perf_counter() - w0
    cpu_s = time.process_time() - c0
    # Agreement: the final GD parameters, and the GF drift (an absolute quantity of
    # size ~1e-10 that is itself a difference of O(1) numbers, so compared absolutely).
    agree = max(
        max(abs(r["gf_drift"] - float(gf.stats.drift[p])) for p, r in enumerate(ref)),
        max(
            float(np.abs(r["theta"] - gd.theta[:, p].double().cpu().numpy()).max())
            for p, r in enumerate(ref)
        ),
    )
    per = 2 * steps * n_ref
    return {
        "n": n_ref,
        "wall_per_inst_step": wall / per,
        "cpu_per_inst_step": cpu_s / per,
        "max_disagreement": agree,
    }


def bench_m(
    m: int, sizes, steps_for, tile: int, n_ref: int, device: str, peaks: dict
) -> list[dict]:
    """Rows for one m: every N in ``sizes``, the loop measured once beside them."""
    dev = resolve_device(device)
    spec = ScaleSpec() if m == 3 else ScaleSpec(m=m, d=m + 1, n=32)
    rows, loop, count = [], None, None
    for N in sizes:
        steps = steps_for(m, N)
        t = time_batched(spec, N, steps, min(tile, N), dev)
        if loop is None:
            loop = time_loop(t["first"], steps, n_ref)
            _, batch, theta0, consts, h, eta, _, _ = t["first"]
            w = min(batch.B, 256)
            idx = torch.arange(w)
            c = _per_instance_step(
                batch.select(idx),
                theta0[:, :w],
                h[:w],
                eta[:w],
                dataclasses.replace(
                    consts,
                    **{
                        f.name: getattr(consts, f.name)[:w]
                        for f in dataclasses.fields(consts)
                        if isinstance(getattr(consts, f.name), torch.Tensor)
                    },
                ),
            )
            count = {k: (c["rk4"][k] + c["gd"][k]) / 2 for k in ("bytes", "flops")}
            count["kernels_rk4"] = c["rk4"]["kernels"]
        inst_steps = 2 * steps * N
        rate = inst_steps / t["wall"]
        row = {
            "N": N,
            "m": m,
            "d": spec.d,
            "n": spec.n,
            "steps": steps,
            "tile": min(tile, N),
            "device": str(dev),
            "threads": torch.get_num_threads(),
            "batched_seconds": t["wall"],
            "batched_cpu_seconds": t["cpu"],
            "inst_steps_per_s": rate,
            "loop_inst_steps_per_s": 1.0 / loop["wall_per_inst_step"],
            "loop_subset": loop["n"],
            "speedup": rate * loop["wall_per_inst_step"],
            "speedup_cpu_time": loop["cpu_per_inst_step"] * inst_steps / t["cpu"],
            "max_disagreement": loop["max_disagreement"],
            "flops_per_inst_step": count["flops"],
            "bytes_per_inst_step": count["bytes"],
            "kernels_per_rk4_step": count["kernels_rk4"],
            "gflops": rate * count["flops"] / 1e9,
            "gbs": rate * count["bytes"] / 1e9,
        }
        if dev.type == "cpu":
            row["flop_fraction"] = row["gflops"] / peaks["matmul_gflops"]
            row["byte_fraction"] = row["gbs"] / peaks["copy_gbs"]
        else:
            peak, how = _peak_bandwidth(dev)
            row.update(
                peak_bandwidth=peak,
                peak_source=how,
                byte_fraction=rate * count["bytes"] / peak,
            )
        rows.append(row)
        print(_fmt(row), flush=True)
    return rows


def _fmt(r: dict) -> str:
    return (
        f"{r['N']:>7} {r['m']:>2} {r['steps']:>5} {r['batched_seconds']:>8.2f} "
        f"{r['inst_steps_per_s']:>10.3g} {r['loop_inst_steps_per_s']:>9.3g} "
        f"{r['speedup']:>6.0f}x {r['speedup_cpu_time']:>6.0f}x "
        f"{r['flops_per_inst_step'] / 1e3:>7.1f} "
        f"{r['bytes_per_inst_step'] / 1e3:>7.1f} "
        f"{100 * r.get('flop_fraction', math.nan):>6.2f}% "
        f"{100 * r['byte_fraction']:>6.1f}% {r['max_disagreement']:>8.1e}"
    )


HEADER = (
    f"{'N':>7} {'m':>2} {'steps':>5} {'batch s':>8} {'inst-st/s':>10} "
    f"{'loop i-s/s':>9} {'vs loop':>7} {'(cpu)':>7} {'kflop':>7} {'kB':>7} "
    f"{'flop%':>7} {'byte%':>7} {'max diff':>8}"
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="small sizes (CI, < 30 s)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--json", type=Path, default=None, help="write the table here")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a shared CPU a second thread "
        "spins at every kernel's barrier while it waits for a descheduled peer, "
        "measured 10-30x slower per step at m = 5 under load 4)",
    )
    ap.add_argument("--sizes", default=None, help="comma-separated N (default by mode)")
    ap.add_argument("--ms", default=None, help="comma-separated m (default 2,3,5,8)")
    ap.add_argument("--tile", type=int, default=CPU_CHUNK_CAP, help="instances/tile")
    ap.add_argument(
        "--work",
        type=float,
        default=None,
        help="target instance-steps per batched run (sets K; default 4e5, quick 2e4)",
    )
    ap.add_argument(
        "--ref-instances",
        type=int,
        default=None,
        help="instances timed in the NumPy loop (default 4 quick, 20 full)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "bench_scale: CUDA not available in this torch build; the GPU benchmark "
            "(instances/s and memory bandwidth) is skipped. Run with --device cpu."
        )
        return 0
    if args.quick:
        sizes, n_ref, work = [256, 1000], args.ref_instances or 4, args.work or 2e4
    else:
        sizes = [1000, 10_000, 100_000]
        n_ref, work = args.ref_instances or 20, args.work or 4e5
    if args.sizes:
        sizes = [int(x) for x in args.sizes.split(",")]
    ms = [int(x) for x in (args.ms or "2,3,5,8").split(",")]

    # Cost per instance-step grows about as m^2; keep each run near `work` m=3-steps.

    def steps_for(m: int, N: int) -> int:
        return max(2, min(50, int(work * 9 / (m * m) / (2 * N))))

    peaks = cpu_peaks(args.quick) if args.device == "cpu" else {}
    print(
        f"{PROTOCOL}: torch {torch.__version__}, {platform.processor() or 'cpu'}, "
        f"{torch.get_num_threads()} threads, device {args.device}, float64"
    )
    if peaks:
        print(
            f"measured peak: {peaks['matmul_gflops']:.1f} GFLOP/s (float64 "
            f"{peaks['matmul_n']}^2 matmul), {peaks['copy_gbs']:.1f} GB/s "
            f"({peaks['copy_mib']:.0f} MiB copy, read + write)"
        )
    print(
        f"instance-step = one RK4 or one GD step of one instance, with tracking; "
        f"NumPy loop timed on {n_ref} instances per m (its cost does not depend on N)"
    )
    print(HEADER)
    print("-" * len(HEADER))
    rows = []
    for m in ms:
        rows += bench_m(m, sizes, steps_for, args.tile, n_ref, args.device, peaks)
    print(
        "vs loop: wall-time ratio per instance-step ((cpu): process CPU-time ratio, "
        "robust to other load); kflop, kB: counted per instance-step; flop%, byte%: "
        "achieved / measured peak"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"protocol": PROTOCOL, "peaks": peaks, "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

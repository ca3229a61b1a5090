#!/usr/bin/env python
"""Benchmark (E-MEM, E-GRADQ): the reversible DEQ layer against unrolled backprop and
the approximate gradients, side by side in one run.

    python scripts/bench_revdeq.py [--quick] [--device cpu|cuda] [--threads N]
                                   [--json PATH] [--figures DIR] [--seed N]

For one map ``f(z, x) = tanh(LN(W2 relu(W1 z) + x))`` (``ResMLP``, float32 weights,
float64 state as in docs/theory/reversible.md) at several widths and step counts N (tol
= 0, so exactly N
steps), it measures:

- time: forward and backward wall-clock of the reversible layer (median of repeats;
  CUDA synchronised), their ratio, and the same for the unrolled reference;
- memory: bytes autograd holds for backward (saved-tensor hooks, distinct storages;
  deterministic, any device) for reversible and unrolled, their ratio, and the
  reversible growth memory(N=64)/memory(N=4); on CUDA also the peak allocated memory
  of forward + backward above the baseline (``torch.cuda.max_memory_allocated``);
- gradient error at equal forward NFE (float64 f, small width): each method's relative
  error and cosine against (a) the unrolled gradient of the iteration it ran and (b)
  the dense IFT gradient at a tightly converged z*.

Targets (issue 5): memory(N=64)/memory(N=4) <= 1.1 for reversible; backward <= 2.5 x
forward; exact gradient (reversible vs its own unroll) to 1e-10 in float64. Each target
line says measured value, target and whether it was met; nothing is hidden when it is
not. Without CUDA the GPU measurements are skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from dynamics import DEQLayer
from dynamics.gradients import (
    JFB,
    DenseIFT,
    ImplicitIFT,
    Phantom,
    ReversibleExact,
    Unrolled,
)
from dynamics.instances.torch_examples import ResMLP, loss_grads
from dynamics.solvers import Anderson, Relaxed, Reversible

PROTOCOL = "E-MEM / E-GRADQ reversible DEQ benchmark"
TARGETS = {"memory_ratio_64_4": 1.1, "backward_over_forward": 2.5, "exact_rel": 1e-10}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def saved_bytes(fn) -> int:
    """Bytes of distinct storages autograd saves for backward while ``fn()`` runs."""
    seen: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        seen[st.data_ptr()] = max(seen.get(st.data_ptr(), 0), st.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())


def time_layer(layer, x, repeats: int, device) -> tuple[float, float]:
    """Median forward and backward seconds of ``layer`` (loss = sum of the output)."""
    fwd, bwd = [], []
    for _ in range(repeats + 1):  # first run is a warm-up
        for p in layer.parameters():
            p.grad = None
        _sync(device)
        t0 = time.perf_counter()
        z = layer(x)
        _sync(device)
        t1 = time.perf_counter()
        z.sum().backward()
        _sync(device)
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
    return statistics.median(fwd[1:]), statistics.median(bwd[1:])


def gpu_peak(layer, x, device) -> int | None:
    if device.type != "cuda":
        return None
    for p in layer.parameters():
        p.grad = None
    _sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    layer(x).sum().backward()
    _sync(device)
    return torch.cuda.max_memory_allocated(device) - base


def scaling_table(widths, ns, batch, repeats, device, seed):
    rows = []
    for d in widths:
        f = ResMLP(d, seed=seed, dtype=torch.float32).to(device)
        x = torch.randn(batch, d, generator=torch.Generator().manual_seed(seed)).to(
            device
        )
        for n in ns:
            row = {"width": d, "N": n, "batch": batch}
            for name, grad in (
                ("rev", ReversibleExact(recon_threshold=None)),
                ("unrolled", Unrolled()),
            ):
                # throw=False: at large N the reconstruction of any f overflows
                # (each undone step expands errors by >= 1/|1-beta|,
                # docs/theory/reversible.md); the
                # timing and memory are still meaningful and the code is recorded.
                layer = DEQLayer(
                    f, Reversible(0.8), grad, tol=0.0, max_steps=n, throw=False
                )
                fwd, bwd = time_layer(layer, x, repeats, device)
                row[f"{name}_fwd_s"] = fwd
                row[f"{name}_bwd_s"] = bwd
                row[f"{name}_bwd_over_fwd"] = bwd / fwd
                row[f"{name}_saved_bytes"] = saved_bytes(lambda layer=layer: layer(x))
                row[f"{name}_gpu_peak_bytes"] = gpu_peak(layer, x, device)
                if name == "rev":
                    layer(x).sum().backward()
                    st = layer.last_stats
                    row["rev_recon_err"] = float(st["reconstruction_error"].max())
                    row["rev_backward_result"] = st["backward_result"].value
            row["saved_ratio_unrolled_over_rev"] = (
                row["unrolled_saved_bytes"] / row["rev_saved_bytes"]
            )
            row["total_time_rev_over_unrolled"] = (
                row["rev_fwd_s"] + row["rev_bwd_s"]
            ) / (row["unrolled_fwd_s"] + row["unrolled_bwd_s"])
            rows.append(row)
            print(
                f"  width {d:4d} N {n:3d}: rev fwd {row['rev_fwd_s'] * 1e3:8.2f} ms "
                f"bwd {row['rev_bwd_s'] * 1e3:8.2f} ms (x{row['rev_bwd_over_fwd']:.2f})"
                f" | saved rev {row['rev_saved_bytes'] / 1e6:8.3f} MB unrolled "
                f"{row['unrolled_saved_bytes'] / 1e6:8.3f} MB",
                flush=True,
            )
    return rows


def _rel(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _cos(a, b) -> float:
    return float(torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-300))


def gradient_table(d, batch, ns, seed, device):
    """Gradient error at equal forward NFE 1 + 2N, float64 throughout."""
    f = ResMLP(d, seed=seed, dtype=torch.float64).to(device)
    x = torch.randn(
        batch, d, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64
    ).to(device)
    truth, tst = loss_grads(
        f,
        Anderson(m=5, beta=0.8),
        DenseIFT(),
        x,
        tol=1e-12,
        max_steps=3000,
        throw=False,
    )
    rows = []
    for n in ns:
        budget = 2 * n  # forward NFE 1 + 2N for every method below
        methods = {
            "reversible (ReversibleExact)": (
                Reversible(0.8),
                ReversibleExact(recon_threshold=None),
                n,
            ),
            "relaxed 0.8 + unrolled": (Relaxed(0.8), Unrolled(), budget),
            "Anderson + IFT (bwd <= 2N)": (
                Anderson(),
                ImplicitIFT(tol=1e-10, max_steps=budget),
                budget,
            ),
            "Anderson + phantom k=10": (Anderson(), Phantom(k=10, lam=0.5), budget),
            "Anderson + JFB": (Anderson(), JFB(), budget),
        }
        for name, (solver, grad, steps) in methods.items():
            kw = {"tol": 0.0, "max_steps": steps, "throw": False}
            got, st = loss_grads(f, solver, grad, x, **kw)
            own, _ = loss_grads(f, solver, Unrolled(), x, **kw)
            rows.append(
                {
                    "N": n,
                    "method": name,
                    "nfe_forward": st["nfe_forward"],
                    "nfe_backward": st["nfe_backward"],
                    "rel_vs_own_unroll": _rel(got, own),
                    "rel_vs_true_ift": _rel(got, truth),
                    "cos_vs_true_ift": _cos(got, truth),
                    "forward_residual": float(st["residual"].max()),
                }
            )
    return rows, {
        "truth_residual": float(tst["residual"].max()),
        "truth_backward_residual": float(tst["backward_residual"].max()),
    }


def markdown(scaling, grads, targets) -> str:
    lines = [
        "| width | N | rev fwd ms | rev bwd ms | bwd/fwd | unrolled bwd/fwd | "
        "saved rev MB | saved unrolled MB | unrolled/rev | GPU peak rev/unrolled | "
        "recon err (backward result) | time rev/unrolled |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in scaling:
        gp = "-"
        if r["rev_gpu_peak_bytes"] is not None:
            rev_mb = r["rev_gpu_peak_bytes"] / 1e6
            gp = f"{rev_mb:.1f}/{r['unrolled_gpu_peak_bytes'] / 1e6:.1f} MB"
        lines.append(
            f"| {r['width']} | {r['N']} | {r['rev_fwd_s'] * 1e3:.2f} | "
            f"{r['rev_bwd_s'] * 1e3:.2f} | {r['rev_bwd_over_fwd']:.2f} | "
            f"{r['unrolled_bwd_over_fwd']:.2f} | {r['rev_saved_bytes'] / 1e6:.3f} | "
            f"{r['unrolled_saved_bytes'] / 1e6:.3f} | "
            f"{r['saved_ratio_unrolled_over_rev']:.1f} | {gp} | "
            f"{r['rev_recon_err']:.1e} ({r['rev_backward_result']}) | "
            f"{r['total_time_rev_over_unrolled']:.2f} |"
        )
    lines += [
        "",
        "| N | method | NFE fwd/bwd | rel err vs own unroll | rel err vs IFT "
        "at z* | cosine vs IFT |",
        "|---|---|---|---|---|---|",
    ]
    for g in grads:
        lines.append(
            f"| {g['N']} | {g['method']} | {g['nfe_forward']}/"
            f"{g['nfe_backward']} | {g['rel_vs_own_unroll']:.2e} | "
            f"{g['rel_vs_true_ift']:.2e} | {g['cos_vs_true_ift']:.6f} |"
        )
    lines += ["", "| target | measured | goal | met |", "|---|---|---|---|"]
    for t in targets:
        lines.append(
            f"| {t['name']} | {t['measured']:.3g} | {t['goal']} | "
            f"{'yes' if t['met'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="CI-sized run (seconds)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (timings are per-thread comparable)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    p.add_argument("--figures", type=Path)
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "bench_revdeq: CUDA not available; GPU measurements skipped, using CPU",
            file=sys.stderr,
        )
        args.device = "cpu"
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RuntimeWarning)
    if args.quick:
        widths, ns, batch, repeats = (32, 128), (4, 16, 64), 16, 3
        gwidth, gbatch, gns = 16, 4, (2, 4)
    else:
        widths, ns, batch, repeats = (64, 256, 512), (4, 16, 64), 64, 5
        gwidth, gbatch, gns = 32, 8, (2, 4, 8)
    t0 = time.perf_counter()
    print(
        f"{PROTOCOL} on {device} ({'quick' if args.quick else 'full'}, "
        f"{args.threads} thread(s), seed {args.seed})",
        flush=True,
    )
    scaling = scaling_table(widths, ns, batch, repeats, device, args.seed)
    grads, truth = gradient_table(gwidth, gbatch, gns, args.seed, device)

    targets = []
    for d in widths:
        by_n = {r["N"]: r for r in scaling if r["width"] == d}
        ratio = by_n[64]["rev_saved_bytes"] / by_n[4]["rev_saved_bytes"]
        targets.append(
            {
                "name": f"saved-bytes memory(N=64)/memory(N=4), reversible, width {d}",
                "measured": ratio,
                "goal": "<= 1.1",
                "met": ratio <= TARGETS["memory_ratio_64_4"],
            }
        )
        if device.type == "cuda":
            g = by_n[64]["rev_gpu_peak_bytes"] / by_n[4]["rev_gpu_peak_bytes"]
            targets.append(
                {
                    "name": f"GPU peak memory(N=64)/memory(N=4), width {d}",
                    "measured": g,
                    "goal": "<= 1.1",
                    "met": g <= TARGETS["memory_ratio_64_4"],
                }
            )
    worst_bf = max(r["rev_bwd_over_fwd"] for r in scaling)
    targets.append(
        {
            "name": "backward/forward time, reversible (worst case)",
            "measured": worst_bf,
            "goal": "<= 2.5",
            "met": worst_bf <= TARGETS["backward_over_forward"],
        }
    )
    big = max(widths)
    bf_big = max(r["rev_bwd_over_fwd"] for r in scaling if r["width"] == big)
    targets.append(
        {
            "name": f"backward/forward time, reversible, width {big}",
            "measured": bf_big,
            "goal": "<= 2.5",
            "met": bf_big <= TARGETS["backward_over_forward"],
        }
    )
    exact = max(
        g["rel_vs_own_unroll"] for g in grads if g["method"].startswith("reversible")
    )
    targets.append(
        {
            "name": "reversible gradient vs its own unroll (float64, rel)",
            "measured": exact,
            "goal": "<= 1e-10",
            "met": exact <= TARGETS["exact_rel"],
        }
    )

    table = markdown(scaling, grads, targets)
    print()
    print(table)
    payload = {
        "protocol": PROTOCOL,
        "seed": args.seed,
        "quick": args.quick,
        "device": str(device),
        "threads": args.threads,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "scaling": scaling,
        "gradients": grads,
        "truth": truth,
        "targets": targets,
        "seconds": time.perf_counter() - t0,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=1, default=str))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n")
    if args.figures:
        _figure(scaling, args.figures, args.seed)
    for t in targets:
        print(
            f"REV-BENCH {t['name']}: {t['measured']:.3g} (goal {t['goal']}) "
            f"{'met' if t['met'] else 'NOT met'}"
        )
    return 0


def _figure(scaling, out: Path, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for d in sorted({r["width"] for r in scaling}):
        rows = [r for r in scaling if r["width"] == d]
        n = [r["N"] for r in rows]
        ax[0].plot(n, [r["rev_saved_bytes"] for r in rows], "o-", label=f"rev d={d}")
        ax[0].plot(
            n, [r["unrolled_saved_bytes"] for r in rows], "s--", label=f"unrolled d={d}"
        )
        ax[1].plot(
            n, [r["rev_fwd_s"] + r["rev_bwd_s"] for r in rows], "o-", label=f"rev d={d}"
        )
    ax[0].set(xscale="log", yscale="log", xlabel="N", ylabel="bytes saved for backward")
    ax[1].set(xscale="log", yscale="log", xlabel="N", ylabel="forward + backward (s)")
    for a in ax:
        a.legend(fontsize=7)
    fig.suptitle(f"{PROTOCOL} (seed {seed})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "bench_revdeq.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

"""``deq-dynamics scale``: the P-SCALE protocol on N batched instances (SCALE-COND,
SCALE-RATE), with progress, a JSON report and figures."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dynamics.errors import InvalidInputError, OutputPathError

from ..outputs import check_dir, check_file


def register(sub) -> None:
    p = sub.add_parser(
        "scale",
        help="check SCALE-COND / SCALE-RATE on many batched instances",
        description="Run N seeded matrix linear DEQs (hard-region mixture) through "
        "gradient flow (batched RK4 and implicit midpoint) and gradient descent at "
        "once, check the conditioning and rate bounds on every trajectory, and report "
        "the worst margins with the instances that attained them. Exit 1 if a claim "
        "fails, 2 on a usage error (e.g. --device cuda without CUDA).",
    )
    p.add_argument(
        "--instances",
        "--n",
        type=int,
        default=10_000,
        metavar="N",
        help="number of instances (default 10000)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="where the batched engine runs (default cpu)",
    )
    p.add_argument(
        "--dtype",
        default="float64",
        choices=("float64", "float32"),
        help="precision of the dynamics (default float64; float32 meets "
        "no SCALE-* tolerance and is judged with loosened ones)",
    )
    p.add_argument("--seed", type=int, default=0, help="instance stream (default 0)")
    p.add_argument(
        "--json", type=Path, metavar="PATH", help="write the full report here"
    )
    p.add_argument("--figures", type=Path, metavar="DIR", help="write figures here")
    p.add_argument("--gf-steps", type=int, default=400, help="RK4 steps (default 400)")
    p.add_argument("--gd-steps", type=int, default=1200, help="GD steps (default 1200)")
    p.add_argument(
        "--midpoint-every",
        type=int,
        default=50,
        metavar="K",
        help="implicit midpoint on every K-th instance (0: off; default 50)",
    )
    p.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="instances per chunk (default: from the memory budget)",
    )
    p.add_argument(
        "--memory-budget",
        type=float,
        default=None,
        metavar="GIB",
        help="memory one chunk may use, in GiB (default 1 on CPU, half "
        "the free GPU memory on CUDA)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice; on a CPU shared "
        "with other busy processes 1 is much faster, because idle OpenMP "
        "threads spin while waiting for descheduled ones)",
    )
    p.add_argument(
        "--no-replay",
        action="store_true",
        help="skip replaying the worst instance in the single-instance engine",
    )
    p.add_argument(
        "--cluster",
        default=None,
        metavar="WHERE",
        help="run the chunks on Dask: 'local' (a LocalCluster on loopback, started "
        "and closed here) or tcp://host:8786 (an existing scheduler); needs "
        "pip install 'deq-dynamics[cluster]'. Default: a local process pool",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="process-pool / LocalCluster workers (default: CPU count)",
    )
    p.add_argument(
        "--serial",
        action="store_true",
        help="run the chunks in this process (no pool)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        metavar="DIR",
        help="write each finished chunk's reduction here (atomic JSON files)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep whose chunks are in --checkpoint DIR",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_main)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _main(args: argparse.Namespace) -> int:
    from dynamics.batched.batched_linear import resolve_device
    from dynamics.batched.instances_batched import CATEGORIES
    from dynamics.batched.scale import ScaleConfig
    from dynamics.batched.sweep import run_sweep

    from ..checks.scale import drift_by_dtype, judge, replay_worst, tolerances
    from ..report import environment, write_json

    try:
        if args.threads is not None:
            if args.threads < 1:
                raise InvalidInputError("--threads must be >= 1")
            import torch

            torch.set_num_threads(args.threads)
        resolve_device(args.device)
        check_file(args.json, "--json")
        check_dir(args.figures, "--figures")
        if args.resume and args.checkpoint is None:
            raise InvalidInputError("--resume needs --checkpoint DIR")
        if args.workers is not None and args.workers < 1:
            raise InvalidInputError("--workers must be >= 1")
        if args.cluster is not None and args.serial:
            raise InvalidInputError("--cluster and --serial exclude each other")
        budget = None if args.memory_budget is None else int(args.memory_budget * 2**30)
        cfg = ScaleConfig(
            instances=args.instances,
            seed=args.seed,
            device=args.device,
            dtype=args.dtype,
            gf_steps=args.gf_steps,
            gd_steps=args.gd_steps,
            midpoint_every=args.midpoint_every,
            chunk=args.chunk,
            memory_budget=budget,
        )
    except (InvalidInputError, OutputPathError) as exc:
        print(f"deq-dynamics scale: {exc}", file=sys.stderr)
        return 2
    executor = (
        args.cluster
        if args.cluster is not None
        else "serial"
        if args.serial or cfg.device == "cuda"
        else "process"
    )
    t0 = time.perf_counter()
    try:
        result = run_sweep(
            cfg,
            executor=executor,
            workers=args.workers,
            checkpoint=args.checkpoint,
            resume=args.resume,
            progress=None if args.quiet else _progress,
        )
    except InvalidInputError as exc:
        print(f"deq-dynamics scale: {exc}", file=sys.stderr)
        return 2
    summary = result.partial.summary(CATEGORIES, tolerances(cfg.dtype))
    verdicts = judge(summary, cfg.dtype)
    rep = None
    if not args.no_replay:
        if not args.quiet:
            _progress(
                "replaying the worst SCALE-COND instance in the single-instance engine"
            )
        rep = replay_worst(result, verdicts)
    figures = []
    if args.figures is not None:
        import types

        import numpy as np

        from dynamics.batched.scale import run_chunk

        from ..figures import scale as scale_figures

        args.figures.mkdir(parents=True, exist_ok=True)
        ms = result.partial.measures
        figures.append(
            scale_figures.scale_rate_histogram(
                {
                    "gf_rate_ratio_final": ms["gf/kappa_ratio"].dist.values_for_plot(),
                    "gd_rate_ratio_final": ms[
                        "gd/log_contraction_ratio"
                    ].dist.values_for_plot(),
                    "index": np.arange(summary["instances"]),
                },
                args.figures / "scale-rate-ratio-hist.png",
            )
        )
        if rep is not None:
            figures.append(
                scale_figures.scale_worst_sigma(
                    rep["_replay"], args.figures / "scale-worst-sigma-min.png"
                )
            )
        # the dtype comparison reruns the first instances: their steps come from a
        # one-chunk run (per-instance results do not depend on the chunking)
        first = run_chunk(cfg, 0, min(128, cfg.instances))
        figures.append(
            scale_figures.scale_drift_vs_dtype(
                drift_by_dtype(
                    types.SimpleNamespace(config=cfg, arrays={"gf_h": first["gf_h"]})
                ),
                args.figures / "scale-drift-vs-dtype.png",
            )
        )
    wall = time.perf_counter() - t0

    c, r = verdicts["SCALE-COND"], verdicts["SCALE-RATE"]
    print(
        f"P-SCALE: {summary['instances']} instances on {result.executor} "
        f"({result.device_name}), {cfg.dtype}, {result.chunks} chunks of "
        f"<= {result.chunk} ({result.resumed} resumed), engine "
        f"{result.seconds:.1f} s, total {wall:.1f} s"
    )
    print(f"  categories: {summary['categories']}")
    print(
        f"SCALE-COND {'pass' if c['passed'] else 'FAIL'}: min margin "
        f"{_fmt(c['worst_margin'])} ({c['worst_run']}, instance "
        f"{c['worst_instance']['instance']}, {c['worst_instance']['category']}); "
        f"margins {', '.join(f'{k} {_fmt(v)}' for k, v in c['margins'].items())}; "
        f"max RK4 drift {_fmt(c['max_drift'])}, midpoint drift "
        f"{_fmt(c['midpoint_max_drift'])}"
    )
    q = c["quantiles"]
    print(
        f"  margin quantiles (RK4): min {_fmt(q['q0'])}, 1% {_fmt(q['q0.01'])}, "
        f"median {_fmt(q['q0.5'])}, 99% {_fmt(q['q0.99'])}"
    )
    print(
        f"SCALE-RATE {'pass' if r['passed'] else 'FAIL'}: ln(bound/R) min GF "
        f"{_fmt(r['gf_rate_log_margin'])}, GD {_fmt(r['gd_rate_log_margin'])}; "
        f"kappa_hat/kappa min {_fmt(r['kappa_ratio_min'])}"
    )
    q = r["kappa_ratio_quantiles"]
    print(
        f"  kappa_hat/kappa quantiles: 1% {_fmt(q['q0.01'])}, 10% {_fmt(q['q0.1'])}, "
        f"median {_fmt(q['q0.5'])}, 90% {_fmt(q['q0.9'])}, max {_fmt(q['q1'])}"
    )
    q = r["gd_log_contraction_quantiles"]
    print(
        f"  GD log-contraction / bound: min {_fmt(q['q0'])}, median {_fmt(q['q0.5'])}, "
        f"max {_fmt(q['q1'])}; descent inequality failed on {r['descent_failed']} "
        f"trajectories"
    )
    for reason in c["reasons"] + r["reasons"]:
        print(f"  -> {reason}")
    if rep is not None:
        print(
            f"replay of instance {rep['instance']} ({rep['method']}, {rep['steps']} "
            f"steps): max |theta_batched - theta_single| {rep['max_theta_diff']:.2e}, "
            f"single-engine margin {rep['single_cond_margin']:.6g}"
        )
    if cfg.dtype != "float64":
        print(
            "note: float32 run judged with loosened tolerances; it does not count as "
            "a SCALE-* pass (the claims' tolerances are below float32 rounding)"
        )
    for f in figures:
        if f:
            print(f"wrote {f}")
    if args.json is not None:
        payload = {
            "tool": "deq-dynamics scale",
            "protocol": "P-SCALE",
            "seed": cfg.seed,
            "config": cfg.describe(),
            "environment": environment(),
            "device": result.device_name,
            "executor": result.executor,
            "chunk": result.chunk,
            "chunks": result.chunks,
            "resumed_chunks": result.resumed,
            "engine_seconds": result.seconds,
            "wall_seconds": wall,
            "summary": summary,
            "verdicts": verdicts,
            "replay": None
            if rep is None
            else {k: v for k, v in rep.items() if not k.startswith("_")},
            "figures": [f for f in figures if f],
        }
        print(f"wrote {write_json(args.json, payload)}")
    return 0 if c["passed"] and r["passed"] else 1

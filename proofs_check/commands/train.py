"""``deq-dynamics train TASK``: RevDEQ vs DEQ and explicit baselines on real data."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train RevDEQ, DEQ and explicit baselines on images or text",
        description="Train the arms (a) RevDEQ, (b) Anderson+IFT with and without "
        "Jacobian regularisation, (c) phantom gradients, (d) explicit weight-tied, "
        "(e) explicit untied on Fashion-MNIST (task 'images') or the King James Bible "
        "(task 'text'), with the same seed and wall-clock budget per arm. Writes "
        "OUT/summary.json, OUT/results.md, per-arm metrics.csv and checkpoints, and "
        "figures.",
    )
    p.add_argument(
        "task", choices=("images", "text"), metavar="TASK", help="images | text"
    )
    p.add_argument(
        "--arms",
        nargs="+",
        metavar="ARM",
        default=None,
        help="subset of: revdeq deq_ift deq_ift_jr phantom tied untied jfb "
        "(default: all but jfb)",
    )
    p.add_argument(
        "--scale",
        choices=("cpu", "full"),
        default="cpu",
        help="cpu (default, about 9 min per task on 2 CPU cores) or full (GPU)",
    )
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs per arm")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="training wall-clock per arm (0: no limit)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every arm (default 0)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="run directory (default runs/TASK-SCALE)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from the checkpoints in --out"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="train into a non-empty --out, replacing the checkpoints of the arms "
        "trained now (without it or --resume a non-empty --out is refused)",
    )
    p.add_argument(
        "--figures",
        type=Path,
        default=Path("figures"),
        metavar="DIR",
        help="figure directory (default figures/)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice)",
    )
    p.add_argument(
        "--data",
        default="auto",
        metavar="SOURCE",
        help="data source: auto, or fashion-mnist / sklearn-digits / "
        "synthetic (images), file / kjv / brown / builtin (text)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory with your own Fashion-MNIST download (the four standard "
        "IDX files, .gz or not; default $DEQ_FASHION_MNIST_DIR, else the Debian "
        "package path)",
    )
    p.add_argument(
        "--text-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="your own UTF-8 corpus for the text task (default $DEQ_TEXT_FILE, "
        "else the KJV from the bible program)",
    )
    p.add_argument(
        "--no-probes",
        action="store_true",
        help="skip the gradient-error probes of the DEQ arms",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="CI smoke run: generated / built-in data, a small model, 3 s per "
        "arm, results under runs/TASK-quick (an explicit --budget / --epochs "
        "still applies)",
    )
    p.add_argument(
        "--memory-steps",
        type=int,
        nargs="*",
        default=[1, 2, 4, 8, 16],
        metavar="N",
        help="solver steps of the memory-vs-N sweep (none: skip)",
    )
    p.add_argument(
        "--replot",
        action="store_true",
        help="no training: redraw the figures and results.md from OUT/summary.json "
        "(and OUT/memory_vs_steps.json)",
    )
    p.set_defaults(func=_main)


def _fail(msg) -> int:
    print(f"deq-dynamics train: {msg}", file=sys.stderr)
    return 2


def _main(args: argparse.Namespace) -> int:
    import torch

    from dynamics.errors import DEQError
    from dynamics.training import (
        ALL_ARMS,
        DEFAULT_ARMS,
        get_config,
        get_preset,
        make_task,
        memory_sweep,
        results_table,
        run_task,
    )
    from dynamics.training.trainer import atomic_write_text, check_out_dir

    from ..figures import training as figs
    from ..outputs import check_dir

    arms = tuple(args.arms) if args.arms else DEFAULT_ARMS
    unknown = [a for a in arms if a not in ALL_ARMS]
    if unknown:
        print(
            f"deq-dynamics train: unknown arm(s) {unknown}; choose from "
            f"{', '.join(ALL_ARMS)}",
            file=sys.stderr,
        )
        return 2
    if args.epochs is not None and args.epochs < 1:
        return _fail(f"--epochs must be >= 1; got {args.epochs}")
    if args.budget is not None and not (args.budget >= 0):
        return _fail(f"--budget must be >= 0 seconds (0: no limit); got {args.budget}")
    if args.threads is not None and args.threads < 1:
        return _fail(f"--threads must be >= 1; got {args.threads}")
    if args.resume and args.overwrite:
        return _fail("--resume and --overwrite contradict each other; pick one")
    cfg = get_config(args.task, args.scale)
    changes = {}
    if args.quick:
        preset = get_preset("quick")
        changes.update(preset.changes_for(cfg, threads=args.threads))
        if args.data == "auto":
            args.data = preset.data[args.task]
        if args.memory_steps == [1, 2, 4, 8, 16]:
            args.memory_steps = list(preset.memory_steps)
    # what the user typed wins over the preset (a quick run with --budget 60 runs 60 s)
    if args.epochs is not None:
        changes["max_epochs"] = args.epochs
    if args.budget is not None:
        changes["budget_s"] = args.budget if args.budget > 0 else None
    if args.threads is not None:
        changes["threads"] = args.threads
    try:
        cfg = cfg.replace(**changes)
    except DEQError as exc:
        return _fail(exc)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        return _fail(
            f"--device {device}: CUDA is not available on this machine; use "
            "--device cpu or auto"
        )
    if device not in ("cpu",) and not device.startswith("cuda"):
        return _fail(f"--device must be cpu, cuda[:N] or auto; got {device!r}")
    if device.startswith("cuda"):
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    if args.scale == "full" and device == "cpu":
        print(
            "deq-dynamics train: --scale full is meant for a GPU; running it on the "
            "CPU will take many hours",
            file=sys.stderr,
        )
    tag = "quick" if args.quick else args.scale
    out = args.out or Path("runs") / f"{args.task}-{tag}"
    stem = f"train-{args.task}" + ("" if tag == "cpu" else f"-{tag}")
    try:
        check_dir(args.figures, "--figures")
        if args.replot:
            return _replot(args, out, stem)
        check_out_dir(out, resume=args.resume, overwrite=args.overwrite)
        check_dir(out, "--out")
    except DEQError as exc:
        return _fail(exc)
    t0 = time.perf_counter()
    try:
        task = make_task(
            cfg,
            device=device,
            source=args.data,
            seed=args.seed,
            data_dir=args.data_dir,
            text_file=args.text_file,
        )
        summary = run_task(
            task,
            cfg,
            arms=arms,
            seed=args.seed,
            out_dir=out,
            resume=args.resume,
            overwrite=args.overwrite,
            probes=not args.no_probes,
        )
    except (FileNotFoundError, DEQError) as exc:
        return _fail(exc)
    paths = [figs.metric_vs_cost(summary, args.figures / f"{stem}-metric-vs-cost.png")]
    if not args.no_probes:
        paths.append(
            figs.gradient_error(summary, args.figures / f"{stem}-grad-error.png")
        )
    if args.memory_steps:
        sweep = memory_sweep(task, cfg, steps=tuple(args.memory_steps), seed=args.seed)
        atomic_write_text(out / "memory_vs_steps.json", json.dumps(sweep, indent=1))
        paths.append(
            figs.memory_vs_steps(
                sweep, args.task, args.figures / f"{stem}-memory-vs-N.png"
            )
        )
    print(results_table(summary))
    print(f"\ndata: {summary['data']}")
    print(
        f"train {args.task}: {len(arms)} arm(s) in {time.perf_counter() - t0:.0f} s; "
        f"wrote {out}/summary.json, {out}/results.md and {', '.join(map(str, paths))}"
    )
    return 0


def _replot(args: argparse.Namespace, out: Path, stem: str) -> int:
    from dynamics.training import results_table
    from dynamics.training.trainer import atomic_write_text

    from ..figures import training as figs

    path = out / "summary.json"
    if not path.is_file():
        print(
            f"deq-dynamics train --replot: {path} not found; train first",
            file=sys.stderr,
        )
        return 2
    summary = json.loads(path.read_text())
    atomic_write_text(out / "results.md", results_table(summary) + "\n")
    paths = [
        figs.metric_vs_cost(summary, args.figures / f"{stem}-metric-vs-cost.png"),
        figs.gradient_error(summary, args.figures / f"{stem}-grad-error.png"),
    ]
    mem = out / "memory_vs_steps.json"
    if mem.is_file():
        paths.append(
            figs.memory_vs_steps(
                json.loads(mem.read_text()),
                args.task,
                args.figures / f"{stem}-memory-vs-N.png",
            )
        )
    print(results_table(summary))
    print(f"\nredrew {out}/results.md and {', '.join(map(str, paths))}")
    return 0

"""``deq-dynamics diagnose TASK``: how wrong is each gradient method on a built-in DEQ
(docs/guide/diagnose.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dynamics.errors import DEQError


def register(sub) -> None:
    p = sub.add_parser(
        "diagnose",
        help="cosine of each gradient method with the exact gradient on a built-in DEQ",
        description="Solve one shared fixed point of the built-in Fashion-MNIST DEQ "
        "(task 'images') or character-LM DEQ (task 'text') in float64 to a tight "
        "tolerance and report, for JFB, Neumann-k, damped, phantom, implicit and "
        "reversible gradients: cosine with the exact gradient (dense IFT, checked "
        "against unrolled autograd), norm ratio, descent, time and memory. With "
        "--along-training, train the model and diagnose every --every steps, and "
        "plot cosine against training step. For your own DEQLayer use the Python "
        "API dynamics.diagnose (see README).",
    )
    p.add_argument(
        "task", choices=("images", "text"), metavar="TASK", help="images | text"
    )
    p.add_argument(
        "--block",
        choices=("tanh", "conv"),
        default="tanh",
        help="tanh (default: a tanh conv block for images, a tanh causal-mixing "
        "block for text, both with tightly solvable fixed points) or conv (the "
        "training experiments' GroupNorm conv / transformer block, whose fixed point "
        "is not solvable to tight tolerance at this scale: reported not-converged)",
    )
    p.add_argument(
        "--batch", type=int, default=16, help="probe batch size (default 16)"
    )
    p.add_argument(
        "--tol", type=float, default=1e-10, help="shared solve tolerance (1e-10)"
    )
    p.add_argument(
        "--max-steps", type=int, default=500, help="shared solve step cap (500)"
    )
    p.add_argument(
        "--along-training",
        action="store_true",
        help="train the model (Adam, implicit gradient) and diagnose along the way",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="training steps (default 600; quick 20)"
    )
    p.add_argument(
        "--every", type=int, default=None, help="diagnose every N steps (100; quick 10)"
    )
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    p.add_argument("--quick", action="store_true", help="tiny model, few steps (CI)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="JSON report"
    )
    p.add_argument(
        "--markdown", type=Path, default=None, metavar="PATH", help="Markdown report"
    )
    p.add_argument(
        "--figures",
        type=Path,
        default=Path("figures"),
        metavar="DIR",
        help="figure directory for --along-training (default figures/)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing --json / --markdown / figure files",
    )
    p.add_argument(
        "--data",
        default="auto",
        metavar="SOURCE",
        help="data source as for `train` (auto, fashion-mnist, synthetic, builtin...)",
    )
    p.add_argument("--data-dir", type=Path, default=None, metavar="DIR")
    p.add_argument("--text-file", type=Path, default=None, metavar="FILE")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: these small models run ~100x slower "
        "with one thread per core on a shared machine, measured)",
    )
    p.set_defaults(func=_main)


def _fail(msg: str) -> int:
    print(f"deq-dynamics diagnose: {msg}", file=sys.stderr)
    return 2


def _refuse_existing(paths, overwrite: bool) -> str | None:
    for path in paths:
        if path is not None and path.exists() and not overwrite:
            return f"{path} exists; pass --overwrite to replace it"
    return None


def _main(args: argparse.Namespace) -> int:
    import torch

    from dynamics.training.diagnostics import along_training, build, probe_diagnosis

    from ..figures.diagnose import cosine_vs_step
    from ..outputs import check_dir, check_file
    from ..report import atomic_write_text, write_json

    quick_tag = "-quick" if args.quick else ""
    fig_path = (
        args.figures / f"diagnose-cosine-{args.task}{quick_tag}.png"
        if args.along_training
        else None
    )
    try:
        check_file(args.json, "--json")
        check_file(args.markdown, "--markdown")
        if fig_path is not None:
            check_dir(args.figures, "--figures")
    except DEQError as exc:
        return _fail(str(exc))
    msg = _refuse_existing([args.json, args.markdown, fig_path], args.overwrite)
    if msg:
        return _fail(msg)
    if args.batch < 1 or args.max_steps < 1 or not 0 < args.tol < 1:
        return _fail("need --batch >= 1, --max-steps >= 1 and 0 < --tol < 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    steps = args.steps if args.steps is not None else (20 if args.quick else 600)
    every = args.every if args.every is not None else (10 if args.quick else 100)
    if steps < 0 or every < 1:
        return _fail(f"need --steps >= 0 and --every >= 1; got {steps}, {every}")
    kw = dict(tol=args.tol, max_steps=args.max_steps)
    try:
        dm = build(
            args.task,
            quick=args.quick,
            seed=args.seed,
            source=args.data,
            data_dir=args.data_dir,
            text_file=args.text_file,
            probe_batch=args.batch,
            block=args.block,
        )
        print(f"data: {dm.note}", flush=True)
        if not args.along_training:
            diag = probe_diagnosis(dm, allow_unconverged=True, **kw)
            payload = {"task": args.task, "data": dm.note, "diagnosis": diag.to_dict()}
            text = f"# deq-dynamics diagnose {args.task}\n\n{dm.note}\n\n"
            text += diag.to_markdown() + "\n"
        else:
            records = along_training(
                dm,
                steps=steps,
                every=every,
                lr=args.lr,
                seed=args.seed,
                log=lambda s: print(s, flush=True),
                **kw,
            )
            payload = {
                "task": args.task,
                "data": dm.note,
                "steps": steps,
                "every": every,
                "lr": args.lr,
                "records": records,
            }
            fig = cosine_vs_step(records, fig_path, title=f"{args.task}: {dm.note}")
            payload["figure"] = fig
            text = _along_markdown(args.task, dm.note, records)
            diag = None
    except DEQError as exc:
        return _fail(f"{type(exc).__name__}: {exc}")
    print(text)
    if args.json is not None:
        write_json(args.json, payload)
    if args.markdown is not None:
        atomic_write_text(args.markdown, text)
    return 0


def _along_markdown(task: str, note: str, records: list[dict]) -> str:
    """Cosine per method (columns) at each diagnosed step (rows)."""
    labels = []
    for r in records:
        for m in (r["diagnosis"] or {}).get("methods", []):
            if m["label"] not in labels:
                labels.append(m["label"])
    lines = [
        f"# deq-dynamics diagnose {task} --along-training",
        "",
        note,
        "",
        "Cosine with the exact (dense IFT) gradient at the shared fixed point of the "
        "probe batch; status is the shared solve's.",
        "",
        "| step | train loss | status | refs agree | " + " | ".join(labels) + " |",
        "|" + "---|" * (4 + len(labels)),
    ]
    for r in records:
        d = r["diagnosis"]
        if d is None:
            lines.append(
                f"| {r['step']} | {r['train_loss']:.3f} | error: {r['error']} |"
            )
            continue
        cos = {m["label"]: m["cosine"] for m in d["methods"]}
        lines.append(
            f"| {r['step']} | {r['train_loss']:.3f} | {d['status']} | "
            f"{'yes' if d['references_agree'] else 'no'} | "
            + " | ".join(f"{cos.get(lab, float('nan')):.4f}" for lab in labels)
            + " |"
        )
    return "\n".join(lines) + "\n"

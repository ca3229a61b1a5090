"""Training loop, evaluation rounds, checkpoints and metric logs for the arms.

Every arm of a task starts from the same seed (same data order, same initialisation
stream) and gets the same training wall-clock budget (evaluation and gradient probes
are not charged to it). A training step that produces a non-finite loss or gradient,
or that raises a solver error, is **skipped and counted**, never hidden; forward and
backward solves that stop at their cap are counted too.

Outputs under ``out_dir/<arm>/``: ``checkpoint.pt`` (model, optimiser, RNG, counters
and history; written atomically after every evaluation round, so an interrupted run
loses at most one round, which is at most one epoch) and ``metrics.csv`` (one row per
round). :func:`run_task` also writes ``summary.json`` and ``results.md`` in ``out_dir``.

Checkpoints hold only tensors and plain Python data (dicts, lists, numbers, strings),
so they load with ``torch.load(..., weights_only=True)``: a checkpoint never runs
code. Every file is written to a temporary name and moved into place, so a crash
leaves the previous version. A run refuses a non-empty ``out_dir`` unless it resumes
or is told to overwrite, and ``summary.json`` keeps the arms of earlier runs of the
same configuration.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import os
import pickle
import sys
import time
import zipfile
from pathlib import Path

import torch

from .._result import Result
from ..errors import CheckpointError, ConfigMismatchError, DEQError, OutputPathError
from .arms import DEFAULT_ARMS, LABELS, build_model, reference_layers
from .config import TrainConfig
from .metrics import compare, flat_grad, result_name, saved_tensor_bytes, step_nfe
from .models import n_params

#: Consecutive skipped (non-finite) steps after which an arm is declared diverged.
DIVERGED_AFTER = 25


@dataclasses.dataclass
class ArmState:
    """Counters of one arm's run (saved in the checkpoint)."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    train_time: float = 0.0
    eval_time: float = 0.0
    next_eval_time: float = 0.0
    next_eval_step: int = 0
    nfe_fwd: int = 0
    nfe_bwd_eval: int = 0
    nfe_bwd_vjp: int = 0
    nonfinite_steps: int = 0
    consecutive_nonfinite: int = 0
    fwd_unconverged: int = 0
    fwd_diverged: int = 0
    bwd_unconverged: int = 0
    recon_exceeded: int = 0
    max_recon_error: float = 0.0
    eval_failures: int = 0
    round_loss: float = 0.0
    round_steps: int = 0
    round_count: int = 0
    round_time: float = 0.0
    saved_bytes: int | None = None
    cuda_peak_bytes: int | None = None
    status: str = "running"
    errors: dict = dataclasses.field(default_factory=dict)
    history: list = dataclasses.field(default_factory=list)


class Progress:
    """One status per arm: a tqdm bar over the time budget on a terminal, else a plain
    line every ``every`` seconds (logs and CI keep one line per report)."""

    def __init__(
        self, prefix: str, budget: float | None, stream=None, every: float = 15.0
    ):
        self.prefix, self.budget = prefix, budget
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = 0.5 if self.tty else every
        self.last = -math.inf
        self.bar = None

    def _fraction(self, st: ArmState) -> str:
        # train_time may pass the budget by the last step's time: cap the display.
        if self.budget:
            return f"{min(1.0, st.train_time / self.budget):4.0%} of {self.budget:.0f}s"
        return f"{st.train_time:.0f}s"

    def _status(self, st: ArmState, steps_per_epoch: int, extra: str) -> str:
        return (
            f"step {st.step} ep {st.step / max(1, steps_per_epoch):.2f} "
            f"{_loss_text(st)} skipped {st.nonfinite_steps} {extra}"
        ).rstrip()

    def update(self, st: ArmState, steps_per_epoch: int, force: bool = False, extra=""):
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        status = self._status(st, steps_per_epoch, extra)
        if self.tty:
            self._draw(st, status, force)
            return
        self.stream.write(f"{self.prefix} {self._fraction(st)} {status}\n")
        self.stream.flush()

    def _draw(self, st: ArmState, status: str, force: bool) -> None:
        from tqdm import tqdm

        total = float(self.budget) if self.budget else None
        if self.bar is None:
            self.bar = tqdm(
                total=total,
                desc=self.prefix,
                unit="s",
                file=self.stream,
                bar_format="{desc} {percentage:3.0f}%|{bar:20}| {n:.0f}/{total:.0f}s "
                "{postfix}"
                if total
                else "{desc} {n:.0f}s {postfix}",
            )
        done = min(st.train_time, total) if total else st.train_time
        self.bar.n = done
        self.bar.set_postfix_str(status, refresh=False)
        self.bar.refresh()
        if force:
            self.bar.close()
            self.bar = None


def _loss_text(st: ArmState) -> str:
    """The running training loss of the round, or (right after an evaluation round
    reset it) the last round's; never a bare 'nan'."""
    if st.round_steps:
        return f"loss {st.round_loss / st.round_steps:.3f}"
    if st.round_count:
        return f"loss - ({st.round_count} steps skipped)"
    last = st.history[-1].get("train_loss") if st.history else None
    if last is not None and math.isfinite(last):
        return f"loss {last:.3f}"
    return "loss -"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``: a crash
    leaves the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _save_checkpoint(path: Path, model, opt, st: ArmState, meta: dict) -> None:
    tmp = path.with_suffix(".tmp")
    blob = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "state": dataclasses.asdict(st),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all()
        if torch.cuda.is_available()
        else None,
        "meta": meta,
    }
    try:
        torch.save(blob, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: Keys every training checkpoint has.
CHECKPOINT_KEYS = ("model", "optimizer", "state", "rng", "meta")
#: Configuration keys that may differ on resume (they do not change the results).
RESUME_FREE_KEYS = frozenset({"threads"})


def load_checkpoint(path: str | Path, map_location=None) -> dict:
    """Load a training checkpoint with ``weights_only=True`` (tensors and plain data
    only; a pickled object that would run code is refused, not executed).

    Raises:
        CheckpointError: the file is missing, empty, truncated, not a training
            checkpoint, or holds objects other than tensors and plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"checkpoint {path} is empty (0 bytes), probably from a crash while it "
            "was written; delete it to start this arm again, or rerun with "
            "--overwrite"
        )
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds objects other than tensors and "
            "plain data, which could run code when loaded (nothing was executed). "
            "deq-dynamics never writes such files; do not use it unless you trust "
            f"its origin ({str(exc).splitlines()[0]})"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); delete it "
            "to start this arm again, or rerun with --overwrite"
        ) from exc
    missing = (
        [k for k in CHECKPOINT_KEYS if k not in blob]
        if isinstance(blob, dict)
        else list(CHECKPOINT_KEYS)
    )
    if missing:
        raise CheckpointError(
            f"{path} is not a deq-dynamics training checkpoint (missing "
            f"{', '.join(missing)}); point --out at a run directory written by "
            "'deq-dynamics train'"
        )
    return blob


def config_difference(old, new, prefix: str = "") -> str | None:
    """The first key (dotted path) whose value differs between two configuration
    dicts, ignoring :data:`RESUME_FREE_KEYS`; None when they agree."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if not prefix and key in RESUME_FREE_KEYS:
                continue
            where = f"{prefix}{key}"
            if key not in old or key not in new:
                return where
            diff = config_difference(old[key], new[key], where + ".")
            if diff is not None:
                return diff
        return None
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return None if list(old) == list(new) else prefix.rstrip(".")
    return None if old == new else prefix.rstrip(".")


def _lookup(d, dotted: str):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return "(absent)"
        d = d[part]
    return d


def check_resume(path: Path, meta: dict, saved: dict) -> None:
    """Raise :class:`ConfigMismatchError` naming the first differing key when the
    checkpoint ``saved`` meta was written by another configuration or seed."""
    if saved.get("seed") != meta["seed"]:
        raise ConfigMismatchError(
            f"{path} was written with seed {saved.get('seed')!r}, this run uses "
            f"{meta['seed']!r}; pass the same --seed, use another --out, or drop "
            "--resume"
        )
    key = config_difference(saved.get("config", {}), meta["config"])
    if key is not None:
        raise ConfigMismatchError(
            f"{path} was written with a different configuration: {key} = "
            f"{_lookup(saved.get('config', {}), key)!r} there, "
            f"{_lookup(meta['config'], key)!r} now; rerun with the same options, "
            "use another --out, or drop --resume"
        )


def check_out_dir(out_dir: str | Path, *, resume: bool, overwrite: bool) -> Path:
    """Refuse to train into a non-empty ``out_dir`` unless resuming or told to
    overwrite (a second run used to replace the first run's checkpoints)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputPathError(f"--out {out_dir} is a file; give a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (resume or overwrite):
        raise OutputPathError(
            f"--out {out_dir} is not empty (an earlier run?); pass --resume to "
            "continue it, --overwrite to replace its arms, or another --out"
        )
    return out_dir


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in keys})
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _finite_grads(model) -> bool:
    return all(
        p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters()
    )


def train_step(
    model, task, arm, opt, inp, tgt, cfg: TrainConfig, st: ArmState
) -> float:
    """One optimisation step; updates the counters in ``st``; returns the loss (NaN when
    the step was skipped)."""
    model.train()
    opt.zero_grad(set_to_none=True)
    core = model.core
    loss_value = math.nan
    ok = False
    try:
        out = model(inp)
        loss = task.loss(out, tgt)
        total = loss
        if arm.jac_weight > 0:
            total = loss + arm.jac_weight * core.jacobian_penalty(arm.jac_probes)
        if bool(torch.isfinite(total)):
            total.backward()
            if cfg.grad_clip is not None:
                gn = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                ok = bool(torch.isfinite(gn))
            else:
                ok = _finite_grads(model)
            loss_value = loss.detach().item()
    except DEQError as exc:
        st.errors[type(exc).__name__] = st.errors.get(type(exc).__name__, 0) + 1
    stats = core.last_stats or {}
    fwd, bwd_eval, bwd_vjp = step_nfe(stats)
    if arm.jac_weight > 0:
        # one extra evaluation at z*, K probe VJPs and their double backward
        fwd, bwd_vjp = fwd + 1, bwd_vjp + 2 * arm.jac_probes
    st.nfe_fwd += fwd
    st.nfe_bwd_eval += bwd_eval
    st.nfe_bwd_vjp += bwd_vjp
    if arm.kind == "deq":
        fr, br = stats.get("forward_result"), stats.get("backward_result")
        if fr is Result.max_steps_reached and not arm.fixed_steps:
            st.fwd_unconverged += 1
        if fr in (Result.diverged, Result.nonfinite):
            st.fwd_diverged += 1
        if br is Result.max_steps_reached:
            st.bwd_unconverged += 1
        if br is Result.reconstruction_error_exceeded:
            st.recon_exceeded += 1
        rec = stats.get("reconstruction_error")
        if rec is not None and bool(torch.isfinite(rec).all()):
            st.max_recon_error = max(st.max_recon_error, float(rec.max()))
        if br is Result.nonfinite:
            ok = False
    if ok:
        opt.step()
        st.consecutive_nonfinite = 0
    else:
        opt.zero_grad(set_to_none=True)
        st.nonfinite_steps += 1
        st.consecutive_nonfinite += 1
        loss_value = math.nan
    return loss_value


def gradient_errors(model, task, name: str, cfg: TrainConfig) -> dict:
    """Relative error and cosine of the arm's parameter gradient on the probe batch
    against (i) autograd through the same forward computation and (ii) the IFT gradient
    at a tightly solved equilibrium of the same f (eval mode, no regulariser)."""
    inp, tgt = task.probe()
    core = model.core
    was_training = model.training
    model.eval()
    out: dict = {}
    grads = {}
    try:
        layers = {"arm": core.layer, **reference_layers(name, core.f, cfg.deq)}
        for key, layer in layers.items():
            with core.using(layer):
                model.zero_grad(set_to_none=True)
                try:
                    task.loss(model(inp), tgt).backward()
                    grads[key] = flat_grad(model)
                except DEQError:
                    grads[key] = None
                if key == "equilibrium":
                    s = layer.last_stats
                    out["probe_eq_residual"] = float(s["residual"].max())
                    out["probe_eq_result"] = result_name(s.get("forward_result"))
                    out["probe_eq_bwd_result"] = result_name(s.get("backward_result"))
                    bres = s.get("backward_residual")
                    if bres is not None:
                        out["probe_eq_bwd_residual"] = float(bres.max())
        for key in ("unrolled", "equilibrium"):
            if grads.get("arm") is not None and grads.get(key) is not None:
                c = compare(grads["arm"], grads[key])
                out[f"grad_err_{key}"], out[f"grad_cos_{key}"] = c["rel_err"], c["cos"]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return out


def _evaluate(model, task, st: ArmState) -> dict:
    try:
        return task.evaluate(model)
    except DEQError as exc:
        st.eval_failures += 1
        st.errors["eval:" + type(exc).__name__] = (
            st.errors.get("eval:" + type(exc).__name__, 0) + 1
        )
        return {task.metric: math.nan}


def _round(
    model, task, arm, cfg, st: ArmState, steps_per_epoch: int, probes: bool
) -> dict:
    t0 = time.perf_counter()
    row = {
        "arm": arm.name,
        "step": st.step,
        "epoch": st.step / max(1, steps_per_epoch),
        "train_time_s": st.train_time,
        "nfe_fwd_cum": st.nfe_fwd,
        "nfe_bwd_cum": st.nfe_bwd_eval + st.nfe_bwd_vjp,
        "nfe_total_cum": st.nfe_fwd + st.nfe_bwd_eval + st.nfe_bwd_vjp,
        "train_loss": st.round_loss / st.round_steps if st.round_steps else math.nan,
        "time_per_step_s": st.round_time / st.round_count
        if st.round_count
        else math.nan,
    }
    row.update(_evaluate(model, task, st))
    if probes and arm.kind == "deq":
        row.update(gradient_errors(model, task, arm.name, cfg))
    row.update(
        {
            "nonfinite_steps": st.nonfinite_steps,
            "fwd_unconverged": st.fwd_unconverged,
            "bwd_unconverged": st.bwd_unconverged,
        }
    )
    st.round_loss, st.round_steps, st.round_count, st.round_time = 0.0, 0, 0, 0.0
    st.eval_time += time.perf_counter() - t0
    st.history.append(row)
    return row


def train_arm(
    task,
    cfg: TrainConfig,
    name: str,
    *,
    seed: int,
    out_dir: str | Path,
    resume: bool = False,
    max_steps: int | None = None,
    probes: bool = True,
    progress: bool = True,
    log=None,
) -> dict:
    """Train arm ``name`` on ``task`` within ``cfg.budget_s`` seconds of training time.

    Args:
        seed: seeds initialisation and data order (the same for every arm).
        out_dir: this arm's directory (checkpoint and ``metrics.csv``).
        resume: continue from ``out_dir/checkpoint.pt`` when it exists.
        max_steps: stop after this many steps in total without marking the arm done
            (used to simulate an interruption); None: run to the budget / epochs.
        probes: measure gradient errors of DEQ arms at every round.
        progress: print a progress line to stderr.
        log: callable for one-line messages (default: print to stderr).
    Returns:
        the arm's summary (see :func:`summarise`).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "checkpoint.pt"
    dev = task.device
    torch.manual_seed(seed)
    model, arm = build_model(task, cfg, name)
    model.to(dev)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    st = ArmState()
    meta = {"arm": name, "task": task.name, "seed": seed, "config": cfg.to_dict()}
    if resume and ckpt.is_file():
        blob = load_checkpoint(ckpt, map_location=dev)
        check_resume(ckpt, meta, blob["meta"])
        try:
            model.load_state_dict(blob["model"])
            opt.load_state_dict(blob["optimizer"])
            st = ArmState(**blob["state"])
        except (RuntimeError, TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"{ckpt} does not fit this model ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0]}); use another --out or drop --resume"
            ) from exc
        torch.set_rng_state(blob["rng"])
        if blob.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(blob["cuda_rng"])
        log(f"[{task.name} {name}] resumed at step {st.step} ({st.status})")
    spe = task.steps_per_epoch()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    if st.saved_bytes is None:
        st.saved_bytes = _measure_saved(model, task, arm, seed)
    if not st.history:
        _round(model, task, arm, cfg, st, spe, probes)
        _bump_schedule(cfg, st)
    bar = Progress(f"[{task.name} {name}]", cfg.budget_s) if progress else None
    stopped_early = False
    while st.status == "running":
        if st.epoch >= cfg.max_epochs:
            st.status = "done"
            break
        if st.step_in_epoch >= spe:
            st.epoch, st.step_in_epoch = st.epoch + 1, 0
            continue
        if cfg.budget_s is not None and st.train_time >= cfg.budget_s:
            st.status = "done"
            break
        if max_steps is not None and st.step >= max_steps:
            stopped_early = True
            break
        inp, tgt = task.batch(st.epoch, st.step_in_epoch, seed)
        t0 = time.perf_counter()
        loss = train_step(model, task, arm, opt, inp, tgt, cfg, st)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        dt = time.perf_counter() - t0
        st.train_time += dt
        st.round_time += dt
        st.step += 1
        st.step_in_epoch += 1
        st.round_count += 1
        if math.isfinite(loss):
            st.round_loss += loss
            st.round_steps += 1
        if st.consecutive_nonfinite >= DIVERGED_AFTER:
            st.status = "diverged"
            log(
                f"[{task.name} {name}] {DIVERGED_AFTER} consecutive non-finite steps: "
                "declared diverged"
            )
            break
        if bar:
            bar.update(st, spe)
        if _due(cfg, st):
            _round(model, task, arm, cfg, st, spe, probes)
            _bump_schedule(cfg, st)
            _write_csv(out_dir / "metrics.csv", st.history)
            _save_checkpoint(ckpt, model, opt, st, meta)
    if st.history[-1]["step"] != st.step:
        _round(model, task, arm, cfg, st, spe, probes)
    if dev.type == "cuda":
        st.cuda_peak_bytes = int(torch.cuda.max_memory_allocated(dev))
    _write_csv(out_dir / "metrics.csv", st.history)
    _save_checkpoint(ckpt, model, opt, st, meta)
    if bar:
        last = st.history[-1]
        bar.update(
            st,
            spe,
            force=True,
            extra=f"{task.metric} {last.get(task.metric):.4f}",
        )
    summary = summarise(arm, st, n_params(model), task, spe)
    summary["stopped_early"] = stopped_early
    return summary


def _due(cfg: TrainConfig, st: ArmState) -> bool:
    if cfg.eval_every_steps is not None and st.step >= st.next_eval_step:
        return True
    return cfg.eval_every_s is not None and st.train_time >= st.next_eval_time


def _bump_schedule(cfg: TrainConfig, st: ArmState) -> None:
    if cfg.eval_every_steps is not None:
        st.next_eval_step = st.step + cfg.eval_every_steps
    if cfg.eval_every_s is not None:
        st.next_eval_time = st.train_time + cfg.eval_every_s


def _measure_saved(model, task, arm, seed: int) -> int:
    """Bytes saved for backward by one training forward (on a copy: no side effects)."""
    clone = copy.deepcopy(model)
    clone.train()
    inp, tgt = task.batch(0, 0, seed)

    def run():
        loss = task.loss(clone(inp), tgt)
        if arm.jac_weight > 0:
            loss = loss + arm.jac_weight * clone.core.jacobian_penalty(arm.jac_probes)
        return loss

    with torch.random.fork_rng(devices=[]):
        try:
            return saved_tensor_bytes(clone, run)
        except DEQError:
            return -1


def summarise(arm, st: ArmState, params: int, task, spe: int) -> dict:
    """The per-arm summary row (final metric, costs, failures)."""
    last = st.history[-1] if st.history else {}
    steps = max(1, st.step)
    ge = [r for r in st.history if "grad_err_unrolled" in r]
    return {
        "arm": arm.name,
        "label": arm.label,
        "params": params,
        "status": st.status,
        "steps": st.step,
        "epochs": st.step / max(1, spe),
        "train_time_s": st.train_time,
        "eval_time_s": st.eval_time,
        "time_per_step_s": st.train_time / steps,
        task.metric: last.get(task.metric, math.nan),
        "best_" + task.metric: (max if task.higher_is_better else min)(
            [
                r[task.metric]
                for r in st.history
                if math.isfinite(r.get(task.metric, math.nan))
            ],
            default=math.nan,
        ),
        "nfe_fwd_per_step": st.nfe_fwd / steps,
        "nfe_bwd_eval_per_step": st.nfe_bwd_eval / steps,
        "nfe_bwd_vjp_per_step": st.nfe_bwd_vjp / steps,
        "saved_mb": (st.saved_bytes or 0) / 2**20,
        "cuda_peak_mb": None
        if st.cuda_peak_bytes is None
        else st.cuda_peak_bytes / 2**20,
        "nonfinite_steps": st.nonfinite_steps,
        "fwd_unconverged": st.fwd_unconverged,
        "fwd_diverged": st.fwd_diverged,
        "bwd_unconverged": st.bwd_unconverged,
        "recon_exceeded": st.recon_exceeded,
        "max_recon_error": st.max_recon_error,
        "eval_failures": st.eval_failures,
        "errors": dict(st.errors),
        "final_grad_err_unrolled": ge[-1].get("grad_err_unrolled") if ge else None,
        "final_grad_err_equilibrium": ge[-1].get("grad_err_equilibrium")
        if ge
        else None,
        "history": st.history,
    }


def run_task(
    task,
    cfg: TrainConfig,
    *,
    arms=DEFAULT_ARMS,
    seed: int = 0,
    out_dir: str | Path = "runs/images",
    resume: bool = False,
    overwrite: bool = False,
    probes: bool = True,
    progress: bool = True,
    log=None,
) -> dict:
    """Train every arm of ``arms`` on ``task``; write ``summary.json`` and
    ``results.md`` in ``out_dir``; return the summary.

    A non-empty ``out_dir`` is refused (:class:`OutputPathError`) unless ``resume``
    (continue from its checkpoints) or ``overwrite`` (retrain the arms named now).
    Arms already in ``out_dir/summary.json`` from the same task, seed and
    configuration, and not trained now, are kept in the summary and the table.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    out_dir = check_out_dir(out_dir, resume=resume, overwrite=overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    log(f"[{task.name}] data: {task.data_note}")
    results = {}
    for name in arms:
        results[name] = train_arm(
            task,
            cfg,
            name,
            seed=seed,
            out_dir=out_dir / name,
            resume=resume,
            probes=probes,
            progress=progress,
            log=log,
        )
        r = results[name]
        log(
            f"[{task.name} {name}] {r['status']}: {task.metric} "
            f"{r[task.metric]:.4f} after "
            f"{r['steps']} steps, {r['train_time_s']:.0f}s training, "
            f"{r['nonfinite_steps']} skipped steps"
        )
    summary = {
        "task": task.name,
        "scale": cfg.scale,
        "seed": seed,
        "metric": task.metric,
        "metric_label": task.metric_label,
        "higher_is_better": task.higher_is_better,
        "data": task.data_note,
        "device": str(task.device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "config": cfg.to_dict(),
        "wall_s": time.perf_counter() - t0,
        "arms": results,
    }
    summary = merge_summary(out_dir / "summary.json", summary, log)
    atomic_write_text(
        out_dir / "summary.json", json.dumps(summary, indent=1, default=_json_default)
    )
    atomic_write_text(out_dir / "results.md", results_table(summary) + "\n")
    return summary


def merge_summary(path: Path, summary: dict, log=None) -> dict:
    """``summary`` with the arms of the earlier ``path`` that were not trained now,
    when that summary is of the same task, seed and configuration (``threads``
    aside); otherwise ``summary`` unchanged (and a log line saying what was
    dropped)."""
    if not path.is_file():
        return summary
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return summary
    if not isinstance(old, dict) or not isinstance(old.get("arms"), dict):
        return summary
    kept = {k: v for k, v in old["arms"].items() if k not in summary["arms"]}
    if not kept:
        return summary
    same = (
        old.get("task") == summary["task"]
        and old.get("seed") == summary["seed"]
        and config_difference(old.get("config", {}), summary["config"]) is None
    )
    if not same:
        if log:
            log(
                f"{path}: arms {', '.join(kept)} were trained with another task, seed "
                "or configuration; they are not carried into the new summary"
            )
        return summary
    arms = {k: v for k, v in old["arms"].items() if k in kept}
    arms.update(summary["arms"])
    return {**summary, "arms": arms}


def _json_default(o):
    if isinstance(o, Result):
        return o.value
    if isinstance(o, torch.Tensor):
        return o.tolist()
    return str(o)


def reference_converged(row: dict, tol: float) -> bool:
    """True when a round's tight reference solve (forward and adjoint) converged."""
    if "probe_eq_residual" not in row:
        return True
    return (row.get("probe_eq_residual") or 0.0) <= tol and row.get(
        "probe_eq_bwd_result"
    ) in (None, "successful")


def results_table(summary: dict) -> str:
    """Markdown table arm x metric of a :func:`run_task` summary."""
    m = summary["metric"]
    mlabel = "test acc" if m == "test_acc" else "test bpc"
    head = (
        f"| arm | params | {mlabel} (final) | {mlabel} (best) | steps | "
        "time/step (s) | NFE fwd | NFE bwd (f evals + VJPs) | saved for backward (MB)"
        " | non-finite steps | unconverged fwd / bwd | grad err vs unrolled | "
        "grad err vs equilibrium |"
    )
    rows = [head, "|" + "---|" * 13]
    for name, r in summary["arms"].items():

        def g(key):
            v = r.get(key)
            return (
                "–"
                if v is None or (isinstance(v, float) and math.isnan(v))
                else f"{v:.2e}"
            )

        mem = f"{r['saved_mb']:.1f}"
        if r.get("cuda_peak_mb") is not None:
            mem += f" (CUDA peak {r['cuda_peak_mb']:.0f})"
        bwd = r["nfe_bwd_eval_per_step"] + r["nfe_bwd_vjp_per_step"]
        bwd_s = (
            f"{bwd:.1f} ({r['nfe_bwd_eval_per_step']:.1f} + "
            f"{r['nfe_bwd_vjp_per_step']:.1f})"
        )
        fmt = "{:.4f}" if m == "test_acc" else "{:.3f}"
        status = "" if r["status"] == "done" else f" ({r['status']})"
        rows.append(
            f"| {LABELS.get(name, name)}{status} | {r['params']} | "
            f"{fmt.format(r[m])} | {fmt.format(r['best_' + m])} | {r['steps']} | "
            f"{r['time_per_step_s']:.3f} | {r['nfe_fwd_per_step']:.1f} | {bwd_s} | "
            f"{mem} | "
            f"{r['nonfinite_steps']} | "
            f"{r['fwd_unconverged']} / {r['bwd_unconverged']} | "
            f"{g('final_grad_err_unrolled')} | {g('final_grad_err_equilibrium')} |"
        )
    notes = []
    tol = summary["config"]["deq"]["probe_tol"]
    unconv = [
        (name, r["history"][-1])
        for name, r in summary["arms"].items()
        if r["history"] and not reference_converged(r["history"][-1], tol)
    ]
    if unconv:
        worst = max(h.get("probe_eq_residual") or 0.0 for _, h in unconv)
        notes.append(
            "Gradient errors are relative (||g - g_ref|| / ||g_ref||) on a fixed probe "
            "batch at the end of training. For "
            f"{', '.join(n for n, _ in unconv)} the tightly solved reference was not "
            f"reached (forward relative residual up to {worst:.1e}, or the adjoint "
            "solve stopped at its step cap), so 'vs equilibrium' there compares with "
            "an unconverged reference, not with a true equilibrium gradient."
        )
    return "\n".join(rows + ([""] + notes if notes else []))


def memory_sweep(task, cfg: TrainConfig, steps=(1, 2, 4, 8, 16), seed: int = 0) -> dict:
    """Bytes saved for backward by one training forward against the number of solver
    steps N (spec E-MEM on the task's own model and first batch).

    Series: ``revdeq`` (reversible exact, N steps); ``unrolled_reversible`` (the same
    iteration differentiated by storing it); ``tied`` (explicit weight-tied, 1 + 2N
    evaluations); ``deq_ift`` (Anderson run for exactly N steps, IFT backward).
    """
    from .arms import unrolled_layer

    out: dict = {
        "N": list(steps),
        "revdeq": [],
        "unrolled_reversible": [],
        "tied": [],
        "deq_ift": [],
    }
    for n in steps:
        deq = dataclasses.replace(cfg.deq, rev_steps=n, fwd_tol=0.0, fwd_max_steps=n)
        c = cfg.replace(deq=deq)
        for name in ("revdeq", "tied", "deq_ift"):
            torch.manual_seed(seed)
            model, arm = build_model(task, c, name)
            model.to(task.device)
            out[name].append(_measure_saved(model, task, arm, seed))
            if name == "revdeq":
                layer = unrolled_layer(name, model.core.f, deq)
                with model.core.using(layer):
                    out["unrolled_reversible"].append(
                        _measure_saved(model, task, arm, seed)
                    )
    return out

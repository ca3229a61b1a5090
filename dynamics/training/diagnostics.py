"""Gradient diagnostics of the built-in DEQs (``deq-dynamics diagnose``).

:func:`build` makes the Fashion-MNIST image DEQ or the character-LM DEQ at
diagnostic scale (small enough that the dense float64 IFT reference, one VJP per
state coordinate, runs on a CPU in seconds); :func:`probe_diagnosis` runs
:func:`dynamics.diagnose` on a fixed probe batch with the task's own loss
(cross-entropy through the model's head); :func:`along_training` trains the model
with Adam and the iterative IFT gradient and diagnoses every ``every`` steps (the
paper's appendix A.5 measurement repeated along training, at CPU scale).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..diagnosis import Diagnosis, FixedPointNotFoundError, diagnose
from ..errors import DEQError, InvalidInputError
from ..gradients import ImplicitIFT
from ..layer import DEQLayer
from ..solvers import Anderson
from .config import get_config
from .models import EquilibriumCore
from .tasks import make_task

#: Model sizes of the diagnostic, per task and mode. Images: 8 channels at 7x7
#: (stride 4) give a 392-dimensional state per example, so the dense IFT needs 392
#: VJPs; text: embedding 16 over 16 characters, a 256-dimensional state.
SIZES = {
    ("images", False): dict(channels=8, hidden=16, stride=4, batch_size=64),
    ("images", True): dict(channels=4, hidden=8, stride=4, batch_size=32),
    ("text", False): dict(embed=16, heads=2, mlp_hidden=32, context=16, batch_size=32),
    ("text", True): dict(embed=8, heads=2, mlp_hidden=16, context=8, batch_size=16),
}

#: Forward solve and gradient the model is trained with (the classical DEQ arm):
#: Anderson to relative residual 1e-4 and the IFT adjoint at 1e-6.
TRAIN_TOL, TRAIN_MAX_STEPS = 1e-4, 40


class TanhConvBlock(nn.Module):
    """``f(z, x) = tanh(conv2(relu(conv1 z)) + x)``: an image DEQ block whose fixed
    point Anderson solves to float64 precision (measured at initialisation and along
    training). Each kernel starts with Frobenius norm ``sqrt(scale)``; the operator
    norm of a 3 x 3 convolution is at most 3 times its kernel's Frobenius norm, so
    the Jacobian norm starts below ``9 scale`` (in practice far below 1).

    The training experiments' :class:`~.models.ConvBlock` normalises its output
    (GroupNorm after the residual sum), and at diagnostic scale no solver brings
    its residual below ~2e-2 (Anderson, relaxed, Picard; measured), so no IFT
    gradient exists to compare with there; ``--block conv`` diagnoses it anyway and
    reports ``not-converged``.
    """

    def __init__(self, channels: int, hidden: int, scale: float = 1.0):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(hidden, channels, 3, padding=1)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                w = conv.weight
                w.mul_(math.sqrt(scale) / torch.linalg.vector_norm(w))

    def forward(self, z, x):
        dt = self.conv1.weight.dtype
        out = torch.tanh(self.conv2(F.relu(self.conv1(z.to(dt)))) + x.to(dt))
        return out.to(z.dtype)


class TanhTextBlock(nn.Module):
    """``f(z, x) = tanh(W2 cummean_t(relu(W1 z)) + x)``: a causal character-LM block
    (each position mixes the running mean of the earlier positions' features) whose
    fixed point Anderson solves to float64 precision (measured). Each weight starts
    with Frobenius norm ``sqrt(scale)``. The training experiments'
    :class:`~.models.TransformerBlock` (residual attention and MLP) has no tight fixed
    point at diagnostic scale; ``--block conv`` diagnoses it anyway."""

    def __init__(self, embed: int, hidden: int, scale: float = 1.0):
        super().__init__()
        self.w1 = nn.Linear(embed, hidden, bias=False)
        self.w2 = nn.Linear(hidden, embed)
        with torch.no_grad():
            for lin in (self.w1, self.w2):
                lin.weight.mul_(math.sqrt(scale) / torch.linalg.vector_norm(lin.weight))

    def forward(self, z, x):
        dt = self.w1.weight.dtype
        h = F.relu(self.w1(z.to(dt)))
        steps = torch.arange(1, h.shape[1] + 1, dtype=dt, device=h.device)
        mixed = h.cumsum(1) / steps[None, :, None]
        return torch.tanh(self.w2(mixed) + x.to(dt)).to(z.dtype)


@dataclasses.dataclass
class DiagnosticModel:
    """A built-in task, its model and a fixed probe batch."""

    task: object
    model: torch.nn.Module
    probe: tuple[torch.Tensor, torch.Tensor]
    note: str


def build(
    task_name: str,
    *,
    quick: bool = False,
    seed: int = 0,
    source: str = "auto",
    data_dir=None,
    text_file=None,
    probe_batch: int = 16,
    block: str = "tanh",
) -> DiagnosticModel:
    """The built-in DEQ of ``task_name`` (``images`` or ``text``) at diagnostic scale.

    ``block``: ``tanh`` (default: :class:`TanhConvBlock` for images,
    :class:`TanhTextBlock` for text) or ``conv`` (the training experiments' own block,
    GroupNorm conv or transformer; see those classes for why it is not the default)."""
    if block not in ("tanh", "conv"):
        raise InvalidInputError(f"block must be 'tanh' or 'conv'; got {block!r}")
    if task_name not in ("images", "text"):
        raise InvalidInputError(f"task must be 'images' or 'text'; got {task_name!r}")
    if not (isinstance(probe_batch, int) and probe_batch >= 1):
        raise InvalidInputError(
            f"probe batch must be an integer >= 1; got {probe_batch}"
        )
    sizes = dict(SIZES[(task_name, quick)])
    cfg = dataclasses.replace(
        get_config(task_name, "cpu"),
        n_train=2000 if quick else 10000,
        n_test=max(probe_batch, 64),
        probe_batch=probe_batch,
        **sizes,
    )
    torch.manual_seed(seed)
    task = make_task(cfg, "cpu", source, seed, data_dir=data_dir, text_file=text_file)

    def make_layer(f):
        return DEQLayer(
            f,
            Anderson(),
            ImplicitIFT(tol=1e-6, max_steps=60),
            tol=TRAIN_TOL,
            max_steps=TRAIN_MAX_STEPS,
            throw=False,
        )

    if task_name == "images" and block == "tanh":
        f = TanhConvBlock(cfg.channels, cfg.hidden)
    elif block == "tanh":
        f = TanhTextBlock(cfg.embed, cfg.mlp_hidden)
    else:
        f = task.make_block()
    model = task.make_model(EquilibriumCore(f, make_layer))
    note = f"{task.data_note}; block {type(f).__name__}; model sizes {sizes}"
    return DiagnosticModel(task, model, task.probe(), note)


def _injection_and_loss(
    dm: DiagnosticModel,
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """The DEQ's input x for the probe batch (eval mode, detached) and the task loss
    as a function of z* through float64 copies of the layers after the core."""
    model, (inp, tgt) = dm.model, dm.probe
    with torch.no_grad():
        if hasattr(model, "encoder"):  # ImageClassifier
            x = model.encoder(inp)
            pool = model.pool
            head = copy.deepcopy(model.head).double()

            def loss(z):
                return F.cross_entropy(head(pool(z).flatten(1)), tgt)

        else:  # CharLM
            t = inp.shape[1]
            x = model.tok(inp) + model.pos(torch.arange(t, device=inp.device))
            ln = copy.deepcopy(model.ln).double()
            head = copy.deepcopy(model.head).double()

            def loss(z):
                logits = head(ln(z))
                return F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1)
                )

    return x.detach(), loss


def probe_diagnosis(dm: DiagnosticModel, **kwargs) -> Diagnosis:
    """:func:`diagnose` of the model's DEQ on the probe batch with the task loss;
    ``kwargs`` go to :func:`diagnose` (methods, tol, allow_unconverged, ...)."""
    was = dm.model.training
    dm.model.eval()
    try:
        x, loss = _injection_and_loss(dm)
        return diagnose(dm.model.core.layer, x, loss=loss, **kwargs)
    finally:
        dm.model.train(was)


def along_training(
    dm: DiagnosticModel,
    *,
    steps: int,
    every: int,
    lr: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    **kwargs,
) -> list[dict]:
    """Train ``dm.model`` for ``steps`` Adam steps and diagnose at step 0 and every
    ``every`` steps (and at the end). Each record: step, mean training loss since the
    last record, seconds, and the diagnosis (``to_dict``), or ``error`` when the
    shared fixed point could not be solved (kept: a failure is a measurement)."""
    if steps < 0 or every < 1:
        raise InvalidInputError(f"need steps >= 0 and every >= 1; got {steps}, {every}")
    kwargs.setdefault("allow_unconverged", True)
    task, model = dm.task, dm.model
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    spe = task.steps_per_epoch()
    records, losses, t0 = [], [], time.perf_counter()

    def record(step):
        try:
            diag = probe_diagnosis(dm, **kwargs).to_dict()
            err = None
        except (DEQError, FixedPointNotFoundError) as exc:
            diag, err = None, f"{type(exc).__name__}: {exc}"
        mean_loss = sum(losses) / len(losses) if losses else math.nan
        records.append(
            {
                "step": step,
                "train_loss": mean_loss,
                "seconds": time.perf_counter() - t0,
                "diagnosis": diag,
                "error": err,
            }
        )
        losses.clear()
        if log is not None:
            if diag is None:
                log(f"step {step}: {err}")
            else:
                cos = ", ".join(
                    f"{m['label']} {m['cosine']:.3f}" for m in diag["methods"]
                )
                log(f"step {step}: loss {mean_loss:.3f}; cosines {cos}")

    record(0)
    model.train()
    for step in range(1, steps + 1):
        inp, tgt = task.batch((step - 1) // spe, (step - 1) % spe, seed)
        opt.zero_grad(set_to_none=True)
        try:
            loss = task.loss(model(inp), tgt)
            loss.backward()
            if all(
                p.grad is None or bool(torch.isfinite(p.grad).all())
                for p in model.parameters()
            ):
                opt.step()
            losses.append(loss.item())
        except DEQError:  # a failed solve skips the step; the record keeps going
            opt.zero_grad(set_to_none=True)
        if step % every == 0 or step == steps:
            record(step)
    return records

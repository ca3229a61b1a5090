"""Configurations of the training experiments: one per (task, scale).

``cpu`` is the default: each task (all arms) is meant to finish in about 15 minutes on
2 CPU cores. ``full`` is meant for one GPU (docs/theory/reversible.md scaled to the
offline datasets:
full Fashion-MNIST, the whole King James text); it is written down, not tuned.

Arm hyperparameters follow docs/theory/reversible.md: RevDEQ beta 0.8 (images) / 0.5
(text) with
few fixed steps; Anderson (m = 1, beta = 0.8) to a relative tolerance of 1e-3 with a
step cap, IFT backward by the same solver; Hutchinson Jacobian regularisation with
weight 1 and one probe; phantom damping 0.5.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from ..errors import InvalidInputError, reject_unknown

TASKS = ("images", "text")
SCALES = ("cpu", "full")


@dataclasses.dataclass(frozen=True)
class DEQSettings:
    """Solver settings shared by the DEQ arms of one configuration.

    Attributes:
        rev_beta, rev_steps: RevDEQ relaxation and number of reversible steps N
            (fixed-step: forward NFE 1 + 2N).
        anderson_m, anderson_beta: Anderson history (m + 1) and mixing.
        fwd_tol, fwd_max_steps: Anderson forward tolerance and cap.
        bwd_tol, bwd_max_steps: IFT adjoint-solve tolerance and cap.
        jac_weight, jac_probes: Jacobian regulariser gamma and Hutchinson probes.
        phantom_k, phantom_lam: phantom unroll steps and damping.
        probe_tol, probe_max_steps: the tightly solved reference equilibrium and adjoint
            used to measure gradient errors (not used in training).
        baseline_state_dtype: "float32" or "float64" state for the Anderson arms
            (RevDEQ always keeps a float64 state, docs/theory/reversible.md).
    """

    rev_beta: float
    rev_steps: int
    anderson_m: int = 1
    anderson_beta: float = 0.8
    fwd_tol: float = 1e-3
    fwd_max_steps: int = 8
    bwd_tol: float = 1e-3
    bwd_max_steps: int = 8
    jac_weight: float = 1.0
    jac_probes: int = 1
    phantom_k: int = 5
    phantom_lam: float = 0.5
    probe_tol: float = 1e-6
    probe_max_steps: int = 100
    baseline_state_dtype: str = "float32"

    @property
    def explicit_depth(self) -> int:
        """Block evaluations of the explicit arms: RevDEQ's forward NFE, 1 + 2N."""
        return 1 + 2 * self.rev_steps


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """What defines a run of one task at one scale, common to both tasks (the model
    sizes are in :class:`ImageConfig` / :class:`TextConfig`).

    ``n_train``/``n_test`` are subsample sizes (None: everything); for text they count
    sequences of ``context`` characters.
    """

    task: str
    scale: str
    deq: DEQSettings
    batch_size: int
    lr: float
    weight_decay: float
    max_epochs: int
    budget_s: float | None  # training wall-clock per arm (None: no limit)
    eval_every_s: float | None  # evaluate after this much training time ...
    eval_every_steps: int | None  # ... or after this many steps
    n_train: int | None
    n_test: int | None
    probe_batch: int = 8
    grad_clip: float | None = None
    untied_ratio: tuple[float, float] = (0.85, 1.15)
    threads: int | None = None

    #: The task this class configures (None: the common part only).
    TASK: ClassVar[str | None] = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise InvalidInputError(
                f"unknown task {self.task!r}; choose one of {TASKS}"
            )
        if self.TASK is not None and self.task != self.TASK:
            raise InvalidInputError(
                f"{type(self).__name__} configures task {self.TASK!r}, not "
                f"{self.task!r}; use get_config({self.task!r}, scale)"
            )
        if self.scale not in SCALES:
            raise InvalidInputError(
                f"unknown scale {self.scale!r}; choose one of {SCALES}"
            )
        if self.eval_every_s is None and self.eval_every_steps is None:
            raise InvalidInputError("set eval_every_s or eval_every_steps")
        if isinstance(self.max_epochs, bool) or not (
            isinstance(self.max_epochs, int) and self.max_epochs >= 1
        ):
            raise InvalidInputError(
                f"max_epochs must be an integer >= 1; got {self.max_epochs!r} (a run "
                "of 0 epochs would train nothing and report done)"
            )
        if self.budget_s is not None and not (
            isinstance(self.budget_s, (int, float))
            and not isinstance(self.budget_s, bool)
            and math.isfinite(self.budget_s)
            and self.budget_s > 0
        ):
            raise InvalidInputError(
                f"budget_s must be a positive number of seconds or None (no limit); "
                f"got {self.budget_s!r}"
            )

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ImageConfig(TrainConfig):
    """Image classification: conv block of ``channels`` C and ``hidden`` H, encoder
    ``stride``."""

    TASK: ClassVar[str | None] = "images"
    channels: int = 32
    hidden: int = 32
    stride: int = 2


@dataclasses.dataclass(frozen=True)
class TextConfig(TrainConfig):
    """Character LM: embedding ``embed`` E, ``heads``, MLP width ``mlp_hidden`` M,
    ``context`` T characters."""

    TASK: ClassVar[str | None] = "text"
    embed: int = 64
    heads: int = 4
    mlp_hidden: int = 128
    context: int = 64


CONFIGS: dict[tuple[str, str], TrainConfig] = {
    ("images", "cpu"): ImageConfig(
        task="images",
        scale="cpu",
        deq=DEQSettings(rev_beta=0.8, rev_steps=2, phantom_k=5),
        batch_size=64,
        lr=1e-3,
        weight_decay=1e-4,
        max_epochs=5,
        budget_s=70.0,
        eval_every_s=35.0,
        eval_every_steps=None,
        n_train=10000,
        n_test=2000,
        channels=32,
        hidden=32,
        stride=2,
    ),
    ("images", "full"): ImageConfig(
        task="images",
        scale="full",
        deq=DEQSettings(
            rev_beta=0.8,
            rev_steps=4,
            fwd_max_steps=30,
            bwd_tol=1e-4,
            bwd_max_steps=30,
            phantom_k=10,
            probe_max_steps=200,
        ),
        batch_size=128,
        lr=1e-3,
        weight_decay=1e-4,
        max_epochs=30,
        budget_s=3600.0,
        eval_every_s=None,
        eval_every_steps=469,
        n_train=None,
        n_test=None,
        probe_batch=32,
        channels=64,
        hidden=128,
        stride=1,
    ),
    ("text", "cpu"): TextConfig(
        task="text",
        scale="cpu",
        deq=DEQSettings(rev_beta=0.5, rev_steps=2, phantom_k=5),
        batch_size=32,
        lr=1e-3,
        weight_decay=1e-4,
        max_epochs=1,
        budget_s=75.0,
        eval_every_s=25.0,
        eval_every_steps=None,
        n_train=None,
        n_test=256,
        grad_clip=1.0,
        embed=64,
        heads=4,
        mlp_hidden=128,
        context=64,
    ),
    ("text", "full"): TextConfig(
        task="text",
        scale="full",
        deq=DEQSettings(
            rev_beta=0.5,
            rev_steps=4,
            fwd_max_steps=30,
            bwd_tol=1e-4,
            bwd_max_steps=30,
            phantom_k=10,
            probe_max_steps=200,
        ),
        batch_size=64,
        lr=3e-4,
        weight_decay=1e-4,
        max_epochs=10,
        budget_s=3600.0,
        eval_every_s=None,
        eval_every_steps=500,
        n_train=None,
        n_test=None,
        probe_batch=16,
        grad_clip=1.0,
        embed=256,
        heads=8,
        mlp_hidden=1024,
        context=256,
    ),
}


def get_config(task: str, scale: str = "cpu") -> TrainConfig:
    """The configuration of ``task`` at ``scale`` (see :data:`CONFIGS`)."""
    try:
        return CONFIGS[(task, scale)]
    except KeyError:
        raise InvalidInputError(
            f"no configuration for task {task!r} at scale "
            f"{scale!r}; tasks {TASKS}, scales {SCALES}"
        ) from None


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named set of changes applied on top of a (task, scale) configuration, with the
    data source and memory sweep that go with it.

    Attributes:
        name: the preset's name (``default``, ``quick``).
        changes: fields of :class:`TrainConfig` to replace, for every task.
        task_changes: model fields to replace, per task.
        deq_changes: fields of :class:`DEQSettings` to replace.
        data: the data source per task when the user asked for ``auto`` (absent: the
            loader's own fallbacks).
        memory_steps: solver steps of the memory-vs-N sweep (None: the caller's).
        threads: torch threads when the user gave none (None: torch's choice).
    """

    name: str
    changes: dict = dataclasses.field(default_factory=dict)
    task_changes: dict = dataclasses.field(default_factory=dict)
    deq_changes: dict = dataclasses.field(default_factory=dict)
    data: dict = dataclasses.field(default_factory=dict)
    memory_steps: tuple[int, ...] | None = None
    threads: int | None = None

    def apply(self, cfg: TrainConfig, threads: int | None = None) -> TrainConfig:
        """``cfg`` with this preset's changes (``threads``: the user's choice)."""
        return cfg.replace(**self.changes_for(cfg, threads))

    def changes_for(self, cfg: TrainConfig, threads: int | None = None) -> dict:
        """The field changes this preset makes to ``cfg``."""
        if not (self.changes or self.task_changes or self.deq_changes):
            return {}
        out = {**self.changes, **self.task_changes.get(cfg.task, {})}
        if self.deq_changes:
            out["deq"] = dataclasses.replace(cfg.deq, **self.deq_changes)
        out["threads"] = threads or self.threads
        return out


PRESETS: dict[str, Preset] = {
    "default": Preset("default"),
    # CI smoke run: generated / built-in data and a small model, 3 s per arm; a short
    # reference solve and one thread keep it to seconds.
    "quick": Preset(
        "quick",
        changes=dict(
            budget_s=3.0,
            eval_every_s=1.5,
            eval_every_steps=None,
            max_epochs=1000,
            n_train=None,
            n_test=64,
            batch_size=32,
            probe_batch=4,
        ),
        task_changes={
            "images": dict(channels=16, hidden=16),
            "text": dict(embed=32, heads=2, mlp_hidden=64, context=32),
        },
        deq_changes=dict(probe_max_steps=20),
        data={"images": "synthetic", "text": "builtin"},
        memory_steps=(1, 2),
        threads=1,
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise reject_unknown("preset", name, tuple(PRESETS))
    return PRESETS[name]


def quick_config(task: str, scale: str = "cpu") -> TrainConfig:
    """The configuration of ``task`` at ``scale`` with the ``quick`` preset applied."""
    return PRESETS["quick"].apply(get_config(task, scale))

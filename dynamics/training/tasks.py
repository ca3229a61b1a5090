"""The two tasks as objects the trainer can drive: data batches, loss and test metric.

A task owns its data (already loaded), builds the blocks ``f`` and the model around a
core, yields deterministic training batches (the order depends only on the seed and the
epoch, so a resumed run sees exactly the batches an uninterrupted one would), and
evaluates the test metric.
"""

from __future__ import annotations

import abc
import math

import numpy as np
import torch
from torch.nn import functional as F

from .config import TrainConfig
from .data_images import ImageData
from .data_text import TextData
from .models import CharLM, ConvBlock, ImageClassifier, TransformerBlock


class AbstractTask(abc.ABC):
    """Subclass contract: ``name``, ``metric`` (key of :meth:`evaluate`),
    ``higher_is_better``, and the abstract methods below."""

    name: str
    metric: str
    metric_label: str
    higher_is_better: bool

    def __init__(self, cfg: TrainConfig, device: torch.device | str = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)

    @abc.abstractmethod
    def make_block(self, width: float = 1.0) -> torch.nn.Module:
        """A block ``f(z, x)``; ``width`` < 1 narrows its inner layers (untied arm)."""

    @abc.abstractmethod
    def make_model(self, core) -> torch.nn.Module:
        """The model around ``core``."""

    @abc.abstractmethod
    def steps_per_epoch(self) -> int:
        """Number of training batches in one pass over the training data."""

    @abc.abstractmethod
    def batch(
        self, epoch: int, index: int, seed: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training batch ``index`` of ``epoch`` (deterministic in seed and epoch)."""

    @abc.abstractmethod
    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean training loss (nats)."""

    @abc.abstractmethod
    def evaluate(self, model) -> dict:
        """Test metrics (``self.metric`` among them)."""

    @abc.abstractmethod
    def probe(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed small batch for gradient-error measurements."""

    @property
    @abc.abstractmethod
    def data_note(self) -> str:
        """Which data set was used (and any fallback)."""

    def _order(self, n: int, epoch: int, seed: int) -> np.ndarray:
        return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)


class ImageTask(AbstractTask):
    """Image classification (Fashion-MNIST or a fallback); metric: test accuracy."""

    name = "images"
    metric = "test_acc"
    metric_label = "test accuracy"
    higher_is_better = True

    def __init__(self, cfg: TrainConfig, data: ImageData, device="cpu"):
        super().__init__(cfg, device)
        self.data = data
        mean = float(data.x_train.mean())
        std = float(data.x_train.std()) or 1.0
        fdt = torch.get_default_dtype()  # the models' dtype
        self.x_train = torch.as_tensor(
            (data.x_train - mean) / std, dtype=fdt, device=self.device
        )
        self.y_train = torch.as_tensor(data.y_train, device=self.device)
        self.x_test = torch.as_tensor(
            (data.x_test - mean) / std, dtype=fdt, device=self.device
        )
        self.y_test = torch.as_tensor(data.y_test, device=self.device)
        # Small inputs (the 8x8 fallbacks) keep full resolution in the encoder.
        self.stride = cfg.stride if data.x_train.shape[-1] >= 16 else 1
        self._order_cache: dict = {}

    @property
    def data_note(self) -> str:
        return self.data.note

    def make_block(self, width: float = 1.0):
        hidden = max(1, int(round(self.cfg.hidden * width)))
        return ConvBlock(self.cfg.channels, hidden)

    def make_model(self, core):
        return ImageClassifier(
            core,
            self.cfg.channels,
            self.data.n_classes,
            in_channels=self.x_train.shape[1],
            stride=self.stride,
            pool=min(4, (self.x_train.shape[-1] + self.stride - 1) // self.stride),
        )

    def steps_per_epoch(self) -> int:
        return self.x_train.shape[0] // self.cfg.batch_size

    def batch(self, epoch, index, seed):
        key = (epoch, seed)
        if key not in self._order_cache:
            self._order_cache = {
                key: torch.as_tensor(
                    self._order(self.x_train.shape[0], epoch, seed), device=self.device
                )
            }
        b = self.cfg.batch_size
        idx = self._order_cache[key][index * b : (index + 1) * b]
        return self.x_train[idx], self.y_train[idx]

    def loss(self, out, target):
        return F.cross_entropy(out.float(), target)

    @torch.no_grad()
    def evaluate(self, model, batch: int = 500) -> dict:
        model.eval()
        correct, nll = 0, 0.0
        try:
            for i in range(0, self.x_test.shape[0], batch):
                out = model(self.x_test[i : i + batch]).float()
                y = self.y_test[i : i + batch]
                correct += int((out.argmax(1) == y).sum())
                nll += float(F.cross_entropy(out, y, reduction="sum"))
        finally:
            model.train()
        n = self.x_test.shape[0]
        return {"test_acc": correct / n, "test_loss": nll / n}

    def probe(self):
        n = min(self.cfg.probe_batch, self.x_test.shape[0])
        return self.x_test[:n], self.y_test[:n]


def _chunks(codes: np.ndarray, context: int) -> np.ndarray:
    """Non-overlapping windows of ``context + 1`` characters (inputs + targets)."""
    n = (len(codes) - 1) // context
    idx = np.arange(n)[:, None] * context + np.arange(context + 1)[None, :]
    return codes[idx]


class TextTask(AbstractTask):
    """Character-level language modelling; metric: test bits per character."""

    name = "text"
    metric = "test_bpc"
    metric_label = "test bits/char"
    higher_is_better = False

    def __init__(self, cfg: TrainConfig, data: TextData, device="cpu"):
        super().__init__(cfg, device)
        self.data = data
        t = cfg.context
        if len(data.train) < 2 * t + 2:
            t = max(8, (len(data.train) - 2) // 4)  # the tiny built-in fallback
        self.context = t
        train = _chunks(data.train, t)
        if cfg.n_train is not None and cfg.n_train < len(train):
            keep = np.random.default_rng(0).choice(
                len(train), cfg.n_train, replace=False
            )
            train = train[np.sort(keep)]
        test = _chunks(data.test, t)
        if cfg.n_test is not None and cfg.n_test < len(test):
            test = test[np.linspace(0, len(test) - 1, cfg.n_test).round().astype(int)]
        self.train = torch.as_tensor(train, device=self.device)
        self.test = torch.as_tensor(test, device=self.device)
        self.batch_size = min(cfg.batch_size, len(train))
        self._order_cache: dict = {}

    @property
    def data_note(self) -> str:
        return (
            f"{self.data.note}; {self.train.shape[0]} train / {self.test.shape[0]} "
            f"test sequences of {self.context} characters"
        )

    def make_block(self, width: float = 1.0):
        c = self.cfg
        head_dim = max(1, int(round(c.embed // c.heads * width)))
        hidden = max(4, int(round(c.mlp_hidden * width)))
        return TransformerBlock(c.embed, c.heads, hidden, attn_dim=head_dim * c.heads)

    def make_model(self, core):
        return CharLM(core, self.data.vocab_size, self.cfg.embed, self.context)

    def steps_per_epoch(self) -> int:
        return self.train.shape[0] // self.batch_size

    def batch(self, epoch, index, seed):
        key = (epoch, seed)
        if key not in self._order_cache:
            self._order_cache = {
                key: torch.as_tensor(
                    self._order(self.train.shape[0], epoch, seed), device=self.device
                )
            }
        b = self.batch_size
        seq = self.train[self._order_cache[key][index * b : (index + 1) * b]]
        return seq[:, :-1], seq[:, 1:]

    def loss(self, out, target):
        return F.cross_entropy(
            out.float().reshape(-1, out.shape[-1]), target.reshape(-1)
        )

    @torch.no_grad()
    def evaluate(self, model, batch: int = 64) -> dict:
        model.eval()
        nll, count = 0.0, 0
        try:
            for i in range(0, self.test.shape[0], batch):
                seq = self.test[i : i + batch]
                out = model(seq[:, :-1]).float()
                nll += float(
                    F.cross_entropy(
                        out.reshape(-1, out.shape[-1]),
                        seq[:, 1:].reshape(-1),
                        reduction="sum",
                    )
                )
                count += seq[:, 1:].numel()
        finally:
            model.train()
        return {"test_bpc": nll / count / math.log(2), "test_loss": nll / count}

    def probe(self):
        n = min(self.cfg.probe_batch, self.test.shape[0])
        seq = self.test[:n]
        return seq[:, :-1], seq[:, 1:]


def make_task(
    cfg: TrainConfig,
    device="cpu",
    source: str = "auto",
    seed: int = 0,
    *,
    data_dir=None,
    text_file=None,
):
    """Load the data of ``cfg.task`` (fallbacks of ``docs/data.md``) and wrap it.

    ``data_dir``: a user's Fashion-MNIST directory (images); ``text_file``: a user's
    corpus (text). Both default to their environment variables.
    """
    if cfg.task == "images":
        from .data_images import load_images

        data = load_images(cfg.n_train, cfg.n_test, seed, source=source, root=data_dir)
        return ImageTask(cfg, data, device)
    from .data_text import load_text

    return TextTask(cfg, load_text(source, text_file=text_file), device)

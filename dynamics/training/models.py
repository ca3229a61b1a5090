"""Networks of the training experiments: the DEQ blocks ``f(z, x)`` and the models
around them.

- :class:`ConvBlock`: the implicit residual block of docs/theory/reversible.md scaled
down,
  ``f(z, x) = GN3(ReLU(z + GN2(x + conv2(ReLU(GN1(conv1 z))))))``. GroupNorm only
  inside ``f`` (deterministic, no running statistics, so the reversible backward can
  recompute it bit for bit); BatchNorm with batch statistics only in the encoder,
  outside the equilibrium.
- :class:`TransformerBlock`: one pre-LN causal transformer block with input injection
  (docs/theory/reversible.md scaled down): ``z <- z + MHA(LN1(z + x))``,
  ``z <- z + MLP(LN2(z))``.
- Cores that map the injection ``x`` to a state ``z`` of the same shape: the
  equilibrium core (:class:`EquilibriumCore`, wrapping whatever DEQ layer an arm
  chose), the explicit weight-tied unroll (:class:`TiedUnrolledCore`) and the explicit
  untied stack (:class:`UntiedCore`).
- The models: :class:`ImageClassifier` (encoder -> core -> pool -> linear) and
  :class:`CharLM` (embeddings -> core -> LayerNorm -> linear).

Every block casts its input to its parameters' dtype and its output back to the
input's dtype, so a DEQ layer may keep its state in float64 while ``f`` runs in
float32 (docs/theory/reversible.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InvalidInputError


def n_params(module: nn.Module) -> int:
    """Number of trainable scalars of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _groups(channels: int, group_size: int) -> int:
    """GroupNorm groups of about ``group_size`` channels that divide ``channels``."""
    g = max(1, channels // group_size)
    while channels % g:
        g -= 1
    return g


class ConvBlock(nn.Module):
    """Implicit residual conv block ``f(z, x)`` (docs/theory/reversible.md, one stage,
    scaled down).

    ``conv1``: C -> H (3x3, no bias); ``conv2``: H -> C (3x3, no bias); GroupNorm with
    about 16 channels per group (spec: C/16 groups). Deterministic: no BatchNorm, no
    dropout. Args: ``channels`` C, ``hidden`` H, ``group_size``.
    """

    def __init__(self, channels: int, hidden: int, group_size: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(hidden, channels, 3, padding=1, bias=False)
        self.gn1 = nn.GroupNorm(_groups(hidden, group_size), hidden)
        self.gn2 = nn.GroupNorm(_groups(channels, group_size), channels)
        self.gn3 = nn.GroupNorm(_groups(channels, group_size), channels)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        dt = self.conv1.weight.dtype
        zz, xx = z.to(dt), x.to(dt)
        h = F.relu(self.gn1(self.conv1(zz)))
        out = self.gn3(F.relu(zz + self.gn2(xx + self.conv2(h))))
        return out.to(z.dtype)


class TransformerBlock(nn.Module):
    """Pre-LN causal transformer block with input injection ``f(z, x)``
    (docs/theory/reversible.md).

    ``z <- z + MHA(LN1(z + x))`` (separate Q/K/V projections E -> A with bias, output
    A -> E, causal mask), then ``z <- z + MLP(LN2(z))`` with the MLP E -> M -> M -> E
    and GELU (the spec's three-layer shape; M = 4E there). Attention is written out
    (no fused kernel) so that it is deterministic and twice differentiable, which the
    Jacobian regulariser needs.

    Args: ``embed`` E, ``heads``, ``attn_dim`` A (default E, divisible by ``heads``),
    ``mlp_hidden`` M.
    """

    def __init__(
        self, embed: int, heads: int, mlp_hidden: int, attn_dim: int | None = None
    ):
        super().__init__()
        attn_dim = embed if attn_dim is None else attn_dim
        if attn_dim % heads:
            raise InvalidInputError(
                f"attn_dim {attn_dim} is not divisible by heads {heads}"
            )
        self.heads = heads
        self.ln1 = nn.LayerNorm(embed)
        self.q = nn.Linear(embed, attn_dim)
        self.k = nn.Linear(embed, attn_dim)
        self.v = nn.Linear(embed, attn_dim)
        self.o = nn.Linear(attn_dim, embed)
        self.ln2 = nn.LayerNorm(embed)
        self.mlp = nn.Sequential(
            nn.Linear(embed, mlp_hidden),
            nn.GELU(),
            nn.Linear(mlp_hidden, mlp_hidden),
            nn.GELU(),
            nn.Linear(mlp_hidden, embed),
        )

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        dt = self.q.weight.dtype
        zz, xx = z.to(dt), x.to(dt)
        b, t, _ = zz.shape
        h = self.ln1(zz + xx)

        def split(u):
            return u.reshape(b, t, self.heads, -1).transpose(1, 2)

        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        mask = torch.ones(t, t, dtype=torch.bool, device=z.device).triu(1)
        att = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        a = (att @ v).transpose(1, 2).reshape(b, t, -1)
        zz = zz + self.o(a)
        zz = zz + self.mlp(self.ln2(zz))
        return zz.to(z.dtype)


class AbstractCore(nn.Module):
    """Maps the injection ``x`` to the state ``z`` (same shape).

    Subclass contract: implement ``forward(x)``; after each call ``last_stats`` holds
    ``nfe_forward`` and ``nfe_backward`` (evaluations of a block and vector-Jacobian
    products of a block per training step, whole batch) and may hold solver results.
    """

    last_stats: dict

    def blocks(self) -> list[nn.Module]:
        """The ``f`` modules, in order (one for tied and equilibrium cores)."""
        raise NotImplementedError


class EquilibriumCore(AbstractCore):
    """A DEQ core: ``z* = layer(x)`` with a layer built by an arm (solver + gradient).

    ``make_layer(f)`` must return a module with ``layer(x) -> z`` and ``last_stats``.
    """

    def __init__(self, f: nn.Module, make_layer: Callable[[nn.Module], nn.Module]):
        super().__init__()
        self.f = f
        self.layer = make_layer(f)
        self.last_stats = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.layer(x)
        # the layer's dict itself: its backward fills in nfe_backward and results
        self.last_stats = self.layer.last_stats
        return z

    def blocks(self):
        return [self.f]


class TiedUnrolledCore(AbstractCore):
    """Explicit weight-tied network: ``z_{k+1} = f(z_k, x)``, ``z_0 = 0``, ``steps``
    times, trained by ordinary backprop (``steps`` block evaluations forward, ``steps``
    VJPs backward, O(steps) activation memory)."""

    def __init__(self, f: nn.Module, steps: int):
        super().__init__()
        self.f = f
        self.steps = int(steps)
        self.last_stats = {}

    def forward(self, x):
        z = torch.zeros_like(x)
        for _ in range(self.steps):
            z = self.f(z, x)
        self.last_stats = {"nfe_forward": self.steps, "nfe_backward": self.steps}
        return z

    def blocks(self):
        return [self.f]


class UntiedCore(AbstractCore):
    """Explicit untied network: ``z_{k+1} = f_k(z_k, x)`` with separate weights per
    block, ``z_0 = 0``."""

    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.fs = nn.ModuleList(blocks)
        self.last_stats = {}

    def forward(self, x):
        z = torch.zeros_like(x)
        for f in self.fs:
            z = f(z, x)
        self.last_stats = {"nfe_forward": len(self.fs), "nfe_backward": len(self.fs)}
        return z

    def blocks(self):
        return list(self.fs)


class ImageClassifier(nn.Module):
    """Encoder -> core -> average pool -> linear (docs/theory/reversible.md ``deq.py``,
    scaled down).

    Encoder: conv3x3 (1 -> C, no bias, stride ``stride``) + BatchNorm + ReLU: the only
    batch-statistics normalisation, outside the equilibrium. Head: adaptive average
    pool to ``pool x pool``, flatten, Linear(C pool^2 -> classes).
    """

    def __init__(
        self,
        core: AbstractCore,
        channels: int,
        n_classes: int = 10,
        in_channels: int = 1,
        stride: int = 2,
        pool: int = 4,
    ):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.core = core
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.head = nn.Linear(channels * pool * pool, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.encoder(images)
        z = self.core(x)
        return self.head(self.pool(z.to(x.dtype)).flatten(1))


class CharLM(nn.Module):
    """Character language model: token + learned position embedding -> core ->
    LayerNorm -> linear head (no bias), logits over the vocabulary."""

    def __init__(self, core: AbstractCore, vocab: int, embed: int, context: int):
        super().__init__()
        self.tok = nn.Embedding(vocab, embed)
        self.pos = nn.Embedding(context, embed)
        self.core = core
        self.ln = nn.LayerNorm(embed)
        self.head = nn.Linear(embed, vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        x = self.tok(tokens) + self.pos(torch.arange(t, device=tokens.device))
        z = self.core(x)
        return self.head(self.ln(z.to(x.dtype)))

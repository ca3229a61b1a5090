"""Scoped flush-to-zero for denormal (subnormal) numbers on CPU.

Deep reversible and unrolled backward passes at N ~ 64 steps produce long runs of
subnormal numbers (products of many contraction factors), and x86 CPUs handle those
in microcode, 10-100x slower than normal numbers. Flushing them to zero changes values
below the smallest normal number (2.2e-308 in float64, 1.2e-38 in float32) only, so it
cannot change a gradient of normal size beyond that absolute amount.

Where it is *not* safe: a problem whose own values live near the subnormal range (its
gradient would be flushed to 0), and any code that compares bit patterns of results
computed with and without flushing. The setting is per thread and global to torch, so
it is only ever changed inside :func:`flush_denormals`, which restores the previous
setting on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

_SUBNORMAL = 1e-310  # below float64's smallest normal (2.2e-308)


def flushing_denormals() -> bool:
    """Whether the calling thread currently flushes subnormals to zero (probed: torch
    has no getter)."""
    t = torch.tensor([_SUBNORMAL], dtype=torch.float64)
    return float((t * 1.0)[0]) == 0.0


@contextlib.contextmanager
def flush_denormals(enabled: bool = True) -> Iterator[bool]:
    """Flush subnormals to zero inside the block (when the CPU supports it), then
    restore the previous setting. Yields whether flushing is active."""
    if not enabled:
        yield flushing_denormals()
        return
    prev = flushing_denormals()
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        torch.set_flush_denormal(prev)

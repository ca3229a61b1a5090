"""Numbers the paper authors published, kept as data with the file and commit they
come from, so that REPRO-* can assert agreement with them (not only that our own
protocol runs and writes its files)."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: Agreement asserted for deterministic runs: significant digits.
MIN_DIGITS = 10.0
#: float64 carries 15.95 significant digits; identical values report this.
FULL_DIGITS = 16.0


@cache
def load(name: str = "single_index_deq") -> dict:
    """The published values of ``name`` (a JSON file beside this module)."""
    return json.loads((HERE / f"{name}.json").read_text())


def digits(ours, theirs) -> float:
    """Significant digits to which ``ours`` matches ``theirs``: the minimum over
    components of -log10(|ours - theirs| / |theirs|), capped at 16 (identical)."""
    a = np.atleast_1d(np.asarray(ours, dtype=float))
    b = np.atleast_1d(np.asarray(theirs, dtype=float))
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: ours {a.shape}, published {b.shape}")
    out = FULL_DIGITS
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        rel = abs(x - y) / abs(y) if y != 0 else abs(x - y)
        out = min(out, -math.log10(rel) if rel > 0 else FULL_DIGITS)
    return out

"""Reductions of per-instance measurements to what a report shows: the worst value and
the instance (index, seed, category) that attained it, quantiles, and histograms."""

from __future__ import annotations

import math

import numpy as np

#: Quantile levels reported for every measure.
QUANTILES = (0.0, 0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0)


def worst(
    values: np.ndarray,
    index: np.ndarray,
    category: np.ndarray,
    *,
    largest: bool = False,
    categories=None,
) -> dict:
    """The extreme finite value (min by default) and the instance that attained it.

    Ties go to the smallest instance index, so the answer does not depend on chunking.
    """
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    out = {"count": int(v.size), "finite": int(finite.sum())}
    if not finite.any():
        out.update(value=None, instance=None, category=None)
        return out
    vals = np.where(finite, v, -np.inf if largest else np.inf)
    ext = vals.max() if largest else vals.min()
    pos = int(np.nonzero(vals == ext)[0][np.argmin(index[vals == ext])])
    cat = int(category[pos])
    out.update(
        value=float(ext),
        instance=int(index[pos]),
        category=categories[cat] if categories is not None else cat,
    )
    return out


def quantiles(values: np.ndarray) -> dict[str, float | None]:
    """Quantiles of the finite values at QUANTILES (keys 'q0', 'q0.001', ...)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {f"q{q:g}": None for q in QUANTILES}
    qs = np.quantile(v, QUANTILES)
    return {f"q{q:g}": float(x) for q, x in zip(QUANTILES, qs, strict=True)}


def log_histogram(
    values: np.ndarray, lo: float | None = None, hi: float | None = None, bins: int = 40
) -> dict:
    """Histogram of positive finite values on log10-spaced bins.

    Returns {"edges": [...], "counts": [...], "below": n, "above": n, "nonpositive": n}.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    nonpos = int((v <= 0).sum())
    v = v[v > 0]
    if v.size == 0:
        return {
            "edges": [],
            "counts": [],
            "below": 0,
            "above": 0,
            "nonpositive": nonpos,
        }
    lo = float(v.min()) if lo is None else lo
    hi = float(v.max()) if hi is None else hi
    if hi <= lo:
        hi = lo * 1.000001 + 1e-300
    edges = np.logspace(math.log10(lo), math.log10(hi), bins + 1)
    counts, _ = np.histogram(v, bins=edges)
    return {
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "below": int((v < lo).sum()),
        "above": int((v > hi).sum()),
        "nonpositive": nonpos,
    }


def summarise(
    values: np.ndarray,
    index: np.ndarray,
    category: np.ndarray,
    *,
    largest: bool = False,
    categories=None,
    by_category: bool = True,
) -> dict:
    """Worst value with its instance, quantiles, and per-category worst values."""
    out = {
        "worst": worst(values, index, category, largest=largest, categories=categories),
        "quantiles": quantiles(values),
    }
    if by_category and categories is not None:
        per = {}
        for c, name in enumerate(categories):
            mask = category == c
            if mask.any():
                w = worst(
                    values[mask],
                    index[mask],
                    category[mask],
                    largest=largest,
                    categories=categories,
                )
                per[name] = {
                    "count": int(mask.sum()),
                    "worst": w["value"],
                    "instance": w["instance"],
                }
        out["by_category"] = per
    return out

"""Import Hypothesis with an actionable message when the extra is not installed."""

from __future__ import annotations

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "dynamics.testing strategies need Hypothesis: "
        "pip install 'deq-dynamics[testing]' (or pip install hypothesis)"
    ) from exc

__all__ = ["st"]

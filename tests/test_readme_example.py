"""The README's own-model example runs as written, and fails on a wrong law."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    m = re.search(rf"<!-- example: {marker} -->\n```python\n(.*?)```", text, re.S)
    assert m, f"README example {marker!r} not found"
    return m.group(1)


def _namespace(code: str) -> dict:
    ns: dict = {"__name__": "readme_example"}
    exec(compile(code, "<README.md example>", "exec"), ns)  # the README's own code
    return ns


def test_own_conservation_law_example_passes():
    """Balancedness W1 W1^T - W2^T W2 of a two-layer linear net is conserved by GF."""
    _namespace(_block("own-conservation-law"))["test_balancedness_is_conserved"]()


def test_own_conservation_law_example_catches_a_wrong_law():
    """With W1 W1^T + W2^T W2 (not conserved) the same test must fail."""
    code = _block("own-conservation-law").replace(
        "return W1 @ W1.T - W2.T @ W2", "return W1 @ W1.T + W2.T @ W2"
    )
    assert "W1 @ W1.T + W2.T @ W2" in code
    with pytest.raises(AssertionError, match="not conserved"):
        _namespace(code)["test_balancedness_is_conserved"]()


def test_run_claim_example_runs(capsys):
    _namespace(_block("run-claim"))
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out] == [
        ["LIN-GF-CONS", "pass"],
        ["LIN-GD-DRIFT", "pass"],
        ["LIN-GF-RATE", "pass"],
        ["LIN-COND", "pass"],
        ["LIN-GD-RATE", "pass"],
    ]

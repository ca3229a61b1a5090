"""scripts/bench_scale.py: the flop/byte counter against hand counts, and a tiny run
whose reported ratios follow from its own measured times."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "bench_scale", ROOT / "scripts" / "bench_scale.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_counter_matches_hand_counts(bench):
    """bmm: 2 p q r flops per product; an add: one flop per output entry; bytes:
    inputs + outputs of each kernel (float64: 8 bytes an entry)."""
    a = torch.ones(7, 3, 4, dtype=torch.float64)
    b = torch.ones(7, 4, 5, dtype=torch.float64)
    with bench._Counter() as c:
        torch.bmm(a, b)
    assert c.flops == 2 * 7 * 3 * 4 * 5
    assert c.bytes == 8 * (7 * 12 + 7 * 20 + 7 * 15)
    x = torch.ones(10, dtype=torch.float64)
    with bench._Counter() as c:
        _ = x + x
        _ = x.view(2, 5)  # a view: no kernel
    assert (c.flops, c.bytes, c.kernels) == (10, 8 * 30, 1)


def test_tiny_run_ratios_are_consistent(bench, capsys):
    """One m = 2 row: speedup = rate x loop time per instance-step, the peak
    fractions = counted work x rate / measured peak, and both engines agree."""
    peaks = {"matmul_gflops": 10.0, "copy_gbs": 5.0}
    (row,) = bench.bench_m(2, [24], lambda m, n: 2, 16, 3, "cpu", peaks)
    assert row["steps"] == 2 and row["tile"] == 16
    rate = row["inst_steps_per_s"]
    assert rate == pytest.approx(2 * 2 * 24 / row["batched_seconds"])
    assert row["speedup"] == pytest.approx(rate / row["loop_inst_steps_per_s"])
    assert row["flop_fraction"] == pytest.approx(
        rate * row["flops_per_inst_step"] / 1e10
    )
    assert row["byte_fraction"] == pytest.approx(
        rate * row["bytes_per_inst_step"] / 5e9
    )
    assert row["flops_per_inst_step"] > 0 and row["bytes_per_inst_step"] > 0
    assert row["max_disagreement"] < 1e-12
    assert "24" in capsys.readouterr().out

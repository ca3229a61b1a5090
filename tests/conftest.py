"""Shared fixtures: torch defaults, a seeded generator, Hypothesis profiles."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(__import__("os").environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _torch_defaults():
    """float64 by default, and one intra-op thread: the tests' tensors are small, and on
    a CPU shared with other busy processes idle OpenMP threads spin at every kernel (a
    2560-element tanh took 5 ms with 2 threads against 16 us with 1)."""
    torch = pytest.importorskip(
        "torch", reason="torch is a dependency: pip install torch"
    )
    old_dtype, old_threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(old_dtype)
    torch.set_num_threads(old_threads)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20251121)

"""Sweeps of P-SCALE on executors: mergeable reductions, process pool vs Dask,
checkpoints and resume (dynamics.batched.sweep, dynamics.batched.partial)."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from dynamics.batched.instances_batched import CATEGORIES, ScaleSpec
from dynamics.batched.partial import Dist, merge, reduce_chunk
from dynamics.batched.scale import ScaleConfig, run_scale, summarise
from dynamics.batched.sweep import run_sweep
from dynamics.errors import InvalidInputError

CFG = ScaleConfig(
    instances=40,
    gf_steps=8,
    gd_steps=12,
    midpoint_every=5,
    midpoint_steps=3,
    refine_rounds=2,
    spec=ScaleSpec(block=8),
    chunk=10,
)


def _dump(summary: dict) -> str:
    return json.dumps(summary, sort_keys=True)


@pytest.fixture(scope="module")
def reference() -> str:
    """The in-memory summary of the whole run (scale.summarise over all arrays)."""
    return _dump(summarise(run_scale(CFG).arrays))


def test_serial_sweep_equals_in_memory_summary(reference):
    """Merging per-chunk partials (exact mode) reproduces summarise() of the
    concatenated per-instance arrays bit for bit."""
    res = run_sweep(CFG, executor="serial")
    assert res.chunks == 4
    assert _dump(res.partial.summary(CATEGORIES)) == reference


def test_merge_is_order_independent():
    """Any grouping/order of the chunk partials gives the same merged report, in
    exact and in sketch mode."""
    arrays = run_scale(CFG).arrays
    n = arrays["index"].size
    cuts = [(0, 7), (7, 19), (19, 33), (33, n)]
    for exact in (True, False):
        parts = [
            reduce_chunk({k: v[lo:hi] for k, v in arrays.items()}, exact)
            for lo, hi in cuts
        ]
        a = merge(parts).summary(CATEGORIES)
        b = merge(parts[::-1]).summary(CATEGORIES)
        c = parts[2].merge(parts[0]).merge(parts[3].merge(parts[1])).summary(CATEGORIES)
        assert _dump(a) == _dump(b) == _dump(c)
        whole = reduce_chunk(arrays, exact).summary(CATEGORIES)
        assert _dump(a) == _dump(whole)


def test_sketch_quantiles_within_bin_resolution():
    """Sketch quantiles are within one bin (10^(1/200) relative) of the nearest-rank
    order statistic, min and max exact."""
    rng = np.random.default_rng(3)
    v = np.concatenate([rng.lognormal(0, 4, 5000), -rng.lognormal(0, 2, 500), [0.0]])
    d = Dist.of(v, exact=False)
    q = d.quantiles()
    s = np.sort(v)
    assert q["q0"] == s[0] and q["q1"] == s[-1]
    for level in (0.01, 0.1, 0.5, 0.9, 0.99):
        ref = s[int(round(level * (s.size - 1)))]
        got = q[f"q{level:g}"]
        assert abs(got - ref) <= (10 ** (1 / 200) - 1) * abs(ref) + 1e-300, level


def test_checkpoint_resume_and_refusal(tmp_path, reference):
    """An interrupted sweep resumes from its chunk files and gives the same report;
    an existing checkpoint is never silently reused or overwritten."""
    ck = tmp_path / "ck"

    class Stop(Exception):
        pass

    def interrupt(c):
        if c == 1:
            raise Stop

    with pytest.raises(Stop):
        run_sweep(CFG, executor="serial", checkpoint=ck, on_chunk=interrupt)
    assert sorted(p.name for p in ck.glob("chunk-*.json")) == [
        "chunk-000000.json",
        "chunk-000001.json",
    ]
    with pytest.raises(InvalidInputError, match="--resume"):
        run_sweep(CFG, executor="serial", checkpoint=ck)
    ran = []
    res = run_sweep(
        CFG, executor="serial", checkpoint=ck, resume=True, on_chunk=ran.append
    )
    assert res.resumed == 2 and sorted(ran) == [2, 3]
    assert _dump(res.partial.summary(CATEGORIES)) == reference
    other = ScaleConfig(**{**CFG.__dict__, "seed": 1})
    with pytest.raises(InvalidInputError, match="different sweep"):
        run_sweep(other, executor="serial", checkpoint=ck, resume=True)


@pytest.mark.slow
def test_process_pool_equals_serial(reference):
    res = run_sweep(CFG, executor="process", workers=2)
    assert _dump(res.partial.summary(CATEGORIES)) == reference


def test_dask_local_cluster_with_killed_worker_equals_in_memory(reference):
    """Dask LocalCluster (2 worker processes on loopback): same report as the
    in-memory run, even when a worker process is killed after the first chunk
    (Dask reschedules its chunks)."""
    distributed = pytest.importorskip(
        "distributed", reason="dask[distributed] not installed (extra 'cluster')"
    )
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = distributed.Client(cluster)
    try:
        pids = client.run(os.getpid)
        killed = []

        def kill_one(c):
            if not killed:
                pid = sorted(pids.values())[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        res = run_sweep(
            CFG,
            on_chunk=kill_one,
            _executor=client.get_executor(retries=2, pure=False),
        )
        assert killed
        assert _dump(res.partial.summary(CATEGORIES)) == reference
    finally:
        client.close()
        cluster.close()

"""Sweeps of P-SCALE over many chunks on an executor (process pool or Dask).

A sweep is the list of chunks ``(index, start, stop)`` of a :class:`.scale.ScaleConfig`:
a chunk carries only its index range (the seed is in the config), never data; the
worker generates its instances from ``(seed, index)``, runs them, and returns the
:class:`.partial.Partial` reduction as JSON. The driver merges the partials; the merge
is associative and commutative, so the report is the same whatever executor ran the
chunks and in whatever order they finished.

Executors (all :class:`concurrent.futures.Executor`):

- ``"serial"``: in this process (tests, small sweeps);
- ``"process"`` (default): a local :class:`~concurrent.futures.ProcessPoolExecutor`
  (spawned workers, one torch thread each);
- ``"local"``: a Dask ``LocalCluster`` on loopback started and closed here
  (``pip install deq-dynamics[cluster]``);
- ``"tcp://host:port"``: an existing Dask scheduler (start one with
  ``dask scheduler`` / dask-jobqueue / dask-kubernetes). Dask executes each chunk with
  ``retries`` retries, and reschedules the chunks of a worker that dies.

Each finished chunk is written, atomically, as ``chunk-NNNNNN.json`` under the
checkpoint directory (if one is given); ``resume=True`` reads them back and runs only
the missing chunks.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import InvalidInputError
from .partial import EXACT_CAP, Partial, merge, reduce_chunk
from .scale import ScaleConfig, chunk_size, run_chunk

Progress = Callable[[str], None]


@dataclasses.dataclass
class SweepResult:
    """A finished sweep: the merged reduction and how it was run."""

    config: ScaleConfig
    partial: Partial
    chunk: int
    chunks: int
    resumed: int
    seconds: float
    executor: str
    device_name: str


def fingerprint(config: ScaleConfig, chunk: int) -> str:
    """Hash of everything a chunk's result depends on (config and chunk size)."""
    d = config.describe()
    d.pop("memory_budget", None)
    d.pop("chunk", None)
    text = json.dumps({"config": d, "chunk": chunk}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan(config: ScaleConfig) -> tuple[int, list[tuple[int, int, int]]]:
    """(chunk size, [(chunk index, start, stop), ...])."""
    size = chunk_size(config)
    n = math.ceil(config.instances / size)
    return size, [
        (c, c * size, min((c + 1) * size, config.instances)) for c in range(n)
    ]


def sweep_chunk(config: ScaleConfig, start: int, stop: int, threads: int = 1) -> dict:
    """Worker task: run instances ``start .. stop-1`` and return their JSON partial."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    arrays = run_chunk(config, start, stop)
    return reduce_chunk(arrays, exact=config.instances <= EXACT_CAP).to_json()


def _write_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def _load_done(directory: Path, fp: str, resume: bool) -> dict[int, Partial]:
    done: dict[int, Partial] = {}
    files = sorted(directory.glob("chunk-*.json"))
    if files and not resume:
        raise InvalidInputError(
            f"{directory} already holds {len(files)} chunk results; pass --resume to "
            "continue that sweep, or choose an empty checkpoint directory"
        )
    for f in files:
        d = json.loads(f.read_text())
        if d.get("fingerprint") != fp:
            raise InvalidInputError(
                f"{f} belongs to a different sweep (config or chunk size differ); "
                "use another checkpoint directory"
            )
        done[int(d["chunk"])] = Partial.from_json(d["partial"])
    return done


@contextlib.contextmanager
def open_executor(kind: str, workers: int | None = None, retries: int = 2):
    """Yield ``(executor, description)`` for ``kind`` (see the module docstring)."""
    if kind == "serial":
        yield None, "serial (this process)"
        return
    if kind == "process":
        import multiprocessing as mp

        n = workers or os.cpu_count() or 1
        ex = cf.ProcessPoolExecutor(n, mp_context=mp.get_context("spawn"))
        try:
            yield ex, f"process pool ({n} workers)"
        except BaseException:
            # interrupted: drop queued and running chunks (finished ones are on disk;
            # without this the interpreter's exit hook waits for the running ones).
            # Python < 3.14 has no public terminate_workers(), hence the private map.
            for proc in list(getattr(ex, "_processes", {}).values()):
                proc.terminate()
            ex.shutdown(wait=False, cancel_futures=True)
            raise
        ex.shutdown(wait=True)
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise InvalidInputError(
            "--cluster needs Dask: pip install 'deq-dynamics[cluster]'"
        ) from exc
    if kind == "local":
        n = workers or os.cpu_count() or 1
        with (
            LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield (
                client.get_executor(retries=retries, pure=False),
                (f"dask LocalCluster ({n} workers, loopback)"),
            )
        return
    if kind.startswith("tcp://") or kind.startswith("tls://"):
        with Client(kind) as client:
            n = len(client.scheduler_info().get("workers", {}))
            yield (
                client.get_executor(retries=retries, pure=False),
                (f"dask scheduler {kind} ({n} workers)"),
            )
        return
    raise InvalidInputError(
        f"unknown executor {kind!r}; use process, serial, local or tcp://host:port"
    )


def run_sweep(
    config: ScaleConfig,
    *,
    executor: str = "process",
    workers: int | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
    retries: int = 2,
    progress: Progress | None = None,
    on_chunk: Callable[[int], None] | None = None,
    _executor=None,
) -> SweepResult:
    """Run ``config`` chunk by chunk on ``executor`` and merge the partials.

    Args:
        executor: "process", "serial", "local" or a Dask scheduler address.
        workers: process-pool / LocalCluster workers (default: CPU count).
        checkpoint: directory for per-chunk results (created if missing).
        resume: reuse the chunk results already in ``checkpoint``.
        retries: Dask retries per chunk.
        on_chunk: called with each finished chunk's index (tests use it to kill a
            worker mid-sweep).
    """
    say = progress or (lambda msg: None)
    size, chunks = plan(config)
    fp = fingerprint(config, size)
    done: dict[int, Partial] = {}
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        checkpoint.mkdir(parents=True, exist_ok=True)
        done = _load_done(checkpoint, fp, resume)
    elif resume:
        raise InvalidInputError("--resume needs a checkpoint directory")
    resumed = len(done)
    todo = [c for c in chunks if c[0] not in done]
    t0 = time.perf_counter()

    def record(c: int, part: dict) -> None:
        done[c] = Partial.from_json(part)
        if checkpoint is not None:
            _write_atomic(
                checkpoint / f"chunk-{c:06d}.json",
                {"fingerprint": fp, "chunk": c, "partial": part},
            )
        say(
            f"[chunk {len(done)}/{len(chunks)}] chunk {c} done, "
            f"{time.perf_counter() - t0:.1f} s elapsed"
        )
        if on_chunk is not None:
            on_chunk(c)

    if resumed:
        say(f"resuming: {resumed} of {len(chunks)} chunks already done")
    ctx = (
        contextlib.nullcontext((_executor, "given executor"))
        if _executor is not None
        else open_executor(executor, workers, retries)
    )
    with ctx as (ex, desc):
        say(f"{len(todo)} chunks of <= {size} instances on {desc}")
        if ex is None:
            for c, lo, hi in todo:
                record(c, sweep_chunk(config, lo, hi, threads=0))
        else:
            futures = {ex.submit(sweep_chunk, config, lo, hi): c for c, lo, hi in todo}
            for fut in cf.as_completed(futures):
                record(futures[fut], fut.result())
    # fold in chunk order (the merge is order-independent; this only fixes the cost)
    merged = merge(done[c] for c, _, _ in chunks)
    return SweepResult(
        config,
        merged,
        size,
        len(chunks),
        resumed,
        time.perf_counter() - t0,
        desc,
        "cpu" if config.device == "cpu" else config.device,
    )

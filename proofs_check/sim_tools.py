"""Shared helpers of the single-index and approximate-backprop checks and protocols.

- GD runs through the project's driver with the histories the protocols record
  (:func:`run_gd`), and a process pool for independent runs (:func:`run_pool`);
- the local-rate analysis of claims SIM-LOCAL-RATE and APX-LOCAL
  (:func:`local_rate`): a Theil-Sen fit of log R_k over the asymptotic window, with
  its confidence interval, against the prediction 2 log rho, where
  rho = max_i |1 - c0 eta lambda_i(H*)|;
- figure helpers in the project style (data in colour, theory dashed black).
"""

from __future__ import annotations

import concurrent.futures as futures
import math
import os
import signal
import time
from collections.abc import Callable, Iterable

import numpy as np

from dynamics import gradient_descent
from dynamics.models.base import AbstractModel

#: Window rule of SIM-LOCAL-RATE: start once ||theta_k - theta*|| has fallen by this
#: factor (else at half the run); stop where R_k falls to FLOOR_MARGIN x the floor.
DIST_DROP = 100.0
FLOOR_MARGIN = 100.0
#: Fewest points in a window for a fit to count; a Theil-Sen fit uses at most
#: FIT_POINTS points of the window, evenly spaced (its cost is quadratic).
MIN_WINDOW = 20
FIT_POINTS = 400
#: Agreement required between fitted and predicted log-ratios (claims.md: 5 %).
RATE_RTOL = 0.05


def float_floor(model) -> float:
    """Risk of predictions that are all wrong by 10 ulp of the largest target:
    (10 eps64 max(1, max|y|))^2. Below ~100x this, log R_k is rounding noise."""
    scale = max(1.0, float(np.max(np.abs(model.y))))
    return (10.0 * np.finfo(float).eps * scale) ** 2


def rho_lin(H: np.ndarray, eta: float, c0: float = 1.0) -> float:
    """max_i |1 - c0 eta lambda_i(H)|: the local GD factor (R7, APX-LOCAL)."""
    lam = np.linalg.eigvalsh(0.5 * (H + H.T))
    return float(np.max(np.abs(1.0 - c0 * eta * lam)))


def asymptotic_window(
    risks: np.ndarray, dists: np.ndarray, floor: float
) -> tuple[int, int, str]:
    """[start, end) of the asymptotic window (the SIM-LOCAL-RATE rule) and its reason.

    start: the first k with dist_k <= dist_0 / 100, or half the run if that never
    happens; end: one past the last k (from start on) with R_k > 100 x floor.
    """
    K = len(risks)
    fallen = np.flatnonzero(dists <= dists[0] / DIST_DROP)
    if fallen.size:
        start, why = (
            int(fallen[0]),
            f"distance fell {DIST_DROP:g}-fold at step {fallen[0]}",
        )
    else:
        start, why = K // 2, "second half of the run (distance never fell 100-fold)"
    above = np.flatnonzero(risks[start:] > FLOOR_MARGIN * floor)
    end = start + int(above[-1]) + 1 if above.size else start
    return start, end, why


def local_rate(
    steps: np.ndarray,
    risks: np.ndarray,
    dists: np.ndarray,
    floor: float,
    predicted_log_ratio: float,
) -> dict:
    """Theil-Sen fit of log R_k against k over the asymptotic window.

    Returns a dict with the window, the fitted log-ratio per step and its 95 %
    confidence interval, the prediction, ``rel_error`` = |fit / prediction - 1|, and
    ``reached``: whether the window holds at least MIN_WINDOW records.
    """
    steps = np.asarray(steps, float)
    risks = np.asarray(risks, float)
    start, end, why = asymptotic_window(risks, np.asarray(dists, float), floor)
    out = {
        "window": [
            int(steps[start]) if start < len(steps) else None,
            int(steps[end - 1]) if end > start else None,
        ],
        "window_rule": why,
        "points": end - start,
        "predicted_log_ratio": predicted_log_ratio,
        "reached": end - start >= MIN_WINDOW,
    }
    if not out["reached"]:
        out.update(fitted_log_ratio=None, ci=None, rel_error=None)
        return out
    idx = np.unique(
        np.linspace(start, end - 1, min(FIT_POINTS, end - start)).astype(int)
    )
    from scipy import stats  # lazily: scipy.stats costs ~1 s of start-up

    slope, _, lo, hi = stats.theilslopes(np.log(risks[idx]), steps[idx], alpha=0.95)
    out.update(
        fitted_log_ratio=float(slope),
        ci=[float(lo), float(hi)],
        rel_error=abs(float(slope) / predicted_log_ratio - 1.0)
        if predicted_log_ratio != 0
        else math.inf,
    )
    return out


# ---------------------------------------------------------------------- GD runs


def run_gd(
    model: AbstractModel,
    theta0,
    eta: float,
    steps: int,
    *,
    direction=None,
    theta_star=None,
) -> dict:
    """One GD run through :func:`dynamics.gradient_descent`, every step recorded.

    Returns plain arrays: ``thetas`` (K+1, P), ``risks``, ``grad_norms``, ``Q``
    (||u||^2 + (1-v)^2), ``dist`` (to ``theta_star`` when given), the driver's
    ``result`` and ``message``, ``max_step_length``, ``sign_flip`` (sign(1-v) ever
    differed from its start), ``seconds`` (wall) and ``cpu_seconds`` (this process).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    traj = gradient_descent(model, theta0, eta, steps, direction=direction)
    th = traj.thetas
    out = {
        "thetas": th,
        "risks": traj.risks,
        "grad_norms": traj.grad_norms,
        "steps": traj.steps,
        "result": traj.result.value,
        "message": traj.message,
        "max_step_length": float(traj.stats.get("max_step_length", np.nan)),
        "Q": np.sum(th[:, :-1] ** 2, axis=1) + (1.0 - th[:, -1]) ** 2,
        "sign_flip": bool(np.any(np.sign(1.0 - th[:, -1]) != np.sign(1.0 - th[0, -1]))),
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
    }
    if theta_star is not None:
        out["dist"] = np.linalg.norm(th - np.asarray(theta_star)[None, :], axis=1)
    return out


def default_workers() -> int:
    """Worker processes for independent runs: DEQ_WORKERS, else the CPU count."""
    env = os.environ.get("DEQ_WORKERS")
    return max(1, int(env)) if env else max(1, os.cpu_count() or 1)


def run_pool(
    fn: Callable,
    tasks: Iterable,
    *,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
    describe: Callable[[object, dict], str] | None = None,
) -> list:
    """``[fn(task) for task in tasks]``, in task order, on a process pool.

    Results do not depend on the number of workers (each task is self-seeded).
    ``progress`` receives one line per finished task.
    """
    tasks = list(tasks)
    workers = default_workers() if workers is None else workers
    t0 = time.perf_counter()
    results: list = [None] * len(tasks)

    def report(i, res):
        if progress is not None:
            what = describe(tasks[i], res) if describe else str(tasks[i])
            progress(
                f"  [{sum(r is not None for r in results)}/{len(tasks)}] {what} "
                f"({time.perf_counter() - t0:.0f} s elapsed)"
            )

    if workers <= 1 or len(tasks) <= 1:
        for i, task in enumerate(tasks):
            results[i] = fn(task)
            report(i, results[i])
        return results
    pool = futures.ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)), initializer=_ignore_sigint
    )
    try:
        pending = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
        for fut in futures.as_completed(pending):
            i = pending[fut]
            results[i] = fut.result()
            report(i, results[i])
    except BaseException:
        # Ctrl-C (or a failed task): stop the workers now instead of waiting for
        # every queued task; the workers ignore SIGINT, so only the parent reports.
        _terminate(pool)
        raise
    pool.shutdown()
    return results


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _terminate(pool: futures.ProcessPoolExecutor) -> None:
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(timeout=5)


def subsample(n: int, every: int) -> np.ndarray:
    """Indices 0, every, 2 every, ... and always n - 1."""
    return np.unique(np.r_[np.arange(0, n, every), n - 1])


__all__ = [
    "float_floor",
    "rho_lin",
    "asymptotic_window",
    "local_rate",
    "run_gd",
    "run_pool",
    "default_workers",
    "subsample",
]

"""Batched torch engine for matrix linear DEQs (P-SCALE): against the single-instance
engine, conservation, chunk invariance, replay, float32 and device validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from support import TOL, assert_close

from dynamics import MatrixLinearDEQ, gradient_descent, rates
from dynamics.batched import _small as sm
from dynamics.batched.batched_linear import (
    BatchedMatrixDEQ,
    hessian_norm,
    rate_constants,
    resolve_device,
    resolve_dtype,
)
from dynamics.batched.instances_batched import (
    CATEGORIES,
    ScaleSpec,
    generate,
    instance,
)
from dynamics.batched.linear_runs import (
    gradient_descent as batched_gd,
    gradient_flow as batched_gf,
)
from dynamics.batched.scale import (
    ScaleConfig,
    chunk_size,
    instance_step,
    replay,
    run_scale,
)
from dynamics.errors import InvalidInputError, ShapeError
from dynamics.flows.gradient_flow import integrate
from dynamics.integrators.implicit_midpoint import ImplicitMidpoint
from dynamics.integrators.rk4 import RK4

SPEC = ScaleSpec()


def _batch(spec=SPEC, seed=3, n=6, dtype=torch.float64):
    inst = generate(spec, seed, 0, n)
    batch = BatchedMatrixDEQ(inst.X, inst.Y, spec.m, spec.readout, dtype=dtype)
    return inst, batch, batch.pack(inst.W0, inst.U0, inst.B0)


def _steps(inst, batch, theta0, scale=0.05):
    """A stable per-instance step (scale / ||Hessian||) as a NumPy array."""
    return (scale / hessian_norm(batch, theta0)).numpy()


# ---------------------------------------------------------------- small kernels


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 8])
def test_small_inverse_and_eig(m, rng):
    """Closed-form (m <= 3) and one-LU (m > 3) batch-last inverse, determinant and
    lambda_max; products by the outer-product chain and by ``bmm`` (m >= 5)."""
    a = rng.normal(size=(7, m, m)) + 2 * np.eye(m)
    inv, det = sm.inv(sm.to_batch_last(torch.as_tensor(a)))
    assert_close(sm.to_batch_first(inv).numpy(), np.linalg.inv(a), 1e-13, "inverse")
    assert_close(det.numpy(), np.linalg.det(a), 1e-13, "determinant")
    s = a @ np.swapaxes(a, 1, 2)
    lam = sm.sym_eig_max(sm.to_batch_last(torch.as_tensor(s))).numpy()
    np.testing.assert_allclose(lam, np.linalg.eigvalsh(s)[:, -1], rtol=1e-13)
    b = rng.normal(size=(7, m, 5))
    prod = sm.matmul(
        sm.to_batch_last(torch.as_tensor(a)), sm.to_batch_last(torch.as_tensor(b))
    )
    assert_close(sm.to_batch_first(prod).numpy(), a @ b, 1e-14, "matmul")


# --------------------------------------------------------- against the oracle


@pytest.mark.claim("LIN-GRAD")
@pytest.mark.parametrize(
    "spec",
    [
        SPEC,
        ScaleSpec(m=2, d=3, n=10),
        ScaleSpec(m=4, d=2, n=8),
        ScaleSpec(m=3, d=2, n=9, k=2),
    ],
    ids=["m3d4", "m2d3", "m4d2", "readout"],
)
def test_evaluate_matches_matrix_linear_deq(spec):
    """LIN-GRAD (b): batched risk and IFT gradient equal MatrixLinearDEQ's."""
    inst, batch, theta = _batch(spec, n=5)
    ev = batch.evaluate(theta)
    for b in range(5):
        model = inst.model(b)
        risk, grad = model.value_and_grad(inst.theta0(b))
        assert_close(ev.risk[b].item(), risk, TOL["SCALE-vs-single"], "risk")
        assert_close(ev.grad[:, b].numpy(), grad, TOL["SCALE-vs-single"], "gradient")
        assert_close(
            sm.to_batch_first(batch.C(theta))[b].numpy(),
            model.C(inst.theta0(b)),
            TOL["SCALE-vs-single"],
            "C",
        )


def test_rate_constants_match_dynamics_rates():
    """Batched bound constants equal dynamics.rates on every instance."""
    inst, batch, theta = _batch(n=8)
    c = rate_constants(batch, theta)
    eta = 1e-3
    for b in range(8):
        model, th0 = inst.model(b), inst.theta0(b)
        assert_close(
            c.cond_lower[b].item(),
            rates.cond_lower_bound(model, th0),
            1e-12,
            "cond bound",
        )
        assert_close(c.kappa[b].item(), rates.gf_rate(model, th0), 1e-12, "kappa")
        assert_close(c.M_bar[b].item(), rates.m_bar(model, th0), 1e-12, "M_bar")
        rho = 1.0 - rates.gd_rate_factor(model, th0, eta)
        mine = (
            c.loss_factor
            * eta
            * batch.lambda_min[b]
            / (c.lam_max_C0[b] + c.loss_factor * eta * c.risk0[b])
        ).item()
        assert_close(mine, rho, 1e-12, "GD factor")


@pytest.mark.claim("SCALE-RATE")
def test_batched_gd_matches_single_engine():
    """Batched GD follows dynamics.gradient_descent on each instance."""
    inst, batch, theta = _batch(n=4)
    # A step inside the descent regime: at 0.5 / ||H|| instance 3's risk goes up and
    # rounding differences grow chaotically (1e-9 after 30 steps).
    eta = 0.2 / hessian_norm(batch, theta)
    run = batched_gd(batch, theta, eta, 30, keep_path=True)
    for b in range(4):
        single = gradient_descent(inst.model(b), inst.theta0(b), float(eta[b]), 30)
        assert_close(
            run.thetas[:, :, b].numpy(),
            single.thetas,
            TOL["SCALE-vs-single"],
            f"GD path of instance {b}",
        )
        assert_close(
            run.risks[:, b].numpy(), single.risks, TOL["SCALE-vs-single"], "risks"
        )


@pytest.mark.claim("SCALE-COND")
def test_batched_rk4_matches_single_engine():
    """Batched RK4 follows dynamics' RK4 integrator on each instance."""
    inst, batch, theta = _batch(n=4)
    h = _steps(inst, batch, theta)
    run = batched_gf(batch, theta, torch.as_tensor(h), 25, keep_path=True)
    for b in range(4):
        single = integrate(
            inst.model(b), inst.theta0(b), 25 * h[b], integrator=RK4(), h=h[b]
        )
        assert_close(
            run.thetas[:, :, b].numpy(),
            single.thetas,
            TOL["SCALE-vs-single"],
            f"RK4 path of instance {b}",
        )


@pytest.mark.claim("LIN-GF-CONS")
@pytest.mark.parametrize(
    "spec", [SPEC, ScaleSpec(m=2, d=3, n=10, k=2)], ids=["no-readout", "readout"]
)
def test_batched_midpoint_conserves_and_matches(spec):
    """Implicit midpoint conserves C (and C') to the solve tolerance; matches
    dynamics' ImplicitMidpoint."""
    inst, batch, theta = _batch(spec, n=4)
    # The fixed-point stage solve contracts by about (h/2) ||Hessian||; along this
    # readout flow the Hessian grows ~10x within 0.2/||H(theta0)|| of flow time.
    h = _steps(inst, batch, theta, 0.05)
    run = batched_gf(
        batch,
        theta,
        torch.as_tensor(h),
        8,
        integrator="midpoint",
        midpoint_tol=1e-15,
        keep_path=True,
    )
    assert bool(run.stats.ok.all())
    assert float(run.stats.drift.max()) <= TOL["SCALE-midpoint-drift"]
    if spec.readout:
        assert float(run.stats.drift_readout.max()) <= TOL["SCALE-midpoint-drift"]
    for b in range(4):
        single = integrate(
            inst.model(b),
            inst.theta0(b),
            8 * h[b],
            integrator=ImplicitMidpoint(tol=1e-15),
            h=h[b],
        )
        assert_close(
            run.thetas[:, :, b].numpy(),
            single.thetas,
            1e-11,
            f"midpoint path of instance {b}",
        )


def test_rk4_drift_shrinks_with_step():
    """RK4 is not conservative: its drift falls like h^4 (by > 8x when h halves)."""
    inst, batch, theta = _batch(n=6)
    h = torch.as_tensor(_steps(inst, batch, theta, 0.2))
    d1 = batched_gf(batch, theta, h, 20).stats.drift
    d2 = batched_gf(batch, theta, h / 2, 40).stats.drift
    assert bool((d2 < d1 / 8).all()), (d1, d2)


# ------------------------------------------------- generator, chunking, replay


def test_instances_reproducible_by_seed_and_index():
    """Any range or single index rebuilds the same instances; the floor holds."""
    spec = ScaleSpec(block=16)
    full = generate(spec, 7, 0, 40)
    part = generate(spec, 7, 13, 37)
    one = instance(spec, 7, 29)
    for name in ("X", "Y", "W0", "U0", "M_star", "category"):
        np.testing.assert_array_equal(getattr(part, name), getattr(full, name)[13:37])
        np.testing.assert_array_equal(getattr(one, name)[0], getattr(full, name)[29])
    big = generate(SPEC, 0, 0, 4000)
    smin = np.linalg.svd(np.eye(3) - big.W0, compute_uv=False)[:, -1]
    assert smin.min() >= SPEC.sigma_floor * (1 - 1e-12)
    frac = np.bincount(big.category, minlength=len(CATEGORIES)) / 4000
    np.testing.assert_allclose(frac, SPEC.mixture, atol=0.03)
    with pytest.raises(InvalidInputError):
        ScaleSpec(mixture=(0.5, 0.5, 0.0, 0.0, 0.1))


def _small_config(**kw):
    base = dict(
        instances=16,
        gf_steps=8,
        gd_steps=12,
        midpoint_every=5,
        midpoint_steps=3,
        refine_rounds=2,
        spec=ScaleSpec(block=8),
    )
    return ScaleConfig(**{**base, **kw})


def test_chunking_gives_identical_results():
    """Per-instance results do not depend on the chunk size (bit for bit)."""
    whole = run_scale(_small_config(chunk=16)).arrays
    parts = run_scale(_small_config(chunk=6)).arrays
    assert whole.keys() == parts.keys()
    for key in whole:
        np.testing.assert_array_equal(whole[key], parts[key], err_msg=key)


def test_chunk_size_from_memory_budget():
    cfg = ScaleConfig(instances=10**6, memory_budget=64 * 2**20)
    size = chunk_size(cfg)
    assert 1 <= size < 10**6
    assert chunk_size(dataclasses.replace(cfg, memory_budget=10)) == 1
    assert chunk_size(dataclasses.replace(cfg, chunk=123)) == 123


@pytest.mark.claim("SCALE-COND")
@pytest.mark.parametrize("method", ["rk4", "gd", "midpoint"])
def test_replay_agrees_with_batched(method):
    """replay(instance) rebuilds the instance in the single-instance engine; the two
    trajectories agree."""
    rp = replay(5, _small_config(), method=method)
    assert isinstance(rp.model, MatrixLinearDEQ)
    assert rp.max_theta_diff <= TOL["SCALE-replay"]
    assert rp.max_risk_rel_diff <= TOL["SCALE-replay"]
    assert np.min(rp.sigma_min2) >= rp.cond_lower


def test_lu_determinant_sign_follows_row_swaps():
    """One LU gives det with the permutation's sign: permutation matrices (odd and
    even) and a singular matrix, against NumPy."""
    mats = np.stack(
        [
            np.eye(4)[[1, 0, 2, 3]],
            np.eye(4)[[1, 2, 0, 3]],
            np.eye(4)[[3, 2, 1, 0]],
            np.ones((4, 4)),
        ]
    )
    inv, det = sm.inv(sm.to_batch_last(torch.as_tensor(mats)))
    np.testing.assert_array_equal(det.numpy(), np.round(np.linalg.det(mats)))
    assert_close(
        sm.to_batch_first(inv)[:3].numpy(), np.linalg.inv(mats[:3]), 1e-15, "inverse"
    )


def test_bmm_path_is_batch_invariant():
    """m = 8 products go through bmm; instance b's risk and gradient are the same bits
    in a batch of 16 and in a batch of 3 (chunk invariance of that path)."""
    spec = ScaleSpec(m=8, d=9, n=24, block=8)
    inst, batch, theta = _batch(spec, n=16)
    full = batch.evaluate(theta)
    idx = torch.tensor([2, 7, 11])
    part = batch.select(idx).evaluate(theta[:, idx])
    assert torch.equal(full.grad[:, idx], part.grad)
    assert torch.equal(full.risk[idx], part.risk)
    risk, grad = inst.model(7).value_and_grad(inst.theta0(7))
    assert_close(full.grad[:, 7].numpy(), grad, TOL["SCALE-vs-single"], "gradient")


@pytest.mark.parametrize("method", ["rk4", "gd"])
def test_instance_step_reproduces_the_chunk(method, monkeypatch):
    """instance_step recomputes one instance's step bit for bit without running its
    chunk: GD runs nothing, RK4 only that instance's RK4 runs (no GD, no midpoint)."""
    import dynamics.batched.scale as scale_mod

    cfg = _small_config(drift_target=1e-13)  # forces refinement rounds
    arrays = run_scale(cfg).arrays
    assert (arrays["gf_refinements"] > 0).any()
    calls = []
    real_gf = scale_mod.gradient_flow

    def counting_gf(batch, *args, **kwargs):
        calls.append(batch.B)
        return real_gf(batch, *args, **kwargs)

    def no_gd(*args, **kwargs):
        raise AssertionError("instance_step must not run gradient descent")

    monkeypatch.setattr(scale_mod, "gradient_flow", counting_gf)
    monkeypatch.setattr(scale_mod, "gradient_descent", no_gd)
    key = "gd_h" if method == "gd" else "gf_h"
    for i in (0, 5, int(np.argmax(arrays["gf_refinements"]))):
        assert instance_step(i, cfg, method) == arrays[key][i]
    assert all(b == 1 for b in calls)
    if method == "gd":
        assert not calls


# --------------------------------------------------------- float32 and devices


def test_float32_path():
    """float32 evaluation agrees with float64 to float32 accuracy; runs stay finite."""
    inst, b64, th64 = _batch(n=6)
    _, b32, th32 = _batch(n=6, dtype=torch.float32)
    assert th32.dtype == torch.float32
    e64, e32 = b64.evaluate(th64), b32.evaluate(th32)
    assert e32.risk.dtype == torch.float32
    assert_close(
        e32.risk.double().numpy(), e64.risk.numpy(), TOL["SCALE-float32"], "risk"
    )
    h = torch.as_tensor(_steps(inst, b64, th64))
    run = batched_gf(b32, th32, h.float(), 20)
    assert bool(run.stats.ok.all())
    assert float(run.stats.drift.max()) < 1e-4


def test_device_and_dtype_validation():
    with pytest.raises(InvalidInputError, match="device"):
        resolve_device("tpu")
    with pytest.raises(InvalidInputError, match="dtype"):
        resolve_dtype("float16")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="CUDA is not available"):
            resolve_device("cuda")
        with pytest.raises(InvalidInputError, match="CUDA"):
            run_scale(ScaleConfig(instances=2, device="cuda"))
    with pytest.raises(ShapeError):
        BatchedMatrixDEQ(np.zeros((2, 3, 4)), np.zeros((2, 3, 2)), 3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (no GPU here)")
def test_cuda_matches_cpu():
    """The batched engine on CUDA agrees with the CPU engine."""
    cpu = run_scale(_small_config()).arrays
    gpu = run_scale(_small_config(device="cuda")).arrays
    for key in ("gf_drift", "gf_cond_margin", "gf_rate_log_margin", "gd_cond_margin"):
        np.testing.assert_allclose(
            gpu[key], cpu[key], rtol=1e-6, atol=1e-12, err_msg=key
        )

"""Training experiments (dynamics.training): one short step per arm, the RevDEQ arm's
exact gradient, parameter matching of the explicit arms, failure counting and
bit-identical resume from a checkpoint. Everything runs on tiny generated data."""

from __future__ import annotations

import math

import pytest
import torch

from dynamics.gradients import Unrolled
from dynamics.layer import DEQLayer
from dynamics.solvers import Reversible
from dynamics.training import trainer
from dynamics.training.arms import ALL_ARMS, build_model
from dynamics.training.config import get_config
from dynamics.training.data_images import load_images
from dynamics.training.data_text import load_text
from dynamics.training.metrics import compare, flat_grad
from dynamics.training.models import ConvBlock, n_params
from dynamics.training.tasks import ImageTask, TextTask

#: Explicit untied arm: parameter count within this ratio of the DEQ's (stated in
#: TrainConfig.untied_ratio and checked here for every task and scale).
UNTIED_RATIO = (0.85, 1.15)


def _image_task(**changes):
    cfg = get_config("images").replace(
        batch_size=16,
        channels=8,
        hidden=8,
        n_test=32,
        probe_batch=4,
        budget_s=None,
        eval_every_s=None,
        eval_every_steps=4,
        **changes,
    )
    data = load_images(None, 64, seed=0, source="synthetic", synthetic_size=200)
    return ImageTask(cfg, data), cfg


def _text_task():
    cfg = get_config("text").replace(
        batch_size=4,
        embed=16,
        heads=2,
        mlp_hidden=32,
        context=16,
        n_test=8,
        probe_batch=2,
        budget_s=None,
        eval_every_s=None,
        eval_every_steps=4,
    )
    return TextTask(cfg, load_text("builtin")), cfg


def _perturb(model, scale=0.05, seed=1):
    """Move every parameter off its initial value: at initialisation GroupNorm biases
    are exactly 0, so f(0) sits on ReLU kinks where the reversible backward (which
    reconstructs z_0 = O(1e-16) instead of 0) and autograd may pick different
    subgradients."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.mark.parametrize("arm", ALL_ARMS)
def test_one_training_step_per_arm(arm):
    """One step of every arm: finite loss, parameters move, NFE counted as specified."""
    task, cfg = _image_task()
    torch.manual_seed(0)
    model, info = build_model(task, cfg, arm)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    st = trainer.ArmState()
    inp, tgt = task.batch(0, 0, seed=0)
    loss = trainer.train_step(model, task, info, opt, inp, tgt, cfg, st)
    assert math.isfinite(loss) and st.nonfinite_steps == 0
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    n = cfg.deq.rev_steps
    expected_fwd = {"revdeq": 1 + 2 * n, "tied": 1 + 2 * n, "untied": 1 + 2 * n}
    if arm in expected_fwd:
        assert st.nfe_fwd == expected_fwd[arm]
    if arm == "revdeq":  # REV-NFE: backward = 2N evaluations + 2N VJPs
        assert (st.nfe_bwd_eval, st.nfe_bwd_vjp) == (2 * n, 2 * n)
    if arm in ("deq_ift", "phantom", "jfb"):
        assert 2 <= st.nfe_fwd and st.nfe_bwd_vjp >= 1


@pytest.mark.parametrize(
    "arm", ["revdeq", "deq_ift", "deq_ift_jr", "phantom", "tied", "untied"]
)
def test_loss_decreases_on_fixed_batch(arm):
    """Eight steps on one fixed batch lower its loss, for every arm."""
    task, cfg = _image_task()
    torch.manual_seed(0)
    model, info = build_model(task, cfg, arm)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    inp, tgt = task.batch(0, 0, seed=0)
    st = trainer.ArmState()
    losses = [
        trainer.train_step(model, task, info, opt, inp, tgt, cfg, st) for _ in range(8)
    ]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.claim("REV-EXACT")
@pytest.mark.parametrize("which", ["images", "text"])
def test_revdeq_arm_gradient_equals_unrolled(which):
    """REV-EXACT on the real models: the RevDEQ arm's gradient of every parameter (f,
    encoder or embeddings, head) equals autograd through the same N-step reversible
    iteration."""
    task, cfg = _image_task() if which == "images" else _text_task()
    torch.manual_seed(0)
    model, _ = build_model(task, cfg, "revdeq")
    _perturb(model)
    model.eval()
    inp, tgt = task.probe()
    task.loss(model(inp), tgt).backward()
    g_rev = flat_grad(model)
    model.zero_grad()
    unrolled = DEQLayer(
        model.core.f,
        Reversible(beta=cfg.deq.rev_beta),
        Unrolled(),
        tol=0.0,
        max_steps=cfg.deq.rev_steps,
        throw=False,
    )
    with model.core.using(unrolled):
        task.loss(model(inp), tgt).backward()
    g_unr = flat_grad(model)
    c = compare(g_rev, g_unr)
    assert c["rel_err"] <= 1e-8, c


@pytest.mark.parametrize("which", ["images", "text"])
@pytest.mark.parametrize("scale", ["cpu", "full"])
def test_explicit_arm_parameter_counts(which, scale):
    """(d) has exactly the DEQ's parameters; (e) is within UNTIED_RATIO of them."""
    if which == "images":
        cfg = get_config("images", scale)
        task = ImageTask(cfg, load_images(100, 50, 0, source="synthetic"))
    else:
        cfg = get_config("text", scale)
        task = TextTask(cfg, load_text("builtin"))
    assert tuple(cfg.untied_ratio) == UNTIED_RATIO
    with torch.device("meta"):
        counts = {
            a: n_params(build_model(task, cfg, a)[0])
            for a in ("revdeq", "tied", "untied")
        }
    assert counts["tied"] == counts["revdeq"]
    ratio = counts["untied"] / counts["revdeq"]
    assert UNTIED_RATIO[0] <= ratio <= UNTIED_RATIO[1], counts


def test_jacobian_penalty_is_hutchinson_estimate():
    """The regulariser's mean over probes tends to ||J_f(z*)||_F^2 / d
    (docs/theory/reversible.md)."""
    torch.manual_seed(0)
    f = ConvBlock(2, 2, group_size=2)
    x = torch.randn(1, 2, 3, 3)
    z = torch.randn(1, 2, 3, 3)
    from dynamics.training.arms import DEQCore

    core = DEQCore(f, DEQLayer(f, Reversible(0.8), tol=0.0, max_steps=1), keep_io=True)
    core._io = (x, z)
    jac = torch.autograd.functional.jacobian(lambda u: f(u, x), z).reshape(18, 18)
    exact = float(jac.pow(2).sum()) / 18
    # relative std of one probe is at most sqrt(2); 400 probes: at most 7%
    est = core.jacobian_penalty(400).detach().item()
    assert abs(est - exact) <= 0.25 * exact, (est, exact)


def test_nonfinite_steps_are_counted_not_applied(monkeypatch):
    """A step whose loss is NaN is skipped and counted; the parameters do not move."""
    task, cfg = _image_task()
    torch.manual_seed(0)
    model, info = build_model(task, cfg, "revdeq")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    monkeypatch.setattr(task, "loss", lambda out, tgt: out.sum() * math.nan)
    st = trainer.ArmState()
    inp, tgt = task.batch(0, 0, seed=0)
    assert math.isnan(trainer.train_step(model, task, info, opt, inp, tgt, cfg, st))
    assert st.nonfinite_steps == 1
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


@pytest.mark.parametrize("arm", ["revdeq", "deq_ift_jr"])
def test_resume_is_bit_identical(tmp_path, monkeypatch, arm):
    """A run interrupted mid-epoch and resumed from its last checkpoint ends with
    exactly the parameters and test metric of an uninterrupted run (the Jacobian
    regulariser's random probes included: the RNG state is checkpointed)."""
    task, cfg = _image_task(max_epochs=2)
    spe = task.steps_per_epoch()
    full = trainer.train_arm(
        task,
        cfg,
        arm,
        seed=3,
        out_dir=tmp_path / "a",
        probes=False,
        progress=False,
        log=lambda m: None,
    )
    assert full["steps"] == 2 * spe and full["status"] == "done"

    real_step = trainer.train_step
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == spe + 2:  # mid second epoch, after a checkpoint
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_step", crashing)
    with pytest.raises(KeyboardInterrupt):
        trainer.train_arm(
            task,
            cfg,
            arm,
            seed=3,
            out_dir=tmp_path / "b",
            probes=False,
            progress=False,
            log=lambda m: None,
        )
    monkeypatch.setattr(trainer, "train_step", real_step)
    blob = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert blob["state"]["step"] >= spe + 2 - cfg.eval_every_steps  # lost < one round
    resumed = trainer.train_arm(
        task,
        cfg,
        arm,
        seed=3,
        out_dir=tmp_path / "b",
        resume=True,
        probes=False,
        progress=False,
        log=lambda m: None,
    )
    assert resumed["steps"] == full["steps"]
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["test_acc"] == full["test_acc"]


def test_run_task_writes_logs_and_table(tmp_path):
    """run_task on two arms: summary.json, results.md, metrics.csv per arm, gradient
    probes for the DEQ arm (the RevDEQ gradient error against its own unroll is
    tiny)."""
    task, cfg = _image_task(max_epochs=1)
    summary = trainer.run_task(
        task,
        cfg,
        arms=("revdeq", "tied"),
        seed=0,
        out_dir=tmp_path,
        progress=False,
        log=lambda m: None,
    )
    assert (tmp_path / "summary.json").is_file()
    table = (tmp_path / "results.md").read_text()
    assert "(a) RevDEQ" in table and "(d) explicit weight-tied" in table
    for arm in ("revdeq", "tied"):
        assert (tmp_path / arm / "metrics.csv").is_file()
    hist = summary["arms"]["revdeq"]["history"]
    assert [r["step"] for r in hist][:2] == [0, 4]
    assert all(r["grad_err_unrolled"] <= 1e-8 for r in hist[1:])
    assert summary["arms"]["revdeq"]["saved_mb"] > 0
    from proofs_check.figures import training as figs

    assert figs.gradient_error(summary, tmp_path / "g.png") == str(tmp_path / "g.png")


def test_cli_quick(tmp_path):
    """``deq-dynamics train images --quick`` end to end (two arms, tiny budget)."""
    from proofs_check.cli import main

    rc = main(
        [
            "train",
            "images",
            "--quick",
            "--arms",
            "revdeq",
            "untied",
            "--budget",
            "0.3",
            "--out",
            str(tmp_path / "run"),
            "--figures",
            str(tmp_path),
            "--memory-steps",
            "1",
            "2",
            "--device",
            "cpu",
            "--no-probes",
        ]
    )
    assert rc == 0
    assert (tmp_path / "train-images-quick-metric-vs-cost.png").is_file()
    assert (tmp_path / "train-images-quick-metric-vs-cost.pdf").is_file()
    assert not (tmp_path / "train-images-quick-grad-error.png").exists()
    assert (tmp_path / "train-images-quick-memory-vs-N.png").is_file()
    assert (tmp_path / "run" / "memory_vs_steps.json").is_file()

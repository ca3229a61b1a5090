"""Arms and configurations of the training experiments as data
(dynamics.training.arms, dynamics.training.config): each arm's layer is built from its
solver and gradient objects; image and text configs are separate; presets live in one
table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dynamics.errors import InvalidInputError, UnknownOptionError
from dynamics.gradients import JFB, ImplicitIFT, Phantom, ReversibleExact, Unrolled
from dynamics.solvers import Anderson, Reversible
from dynamics.training.arms import (
    ALL_ARMS,
    ARMS,
    DEFAULT_ARMS,
    arm_info,
    make_layer,
    reference_layers,
)
from dynamics.training.config import (
    PRESETS,
    ImageConfig,
    TextConfig,
    get_config,
    get_preset,
)


class _Block(nn.Module):
    def forward(self, z, x):
        return 0.5 * z + x


DEQ = get_config("images").deq


@pytest.mark.parametrize(
    "name, solver, gradient",
    [
        ("revdeq", Reversible, ReversibleExact),
        ("deq_ift", Anderson, ImplicitIFT),
        ("deq_ift_jr", Anderson, ImplicitIFT),
        ("phantom", Anderson, Phantom),
        ("jfb", Anderson, JFB),
    ],
)
def test_deq_arm_layer_is_built_from_its_solver_and_gradient(name, solver, gradient):
    """Each DEQ arm's layer holds the arm's solver and gradient objects with the
    settings of DEQSettings; RevDEQ runs exactly N steps on a float64 state."""
    layer = make_layer(name, _Block(), DEQ)
    assert type(layer.solver) is solver
    assert type(layer.gradient) is gradient
    if name == "revdeq":
        assert layer.solver.beta == DEQ.rev_beta
        assert (layer.tol, layer.max_steps) == (0.0, DEQ.rev_steps)
        assert layer.state_dtype == torch.float64
    else:
        assert (layer.solver.m, layer.solver.beta) == (
            DEQ.anderson_m,
            DEQ.anderson_beta,
        )
        assert (layer.tol, layer.max_steps) == (DEQ.fwd_tol, DEQ.fwd_max_steps)
        assert layer.state_dtype == torch.float32
    if gradient is ImplicitIFT:
        assert (layer.gradient.tol, layer.gradient.max_steps) == (
            DEQ.bwd_tol,
            DEQ.bwd_max_steps,
        )
    if gradient is Phantom:
        assert (layer.gradient.k, layer.gradient.lam) == (
            DEQ.phantom_k,
            DEQ.phantom_tau,
        )


def test_unrolled_reference_shares_the_arm_solver_and_forward_settings():
    """The unrolled reference of an arm = its solver, tol and cap, with Unrolled()."""
    for name in ("revdeq", "phantom"):
        arm = make_layer(name, _Block(), DEQ)
        ref = reference_layers(name, _Block(), DEQ)["unrolled"]
        assert type(ref.gradient) is Unrolled
        assert ref.solver == arm.solver
        assert (ref.tol, ref.max_steps, ref.state_dtype) == (
            arm.tol,
            arm.max_steps,
            arm.state_dtype,
        )


def test_only_the_regularised_arm_carries_the_jacobian_weight():
    """arm_info fills the Jacobian weight from DEQSettings for deq_ift_jr only."""
    weights = {n: arm_info(n, DEQ).jac_weight for n in ALL_ARMS}
    assert weights == {
        n: (DEQ.jac_weight if n == "deq_ift_jr" else 0.0) for n in ALL_ARMS
    }
    assert DEFAULT_ARMS == ALL_ARMS[:-1] and ALL_ARMS[-1] == "jfb"
    assert {n for n, a in ARMS.items() if a.explicit} == {"tied", "untied"}


def test_unknown_or_explicit_arm_is_rejected_by_name():
    with pytest.raises(UnknownOptionError, match="tied"):
        make_layer("tied", _Block(), DEQ)
    with pytest.raises(UnknownOptionError, match="nope"):
        arm_info("nope", DEQ)


def test_image_and_text_configs_hold_only_their_fields():
    """An image config has no text fields and vice versa; a class refuses the other
    task."""
    img, txt = get_config("images"), get_config("text")
    assert isinstance(img, ImageConfig) and isinstance(txt, TextConfig)
    assert "embed" not in img.to_dict() and "channels" not in txt.to_dict()
    with pytest.raises(TypeError):
        img.replace(embed=8)
    with pytest.raises(InvalidInputError, match="TextConfig"):
        txt.replace(task="images")


def test_quick_preset_changes_exactly_its_fields():
    """quick: small model and 3 s per arm, probe_max_steps 20, one thread unless the
    user says otherwise; every other field (the scale's DEQ settings included) kept."""
    quick = get_preset("quick")
    for task, model in (("images", {"channels": 16}), ("text", {"context": 32})):
        for scale in ("cpu", "full"):
            base = get_config(task, scale)
            cfg = quick.apply(base)
            assert cfg.budget_s == 3.0 and cfg.threads == 1
            assert {k: getattr(cfg, k) for k in model} == model
            assert cfg.deq.probe_max_steps == 20
            assert cfg.deq.rev_steps == base.deq.rev_steps
            assert (cfg.lr, cfg.grad_clip) == (base.lr, base.grad_clip)
    assert quick.apply(get_config("text"), threads=3).threads == 3
    assert PRESETS["default"].apply(get_config("text")) == get_config("text")
    with pytest.raises(UnknownOptionError, match="nope"):
        get_preset("nope")

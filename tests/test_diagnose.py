"""dynamics.diagnosis: gradient quality of every method at one shared fixed point.

Oracles: (i) on ``f(z, x) = v z + U x`` (Jacobian v I) every approximate method's
gradient is c(v) times the exact one, with c from the method's own closed form, so
cosine = sign c(v), norm ratio = |c(v)|, inner = c(v); (ii) on a contraction of known
factor L the dense IFT and the unrolled Picard gradient agree within a stated rounding
model; (iii) exact methods have cosine 1 to rounding.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dynamics.diagnosis import (
    DiagnosticInputError,
    FixedPointNotFoundError,
    default_methods,
    diagnose,
)
from dynamics.gradients import (
    JFB,
    Damped,
    DenseIFT,
    ImplicitIFT,
    Neumann,
    Phantom,
    ReversibleExact,
)
from dynamics.layer import DEQLayer
from dynamics.solvers import Anderson, Picard

EPS = torch.finfo(torch.float64).eps


class TanhBlock(nn.Module):
    """f(z, x) = tanh(W z + U x + b) with ||W||_2 = L: an L-contraction (tanh' <= 1)."""

    def __init__(self, d: int = 6, L: float = 0.5, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(d, d, generator=g)
        self.W = nn.Parameter(L * w / torch.linalg.matrix_norm(w, 2))
        self.U = nn.Parameter(torch.randn(d, d, generator=g) / math.sqrt(d))
        self.b = nn.Parameter(0.1 * torch.randn(d, generator=g))

    def forward(self, z, x):
        return torch.tanh(z @ self.W.T + x @ self.U.T + self.b)


class ScalarLinear(nn.Module):
    """f(z, x) = v z + U x: Jacobian v I, so (I - J^T)^{-1} = I / (1 - v)."""

    def __init__(self, v: float, d: int = 4):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.v = nn.Parameter(torch.tensor(float(v), dtype=torch.float64))
        self.U = nn.Parameter(torch.randn(d, d, generator=g, dtype=torch.float64))

    def forward(self, z, x):
        return self.v * z + x @ self.U.T


def _x(b=5, d=6, seed=2):
    return torch.randn(b, d, generator=torch.Generator().manual_seed(seed))


def test_exact_methods_have_cosine_one_and_references_agree():
    """Dense IFT, tight iterative IFT and the reversible adjoint: cosine 1 and norm
    ratio 1 to rounding; the dense IFT and 400 unrolled Picard steps agree within the
    rounding model of a contraction of factor L = 1/2 (see below)."""
    L, tol, n_unroll = 0.5, 1e-10, 400
    diag = diagnose(
        TanhBlock(L=L),
        _x(),
        methods=(
            DenseIFT(),
            ImplicitIFT(tol=1e-13, max_steps=200),
            ReversibleExact(recon_threshold=None),
        ),
        tol=tol,
        unroll_steps=n_unroll,
    )
    assert diag.converged and diag.residual <= tol
    # Rounding model: both gradients sit at points within residual/(1 - L) of the
    # true z* (f is an L-contraction), the gradient is Lipschitz in z* with a
    # constant of order 1/(1 - L) (tanh'' <= 1, weights O(1)), the Picard truncation
    # is L^N / (1 - L) (1e-120 here), and each of the N unrolled steps adds ~eps.
    bound = 10 * (tol / (1 - L) + n_unroll * EPS) / (1 - L)
    assert diag.reference_rel_err <= bound, (diag.reference_rel_err, bound)
    assert diag.references_agree
    dense = diag.method("ift-dense")
    assert abs(dense.cosine - 1) <= 10 * EPS and abs(dense.norm_ratio - 1) <= 10 * EPS
    for label in ("ift-implicit(tol=1e-13)", "reversible"):
        row = diag.method(label)
        # each stops within tol of the same point: same bound as the references
        assert abs(row.cosine - 1) <= bound and abs(row.norm_ratio - 1) <= bound
        assert row.descent


@pytest.mark.parametrize("v", [0.6, -0.7, 1.5])
def test_linear_block_factor_is_the_closed_form_c(v):
    """f = v z + U x: each method's gradient = c(v) x exact, c from linear_factor."""
    methods = (JFB(), Neumann(2), Neumann(3), Damped(3, 0.5), Phantom(4, 0.5))
    diag = diagnose(
        ScalarLinear(v),
        _x(4, 4),
        methods=methods,
        solver=Anderson(m=3),
        unroll_steps=50,
        allow_unconverged=False,
    )
    assert diag.converged
    for m, row in zip(methods, diag.methods):
        c = float(m.linear_factor(v))
        # c(v) is a short polynomial: a few ulps; the point is within tol of z*,
        # where the factor identity holds exactly (J is the same at every z)
        assert row.inner == pytest.approx(c, rel=1e-9, abs=1e-12), m
        assert row.norm_ratio == pytest.approx(abs(c), rel=1e-9)
        assert row.cosine == pytest.approx(math.copysign(1.0, c), abs=1e-12)
        assert row.descent == (c > 0)
        for cos in row.cosine_per_tensor.values():
            assert cos == pytest.approx(math.copysign(1.0, c), abs=1e-12)


def test_layer_input_and_model_untouched():
    """A float32 DEQLayer is diagnosed through a float64 copy; the user's module
    keeps its dtype and gets no gradients; markdown and dict carry every method."""
    layer = DEQLayer(TanhBlock().float(), Picard(), ImplicitIFT(), tol=1e-3)
    diag = diagnose(layer, _x())
    assert layer.f.W.dtype == torch.float32 and layer.f.W.grad is None
    labels = [m.label for m in diag.methods]
    assert len(labels) == len(default_methods())
    md = diag.to_markdown()
    assert all(lab in md for lab in labels)
    d = diag.to_dict()
    assert d["status"] == "converged" and d["references_agree"]
    jfb = diag.method("jfb")
    assert 0.5 < jfb.cosine < 1 and jfb.saved_bytes > 0 and jfb.seconds > 0


class Expanding(nn.Module):
    """f = 2 z + x: the fixed point z* = -x exists but Picard diverges from it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(2.0))

    def forward(self, z, x):
        return self.a * z + x


def test_unsolvable_fixed_point_raises_or_reports():
    with pytest.raises(FixedPointNotFoundError, match="allow_unconverged"):
        diagnose(Expanding(), _x(), solver=Picard(), max_steps=20)
    diag = diagnose(
        Expanding(),
        _x(),
        solver=Picard(),
        max_steps=5,
        methods=(JFB(),),
        unroll_steps=5,
        allow_unconverged=True,
    )
    assert diag.status == "not-converged" and not diag.converged


class WithBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)
        self.bn = nn.BatchNorm1d(6)

    def forward(self, z, x):
        return 0.5 * torch.tanh(self.bn(self.lin(z) + x))


class CastsToFloat32(TanhBlock):
    def forward(self, z, x):
        return super().forward(z, x).float()


def test_bad_inputs_raise_named_errors():
    with pytest.raises(DiagnosticInputError, match="BatchNorm1d.*eval"):
        diagnose(WithBatchNorm(), _x())
    diagnose(WithBatchNorm().eval(), _x(), methods=(JFB(),))  # eval mode is fine
    with pytest.raises(DiagnosticInputError, match="float32"):
        diagnose(CastsToFloat32(), _x())
    with pytest.raises(DiagnosticInputError, match="nn.Module"):
        diagnose(lambda z, x: z, _x())
    with pytest.raises(DiagnosticInputError, match="floating"):
        diagnose(TanhBlock(), torch.ones(5, 6, dtype=torch.int64))
    with pytest.raises(DiagnosticInputError, match="scalar"):
        diagnose(TanhBlock(), _x(), loss=lambda z: z, methods=(JFB(),))
    with pytest.raises(DiagnosticInputError, match="gradient-method"):
        diagnose(TanhBlock(), _x(), methods=("jfb",))
    with pytest.raises(DiagnosticInputError, match="no trainable"):
        diagnose(TanhBlock().requires_grad_(False), _x())


def test_cli_diagnose_writes_reports_and_refuses_overwrite(tmp_path, capsys):
    """`diagnose images --quick` on generated 8x8 data (a 16-dim state): JSON and
    markdown written; a second run refuses to overwrite without --overwrite."""
    import json

    from proofs_check.cli import main

    out, md = tmp_path / "d.json", tmp_path / "d.md"
    argv = ["diagnose", "images", "--quick", "--data", "synthetic", "--batch", "4"]
    assert main([*argv, "--json", str(out), "--markdown", str(md)]) == 0
    report = json.loads(out.read_text())["diagnosis"]
    assert report["status"] == "converged" and report["references_agree"]
    assert {m["label"] for m in report["methods"]} >= {"jfb", "damped-5", "reversible"}
    assert "| jfb |" in md.read_text()
    assert main([*argv, "--json", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--json", str(out), "--overwrite"]) == 0


def test_cli_along_training_quick(tmp_path):
    """--along-training: records at steps 0, 2, 4 and the figure (PNG + PDF)."""
    import json

    from proofs_check.cli import main

    out = tmp_path / "a.json"
    argv = ["diagnose", "images", "--quick", "--data", "synthetic", "--batch", "4"]
    argv += ["--along-training", "--steps", "4", "--every", "2"]
    assert main([*argv, "--json", str(out), "--figures", str(tmp_path)]) == 0
    payload = json.loads(out.read_text())
    assert [r["step"] for r in payload["records"]] == [0, 2, 4]
    png = tmp_path / "diagnose-cosine-images-quick.png"
    assert png.exists() and png.with_suffix(".pdf").exists()


def test_readme_example_runs():
    """The README's "How wrong is my gradient?" example runs as written."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    m = re.search(r"<!-- example: diagnose -->\n```python\n(.*?)```", readme, re.S)
    assert m, "README example 'diagnose' not found"
    exec(compile(m.group(1), "<README diagnose>", "exec"), {"__name__": "readme"})


def test_cli_diagnose_text_quick(tmp_path):
    """The text model (built-in paragraph, tanh causal block) converges and its two
    exact gradients agree."""
    import json

    from proofs_check.cli import main

    out = tmp_path / "t.json"
    argv = ["diagnose", "text", "--quick", "--data", "builtin", "--batch", "2"]
    assert main([*argv, "--json", str(out)]) == 0
    report = json.loads(out.read_text())["diagnosis"]
    assert report["status"] == "converged" and report["references_agree"]

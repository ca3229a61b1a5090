"""CLI consistency: --claims in both spellings, --quick meaning a reduced run named
as such everywhere, progress bars only on terminals."""

from __future__ import annotations

import io
import json

from proofs_check.cli import build_parser
from proofs_check.commands import reproduce as rep
from proofs_check.commands.verify import _flatten
from proofs_check.progress import progress_bar


def _claims(*argv):
    return _flatten(build_parser().parse_args(["verify", *argv]).claims)


def test_claims_comma_and_space_separated_mean_the_same():
    a = _claims("--claims", "LIN-GF-CONS,LIN-GD-DRIFT", "--claims", "APX-*")
    b = _claims("--claims", "LIN-GF-CONS", "LIN-GD-DRIFT", "APX-*")
    assert a == b == ["LIN-GF-CONS", "LIN-GD-DRIFT", "APX-*"]
    assert _claims() is None


def test_verify_quick_is_the_quick_profile():
    p = build_parser()
    assert p.parse_args(["verify", "--quick"]).profile == "quick"
    assert p.parse_args(["verify", "--profile", "full"]).profile == "full"
    assert p.parse_args(["verify", "--no-progress"]).quiet


def test_reproduce_quick_names_reduced_runs_as_such(tmp_path):
    """reproduce --quick: reduced sizes, results and figures named *-quick."""
    assert rep.quick_options("apx-lin")["starts"].__len__() == 1
    assert rep.quick_options("leg-linear") == {}  # CI-sized already: not renamed
    payload, path = rep.reproduce(
        "leg-sigmoid",
        json_path=tmp_path / "leg-sigmoid-quick.json",
        figures_dir=tmp_path / "figs",
        progress=False,
        quick=True,
    )
    assert payload["quick"] is True and payload["quick_options"] == {"steps": 200}
    data = json.loads(path.read_text())
    assert data["steps"] == 200 and len(data["risks"]) == 201
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == ["leg-sigmoid-200-quick.pdf", "leg-sigmoid-200-quick.png"]


def test_progress_bar_only_on_a_terminal():
    assert progress_bar("verify", io.StringIO()) is None

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert progress_bar("verify", Tty()) is not None

"""Training outputs are safe (dynamics.training.trainer): checkpoints load with
``weights_only=True`` and a planted pickle is refused, not run; damaged checkpoints and
configuration mismatches raise named errors naming the file and the key; a second run
never silently replaces the first; a crash mid-write leaves the previous files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from test_training import _image_task

from dynamics.errors import CheckpointError, ConfigMismatchError, OutputPathError
from dynamics.training import trainer


def _train(task, cfg, out, name="tied", **kw):
    return trainer.train_arm(
        task,
        cfg,
        name,
        seed=0,
        out_dir=out,
        probes=False,
        progress=False,
        log=lambda m: None,
        **kw,
    )


def _run(task, cfg, out, arms, **kw):
    return trainer.run_task(
        task, cfg, arms=arms, seed=0, out_dir=out, probes=False, progress=False,
        log=lambda m: None, **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short run of the 'tied' arm (its checkpoint is copied by the tests)."""
    task, cfg = _image_task(max_epochs=1)
    out = tmp_path_factory.mktemp("trained")
    _train(task, cfg, out)
    return task, cfg, out / "checkpoint.pt"


class _Planted:
    """Unpickling this runs a shell command (the attack of a malicious checkpoint)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_written_checkpoint_loads_with_weights_only(trained):
    _, _, ckpt = trained
    blob = torch.load(ckpt, weights_only=True)
    assert set(trainer.CHECKPOINT_KEYS) <= set(blob)
    assert blob["meta"]["arm"] == "tied" and isinstance(blob["meta"]["config"], dict)


def test_planted_pickle_is_refused_and_not_run(tmp_path, trained):
    """The old --resume used weights_only=False, so this file ran `touch`."""
    task, cfg, ckpt = trained
    marker = tmp_path / "pwned"
    blob = torch.load(ckpt, weights_only=True)
    blob["meta"]["payload"] = _Planted(marker)
    out = tmp_path / "run"
    out.mkdir()
    torch.save(blob, out / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="refused") as info:
        _train(task, cfg, out, resume=True)
    assert str(out / "checkpoint.pt") in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["empty", "truncated", "not-a-checkpoint"])
def test_damaged_checkpoint_names_the_file(tmp_path, trained, damage):
    task, cfg, ckpt = trained
    out = tmp_path / "run"
    out.mkdir()
    bad = out / "checkpoint.pt"
    data = ckpt.read_bytes()
    if damage == "empty":
        bad.write_bytes(b"")
    elif damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    else:
        torch.save({"model": {}}, bad)
    with pytest.raises(CheckpointError) as info:
        _train(task, cfg, out, resume=True)
    assert str(bad) in str(info.value)


def test_resume_mismatch_names_the_key_and_ignores_threads(tmp_path, trained):
    task, cfg, ckpt = trained
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(ckpt.read_bytes())
    with pytest.raises(ConfigMismatchError, match=r"\blr = 0\.001 there, 0\.5 now"):
        _train(task, cfg.replace(lr=0.5), out, resume=True)
    deq = cfg.deq.__class__(**{**cfg.to_dict()["deq"], "fwd_tol": 0.123})
    with pytest.raises(ConfigMismatchError, match=r"deq\.fwd_tol"):
        _train(task, cfg.replace(deq=deq), out, resume=True)
    # --threads does not change the results: not a mismatch (the run is done already)
    done = _train(task, cfg.replace(threads=3), out, resume=True)
    assert done["status"] == "done"


def test_config_difference_is_recursive():
    old = {"a": 1, "threads": 2, "deq": {"tol": 1e-4, "steps": [1, 2]}}
    assert trainer.config_difference(old, {**old, "threads": 7}) is None
    assert trainer.config_difference(old, {**old, "deq": {"tol": 1e-4}}) == "deq.steps"
    assert trainer.config_difference(old, {**old, "a": 2}) == "a"


def test_non_empty_out_is_refused_without_resume_or_overwrite(tmp_path):
    """A second run into the same --out used to replace the first run's checkpoints
    and keep only its own arms in summary.json and results.md."""
    task, cfg = _image_task(max_epochs=1)
    _run(task, cfg, tmp_path, ("tied",))
    first = (tmp_path / "tied" / "checkpoint.pt").read_bytes()
    with pytest.raises(OutputPathError, match="not empty"):
        _run(task, cfg, tmp_path, ("untied",))
    assert (tmp_path / "tied" / "checkpoint.pt").read_bytes() == first
    # --resume adds the arm and the summary keeps both
    summary = _run(task, cfg, tmp_path, ("untied",), resume=True)
    assert list(summary["arms"]) == ["tied", "untied"]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert list(saved["arms"]) == ["tied", "untied"]
    table = (tmp_path / "results.md").read_text()
    assert "(d) explicit weight-tied" in table and "(e) explicit untied" in table
    assert (tmp_path / "tied" / "checkpoint.pt").read_bytes() == first


def test_summary_does_not_merge_arms_of_another_configuration(tmp_path):
    task, cfg = _image_task(max_epochs=1)
    _run(task, cfg, tmp_path, ("tied",))
    summary = _run(task, cfg.replace(lr=0.5), tmp_path, ("untied",), overwrite=True)
    assert list(summary["arms"]) == ["untied"]


class _Crash(Exception):
    pass


def test_crash_mid_write_leaves_previous_outputs(tmp_path, monkeypatch):
    """Fault injection: every writer of the trainer is made to write half of its data
    and die; summary.json, results.md, metrics.csv and checkpoint.pt keep the
    previous run's content and no temporary file is left behind."""
    task, cfg = _image_task(max_epochs=1)
    _run(task, cfg, tmp_path, ("tied",))
    names = ["summary.json", "results.md", "tied/metrics.csv", "tied/checkpoint.pt"]
    before = {n: (tmp_path / n).read_bytes() for n in names}

    real_open, real_save = open, torch.save

    class HalfFile:
        def __init__(self, fh):
            self.fh = fh

        def write(self, text):
            self.fh.write(text[: len(text) // 2])
            self.fh.flush()
            raise _Crash("killed mid-write")

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def half_save(obj, path, *a, **k):
        real_save(obj, path, *a, **k)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        raise _Crash("killed mid-write")

    monkeypatch.setattr(
        "builtins.open",
        lambda f, mode="r", *a, **k: (
            HalfFile(real_open(f, mode, *a, **k))
            if "w" in mode
            else real_open(f, mode, *a, **k)
        ),
    )
    monkeypatch.setattr(trainer.torch, "save", half_save)
    for writer in (
        lambda: trainer.atomic_write_text(tmp_path / "summary.json", "{}" * 1000),
        lambda: trainer.atomic_write_text(tmp_path / "results.md", "x" * 1000),
        lambda: trainer._write_csv(tmp_path / "tied" / "metrics.csv", [{"a": 1}] * 99),
        lambda: _run(task, cfg, tmp_path, ("tied",), overwrite=True),
    ):
        with pytest.raises(_Crash):
            writer()
    monkeypatch.undo()
    for n in names:
        assert (tmp_path / n).read_bytes() == before[n], n
    leftovers = [
        p.name
        for p in tmp_path.rglob("*")
        if ".tmp" in p.name or p.name.startswith(".")
    ]
    assert leftovers == []
    torch.load(tmp_path / "tied" / "checkpoint.pt", weights_only=True)

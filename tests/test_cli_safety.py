"""The command line on bad input: every mistake is reported in one line with exit code
2 *before* any work is done, nothing is overwritten unasked, and interrupting or
piping the output never ends in a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import dynamics.training as training
from dynamics.training.trainer import Progress
from proofs_check.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _refused(argv, capsys, match):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert match in err and "Traceback" not in err, err
    return err


# -- output paths are checked before the run -----------------------------------------


@pytest.fixture
def no_run(monkeypatch):
    """Make any real run fail loudly: the checks must stop the command before it."""

    def boom(*a, **k):
        raise AssertionError("the run started before the output paths were checked")

    import proofs_check.commands.verify as verify_cmd
    import proofs_check.protocols as protocols
    from dynamics.batched import scale

    monkeypatch.setattr(verify_cmd, "run", boom)
    monkeypatch.setattr(protocols.ProtocolContext, "__init__", boom)
    monkeypatch.setattr(scale, "run_scale", boom)
    monkeypatch.setattr(training, "make_task", boom)


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "--claims", "LIN-GRAD", "--json", "{d}"],
        ["verify", "--claims", "LIN-GRAD", "--markdown", "{f}/x.md"],
        ["verify", "--claims", "LIN-GRAD", "--figures", "{f}"],
        ["reproduce", "leg-linear", "--json", "{d}"],
        ["reproduce", "leg-linear", "--json", "{d}/r.json", "--figures", "{f}"],
        ["scale", "--instances", "2", "--json", "{f}/sub/x.json"],
        ["train", "images", "--quick", "--out", "{f}"],
        ["train", "images", "--quick", "--out", "{d}/run", "--figures", "{f}"],
    ],
)
def test_bad_output_path_is_refused_before_the_run(argv, tmp_path, capsys, no_run):
    folder, file = tmp_path / "adir", tmp_path / "afile"
    folder.mkdir()
    file.write_text("keep me")
    argv = [a.format(d=folder, f=file) for a in argv]
    _refused(argv + (["--device", "cpu"] if argv[0] == "train" else []), capsys, "")
    assert file.read_text() == "keep me"


def test_train_refuses_a_non_empty_out(tmp_path, capsys, no_run):
    (tmp_path / "summary.json").write_text('{"old": 1}')
    _refused(
        ["train", "images", "--quick", "--out", str(tmp_path), "--device", "cpu"],
        capsys,
        "--resume",
    )
    assert json.loads((tmp_path / "summary.json").read_text()) == {"old": 1}


def test_train_cuda_without_cuda_exits_2(tmp_path, capsys, no_run):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: --device cuda is legitimate")
    _refused(
        [
            "train",
            "images",
            "--quick",
            "--out",
            str(tmp_path / "r"),
            "--device",
            "cuda",
        ],
        capsys,
        "CUDA is not available",
    )


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--budget", "-1"], "--budget must be >= 0"),
        (["--threads", "0"], "--threads must be >= 1"),
        (["--resume", "--overwrite"], "contradict"),
    ],
)
def test_train_bad_numbers_exit_2(tmp_path, capsys, no_run, extra, match):
    _refused(
        ["train", "images", "--quick", "--out", str(tmp_path / "r"), "--device", "cpu"]
        + extra,
        capsys,
        match,
    )


def test_quick_keeps_explicit_budget_and_epochs(tmp_path, monkeypatch, capsys):
    """--quick used to replace --budget 7 / --epochs 2 by its own 3 s / 1000."""
    seen = {}

    class Stop(Exception):
        pass

    def fake_make_task(cfg, **kw):
        seen["cfg"] = cfg
        raise Stop

    monkeypatch.setattr(training, "make_task", fake_make_task)
    argv = ["train", "images", "--quick", "--out", str(tmp_path / "r")]
    with pytest.raises(Stop):
        main(argv + ["--budget", "7", "--epochs", "2", "--device", "cpu"])
    assert (seen["cfg"].budget_s, seen["cfg"].max_epochs) == (7.0, 2)
    with pytest.raises(Stop):
        main(argv + ["--device", "cpu"])
    from dynamics.training.config import quick_config

    quick = quick_config("images")
    assert (seen["cfg"].budget_s, seen["cfg"].max_epochs) == (
        quick.budget_s,
        quick.max_epochs,
    )


def test_progress_line_never_shows_nan_or_more_than_100_percent():
    """The last progress line used to read 'loss nan' (the round had just been reset)
    and '101%' (training time passes the budget by the last step)."""
    from dynamics.training.trainer import ArmState

    class Sink:
        text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    sink = Sink()
    bar = Progress("[x]", budget=10.0, stream=sink)
    st = ArmState(train_time=10.13, step=50)
    st.history.append({"train_loss": 0.625})
    bar.update(st, 10, force=True)
    assert "100% of 10s" in sink.text and "101%" not in sink.text
    assert "loss 0.625" in sink.text and "nan" not in sink.text
    st.round_count = 3  # three steps since the round, all skipped as non-finite
    bar.update(st, 10, force=True)
    assert "nan" not in sink.text.splitlines()[-1]


def test_training_progress_on_a_terminal_is_a_capped_tqdm_bar():
    """On a terminal the arm's progress is a tqdm bar over the time budget, capped at
    100% when the last step runs past the budget, with the loss as postfix."""
    from dynamics.training.trainer import ArmState

    class Tty:
        text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

        def isatty(self):
            return True

    sink = Tty()
    bar = Progress("[x]", budget=10.0, stream=sink)
    st = ArmState(train_time=10.13, step=50)
    st.history.append({"train_loss": 0.625})
    bar.update(st, 10, force=True)
    assert "100%" in sink.text and "101%" not in sink.text
    assert "10/10s" in sink.text and "loss 0.625" in sink.text
    assert bar.bar is None  # closed at the end of the arm


# -- claim selection ----------------------------------------------------------------


def test_prove_only_typo_is_an_error(capsys):
    """Used to print '0/0 certificates reduce exactly to 0' and exit 0."""
    _refused(
        ["prove", "LIN-SYM-CONS", "--only", "no_such_certificate"], capsys, "--only"
    )


def test_claims_typo_among_several_is_an_error(capsys):
    """verify --claims LIN-GRAD --claims LIN-GRAAD used to run LIN-GRAD only."""
    _refused(
        ["verify", "--claims", "LIN-GRAD", "--claims", "LIN-GRAAD"], capsys, "LIN-GRAAD"
    )


# -- discover ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, match",
    [
        (["scalar-linear", "--shape", "0"], "--shape"),
        (["matrix-linear", "--shape", "2,x"], "--shape"),
        (["scalar-linear", "--degree", "-1"], "--degree"),
        (["scalar-linear", "--points", "0"], "--points"),
        (["--map", "no/such/map.py"], "not found"),
    ],
)
def test_discover_bad_arguments(argv, match, capsys):
    _refused(["discover", *argv], capsys, match)


def test_discover_implicit_map_without_root(tmp_path, capsys):
    """f^2 + a^2 + 1 = 0 has no real root: a raw RuntimeError/LinAlgError before."""
    m = tmp_path / "noroot.py"
    m.write_text(
        "import sympy as sp\n"
        "a, b, f = sp.symbols('a b f', real=True)\n"
        "PARAMS = [a, b]\nUNKNOWNS = [f]\nEQUATIONS = [f**2 + a**2 + 1]\n"
    )
    _refused(["discover", "--map", str(m)], capsys, "no root")


def test_discover_does_not_eval_string_outputs(tmp_path, capsys):
    """A string in OUTPUTS used to go through sympify (eval) and run."""
    marker = tmp_path / "ran"
    m = tmp_path / "evil.py"
    m.write_text(
        "import sympy as sp\n"
        "a, b = sp.symbols('a b', real=True)\nPARAMS = [a, b]\n"
        f"OUTPUTS = ['a*b', \"__import__('os').system('touch {marker}')\"]\n"
    )
    _refused(["discover", "--map", str(m)], capsys, "not allowed")
    assert not marker.exists()


# -- interrupting and piping ---------------------------------------------------------


def test_keyboard_interrupt_exits_130_with_one_line(monkeypatch, capsys):
    import proofs_check.commands.prove as prove_cmd

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(prove_cmd, "runs", interrupted)
    rc = main(["prove", "LIN-SYM-CONS"])
    err = capsys.readouterr().err
    assert rc == 130
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err


def test_closed_stdout_pipe_is_not_a_traceback():
    """`deq-dynamics prove list | head -0`: the reader has gone; used to end in
    BrokenPipeError."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "proofs_check", "prove", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    rc = proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert rc == 141


_POOL = """
import time
from proofs_check.sim_tools import run_pool
print("started", flush=True)
run_pool(time.sleep, [60] * 4, workers=2)
"""


def test_ctrl_c_stops_the_pool_at_once():
    """SIGINT to the whole process group (what Ctrl-C in a terminal sends): the
    workers used to print one traceback each and the parent waited for the queued
    tasks; now the workers ignore SIGINT and are terminated by the parent."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _POOL],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        start_new_session=True,
    )
    assert proc.stdout.readline().strip() == b"started"
    time.sleep(1.5)  # the workers are up and sleeping
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 10
    assert err.decode().count("Traceback") == 1  # the parent's KeyboardInterrupt only


@pytest.mark.slow
def test_ctrl_c_during_reproduce_weak(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "proofs_check", "reproduce", "weak", "--json",
         str(tmp_path / "w.json"), "--figures", str(tmp_path)],
        stderr=subprocess.PIPE,
        env={**_env(), "DEQ_WORKERS": "2"},
        start_new_session=True,
        cwd=tmp_path,
    )  # fmt: skip
    line = proc.stderr.readline().decode()
    assert line.startswith("weak:")
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=30) == 130
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert not (tmp_path / "w.json").exists()

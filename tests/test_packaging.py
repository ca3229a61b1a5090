"""Packaging metadata: version, licence, type markers."""

from __future__ import annotations

import configparser
import importlib.metadata
from pathlib import Path

import pytest

import dynamics
from proofs_check import _version, cli

ROOT = Path(__file__).resolve().parents[1]


def test_version_flag_prints_the_distribution_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    try:
        expected = importlib.metadata.version("deq-dynamics")
    except importlib.metadata.PackageNotFoundError:
        expected = dynamics.__version__
    assert capsys.readouterr().out.strip() == f"deq-dynamics {expected}"


def test_version_falls_back_to_the_source_tree(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert _version.version() == dynamics.__version__


def test_setup_cfg_ships_licence_and_type_markers():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["metadata"]["version"].strip() == "attr: dynamics.__version__"
    assert cfg["metadata"]["license_files"].strip() == "LICENSE"
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    for pkg in ("dynamics", "proofs_check"):
        assert "py.typed" in cfg["options.package_data"][pkg].split()
        assert (ROOT / pkg / "py.typed").exists()
    # The published values the REPRO-LEG src check compares with ship as data.
    assert "published/*.json" in cfg["options.package_data"]["proofs_check"].split()

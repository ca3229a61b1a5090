"""Sphinx configuration for the deq-dynamics documentation.

The theory pages are Markdown (read by myst-parser); the API reference is generated at
build time by autosummary from the package docstrings, so a change of module layout
needs no edit here. Build with ``make docs`` (warnings are errors).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The API pages import every module; keep torch and BLAS to one thread while they do.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import dynamics  # noqa: E402

project = "deq-dynamics"
author = "deq-dynamics developers"
copyright = "2026, deq-dynamics developers"
release = dynamics.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["dollarmath", "amsmath", "deflist"]
myst_heading_anchors = 3

autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_ivar = True

# Nitpicky mode reports every cross-reference that resolves nowhere, including those
# in type annotations. Types from other libraries cannot resolve without their
# inventories (the build runs offline), so they are ignored; the references into this
# project are not. It is off by default until the docstrings' short references are
# qualified; turn it on with DOCS_NITPICKY=1 (``make docs-strict``).
nitpicky = os.environ.get("DOCS_NITPICKY", "") == "1"
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(torch|numpy|np|scipy|sympy|matplotlib|nn|collections|typing|abc|enum|"
        r"pathlib|argparse|dataclasses|os|io|json|concurrent|threading)(\..*)?",
    ),
]

html_theme = "alabaster"
html_title = f"deq-dynamics {release}"

# --- API pages ----------------------------------------------------------------------
# One page per module, written at build time by walking the packages, so that moving or
# renaming a module needs no edit of the docs. The pages go to docs/api/ (git-ignored).

API_PACKAGES = ("dynamics", "proofs_check")
API_DIR = Path(__file__).resolve().parent / "api"


def _modules(package: str) -> list[str]:
    import importlib
    import pkgutil

    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # running it would start the command line
        names.append(info.name)
    return sorted(names)


def _children(name: str, names: list[str]) -> list[str]:
    depth = name.count(".") + 1
    return [n for n in names if n.startswith(name + ".") and n.count(".") == depth]


def write_api_pages() -> list[str]:
    """Write ``api/<module>.rst`` per module and ``api/index.rst``; return the names."""
    API_DIR.mkdir(exist_ok=True)
    everything: list[str] = []
    for package in API_PACKAGES:
        everything.extend(_modules(package))
    wanted = {f"{n}.rst" for n in everything} | {"index.rst"}
    for stale in API_DIR.glob("*.rst"):
        if stale.name not in wanted:
            stale.unlink()
    for name in everything:
        title = f"``{name}``"
        lines = [title, "=" * len(title), "", f".. automodule:: {name}", ""]
        kids = _children(name, everything)
        if kids:
            lines += [".. toctree::", "   :maxdepth: 1", ""]
            lines += [f"   {k}" for k in kids]
            lines.append("")
        _write_if_changed(API_DIR / f"{name}.rst", "\n".join(lines))
    index = [
        "API reference",
        "=============",
        "",
        "Generated from the docstrings at build time, one page per module.",
        "``dynamics`` is the numerical engine; ``proofs_check`` holds the claim",
        "catalogue, the checks and the ``deq-dynamics`` command line (``dynamics``",
        "never imports ``proofs_check``).",
        "",
        ".. toctree::",
        "   :maxdepth: 2",
        "",
    ] + [f"   {p}" for p in API_PACKAGES] + [""]
    _write_if_changed(API_DIR / "index.rst", "\n".join(index))
    return everything


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


write_api_pages()


# --- Docstring conventions ----------------------------------------------------------
# The docstrings write formulas in plain text: |1 - v| is an absolute value, not a
# reStructuredText substitution, and REV-* is a glob, not emphasis: outside ``literals``
# both are escaped.

_LITERAL = re.compile(r"(``.*?``)")


_GLOB_STAR = re.compile(r"(?<=-)\*")  # claim-ID globs such as REV-* or LIN-GD-*


def _escape_plain_text(line: str) -> str:
    stripped = line.strip()
    if stripped.startswith(("+-", "+=", "| ")) or (
        len(stripped) > 1 and stripped[0] == stripped[-1] == "|" and "  " in stripped
    ):
        return line  # a grid-table row or border, or a line block
    parts = _LITERAL.split(line)
    return "".join(
        p if p.startswith("``") else _GLOB_STAR.sub(r"\*", p.replace("|", r"\|"))
        for p in parts
    )


_OURS = API_PACKAGES


def _process_docstring(app, what, name, obj, options, lines):
    # A method without its own docstring inherits one; torch's cite labels of the torch
    # docs that do not exist here, so an inherited docstring from outside is dropped.
    own_doc = getattr(obj, "__doc__", "")
    if what in ("method", "function", "attribute") and own_doc is None:
        lines[:] = []
        return
    owner = getattr(obj, "__module__", None) or ""
    if what in ("method", "function") and not owner.startswith(_OURS):
        lines[:] = []
        return
    lines[:] = [_escape_plain_text(line) for line in lines]


# Plain-text formulas indented under a sentence read well in the source and in help(),
# but docutils reports them as layout problems. Those layout messages, and only those,
# from docstrings only, are not errors; everything else (a broken cross-reference, a
# module that fails to import, a duplicate description, any problem in the Markdown
# pages) still fails the build.
_LAYOUT = (
    "Unexpected indentation",
    "Block quote ends without a blank line",
    "Definition list ends without a blank line",
    "Enumerated list ends without a blank line",
    "Bullet list ends without a blank line",
    "Field list ends without a blank line",
)


class _DocstringLayoutFilter(logging.Filter):
    ignored = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        location = str(getattr(record, "location", "") or "")
        if "docstring of" in location and message.startswith(_LAYOUT):
            _DocstringLayoutFilter.ignored += 1
            return False
        return True


def _report_ignored(app, exception):
    if _DocstringLayoutFilter.ignored:
        print(
            f"{_DocstringLayoutFilter.ignored} docstring layout message(s) about "
            "plain-text formulas were not treated as errors"
        )


def setup(app):
    app.connect("autodoc-process-docstring", _process_docstring)
    app.connect("build-finished", _report_ignored)
    for handler in logging.getLogger("sphinx").handlers:
        handler.filters.insert(0, _DocstringLayoutFilter())
    return {"parallel_read_safe": True}

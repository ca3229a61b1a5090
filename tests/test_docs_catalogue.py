"""The generated documentation pages agree with the registry and the theory pages.

docs/claims.md is generated from proofs_check.catalogue; these tests regenerate it and
compare, check that every label a claim cites resolves to a heading that exists in the
theory pages, and that the documentation does not point outside the repository.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from proofs_check import docs_catalogue as dc
from proofs_check.catalogue import CLAIMS

DOCS = dc.DOCS


def slug(title: str) -> str:
    """The anchor MyST (and GitHub) derive from a heading."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(m.group(2)) for m in re.finditer(r"^(#{1,3}) (.+)$", text, re.M)}


def test_claims_page_is_up_to_date():
    """The committed docs/claims.md is exactly what the registry generates now."""
    assert dc.CLAIMS_PAGE.read_text() == dc.current_claims_page(), (
        "docs/claims.md is out of date; run `python -m proofs_check.docs_catalogue "
        "claims`"
    )


def test_claims_page_has_every_claim_once():
    text = dc.CLAIMS_PAGE.read_text()
    headings = re.findall(r"^## ([A-Z0-9-]+)$", text, re.M)
    assert headings == [c.id for c in CLAIMS]


def test_render_changes_with_the_registry():
    """The generator reads the registry: a changed statement changes the page."""
    first = CLAIMS[0]
    changed = dataclasses.replace(first, statement=first.statement + " CHANGED")
    assert dc.render_claims((changed, *CLAIMS[1:])) != dc.render_claims(CLAIMS)
    assert "CHANGED" in dc.render_claims((changed,))


@pytest.mark.parametrize("label", sorted(dc.THEORY_PAGES))
def test_every_mapped_label_lands_on_an_existing_heading(label):
    page, _, anchor = dc.THEORY_PAGES[label].partition("#")
    path = DOCS / page
    assert path.exists(), f"{label} -> {page}: no such page"
    if anchor:
        assert anchor in anchors(path), f"{label} -> {page}#{anchor}: no such heading"


@pytest.mark.parametrize("claim", CLAIMS, ids=[c.id for c in CLAIMS])
def test_every_claim_cites_known_theory(claim):
    """Each token of a claim's result label maps to a page (none is left unresolved)."""
    links = dc.theory_links(claim)
    assert links, f"{claim.id} cites no result"
    unresolved = [label for label, href in links if not href]
    assert not unresolved, f"{claim.id}: no docs page for {unresolved}"
    assert dc.prefix(claim.id) in dc.PAPER_OF_PREFIX
    assert dc.prefix(claim.id) in dc.TOLERANCE_PAGES


def test_theory_links_of_a_section_range():
    claim = dataclasses.replace(CLAIMS[0], id="LIN-X", result="§2.2-2.3, P2")
    assert [href for _, href in dc.theory_links(claim)] == [
        dc.THEORY_PAGES["§2.2"],
        dc.THEORY_PAGES["§2.3"],
        dc.THEORY_PAGES["P2"],
    ]
    rev = dataclasses.replace(CLAIMS[0], id="REV-X", result="§10.2")
    assert dc.theory_links(rev)[0][1] == dc.THEORY_PAGES["REV §10.2"]


def test_gallery_lists_only_catalogued_claims_and_round_trips():
    text = dc.GALLERY_PAGE.read_text()
    figures = dc.figures_by_claim(text)
    assert figures, "the gallery lists no figure"
    ids = {c.id for c in CLAIMS}
    assert set(figures) <= ids
    assert all(figures.values()), "a gallery section with no figure"
    assert dc.figures_by_claim(dc.render_gallery(figures)) == figures


def test_project_does_not_point_outside_the_repository():
    """No page, docstring, comment or message of the project cites material that is
    not in the repository (the theory lives in docs/theory)."""
    root = DOCS.parent
    bad = ("shared" + "/", "spec" + " §", "spec" + "/claims.md", "spec" + "/data.md")
    offenders = []
    for top in ("docs", "dynamics", "proofs_check", "scripts", "tests"):
        for path in (root / top).rglob("*"):
            if "_build" in path.parts or path.suffix not in {".md", ".py", ".rst"}:
                continue
            text = path.read_text()
            offenders += [f"{path.relative_to(root)}: {b!r}" for b in bad if b in text]
    top = ("README.md", "CHANGELOG.md", "setup.cfg", "pyproject.toml", "Makefile")
    for name in top:
        text = (root / name).read_text()
        offenders += [f"{name}: {b!r}" for b in bad if b in text]
    assert not offenders, offenders


def test_docs_cite_both_papers_by_arxiv_id():
    text = (DOCS / "theory" / "references.md").read_text()
    for _, _, arxiv in dc.PAPERS.values():
        assert f"arXiv:{arxiv}" in text

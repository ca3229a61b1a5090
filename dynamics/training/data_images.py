"""Image data for the training experiments: Fashion-MNIST, with two fallbacks.

Order of preference (``docs/data.md``):

1. Fashion-MNIST, read from the gzip-compressed IDX files of the Debian package
   ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist/``);
2. scikit-learn's 8x8 digits, when scikit-learn happens to be importable (it is not a
   dependency);
3. a generated, seeded 8x8 ten-class set of bars and blobs.

Every loader says which source it used (:attr:`ImageData.source`,
:attr:`ImageData.note`);
nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, ShapeError

#: Where the Debian package puts the files (``dpkg -L dataset-fashion-mnist``).
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_INSTALL = (
    "apt-get install dataset-fashion-mnist, or point --data-dir / "
    "DEQ_FASHION_MNIST_DIR at a directory holding the four IDX files"
)
#: Environment variable naming a directory with a user's own Fashion-MNIST download.
FASHION_MNIST_ENV = "DEQ_FASHION_MNIST_DIR"
#: IDX magic numbers: 0x00000803 (uint8, 3 dims) and 0x00000801 (uint8, 1 dim).
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049

SOURCES = ("fashion-mnist", "sklearn-digits", "synthetic")


@dataclasses.dataclass(frozen=True)
class ImageData:
    """A train/test split of grey-scale images in ``[0, 1]``.

    Attributes:
        x_train, x_test: float32 arrays of shape ``(n, 1, H, W)`` with values in [0, 1].
        y_train, y_test: int64 labels in ``0..n_classes-1``.
        source: one of :data:`SOURCES`.
        note: a human-readable line saying which source was used and why.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    note: str
    n_classes: int = 10

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def fashion_mnist_dir(root: str | Path | None = None) -> Path:
    """Where to look for Fashion-MNIST: ``root`` if given, else the directory in
    ``$DEQ_FASHION_MNIST_DIR``, else the Debian package's directory."""
    if root is not None:
        return Path(root)
    env = os.environ.get(FASHION_MNIST_ENV)
    return Path(env) if env else FASHION_MNIST_DIR


def _idx_file(root: Path, name: str) -> Path:
    """``name`` under ``root``, or its uncompressed twin (name without ``.gz``)."""
    path = root / name
    if not path.is_file() and (root / name.removesuffix(".gz")).is_file():
        return root / name.removesuffix(".gz")
    return path


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read one IDX file, gzip-compressed (``.gz``) or not (big-endian header, uint8
    payload).

    Checks the magic number and that the payload holds exactly ``count`` items of the
    declared shape; returns a uint8 array of shape ``(count, rows, cols)`` for images
    (magic 2051) or ``(count,)`` for labels (magic 2049).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if magic == IDX_IMAGES_MAGIC:
        header = 16
    elif magic == IDX_LABELS_MAGIC:
        header = 8
    else:
        raise InvalidInputError(
            f"unknown IDX magic {magic}; expected "
            f"{IDX_IMAGES_MAGIC} (images) or {IDX_LABELS_MAGIC} (labels)"
        )
    if len(raw) < header:
        raise ShapeError(
            f"{path}: {len(raw)} bytes is shorter than the {header}-byte IDX header"
        )
    dims = np.frombuffer(raw, dtype=">u4", count=header // 4)
    if int(dims[0]) != magic:
        raise InvalidInputError(
            f"{path}: magic number {int(dims[0])}, expected {magic}"
        )
    count = int(dims[1])
    shape = (count,) + tuple(int(d) for d in dims[2:])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise ShapeError(
            f"{path}: header announces {count} items of shape {shape[1:]} "
            f"({expected} bytes) but the payload has {len(raw) - header} bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def fashion_mnist_available(root: str | Path | None = None) -> bool:
    """True when all four Fashion-MNIST files (``.gz`` or uncompressed) are present
    under ``root`` (default: :func:`fashion_mnist_dir`)."""
    root = fashion_mnist_dir(root)
    return all(_idx_file(root, name).is_file() for name in FASHION_MNIST_FILES.values())


def load_fashion_mnist(root: str | Path | None = None):
    """The four Fashion-MNIST arrays ``(x_train, y_train, x_test, y_test)`` as uint8.

    ``root``: a directory with the standard IDX files (``train-images-idx3-ubyte``
    etc., gzip-compressed or not); default :func:`fashion_mnist_dir`.
    """
    root = fashion_mnist_dir(root)
    if not fashion_mnist_available(root):
        raise FileNotFoundError(
            f"Fashion-MNIST not found under {root} ({FASHION_MNIST_INSTALL})"
        )
    xtr = read_idx(
        _idx_file(root, FASHION_MNIST_FILES["train_images"]), IDX_IMAGES_MAGIC
    )
    ytr = read_idx(
        _idx_file(root, FASHION_MNIST_FILES["train_labels"]), IDX_LABELS_MAGIC
    )
    xte = read_idx(
        _idx_file(root, FASHION_MNIST_FILES["test_images"]), IDX_IMAGES_MAGIC
    )
    yte = read_idx(
        _idx_file(root, FASHION_MNIST_FILES["test_labels"]), IDX_LABELS_MAGIC
    )
    for name, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        if x.shape[0] != y.shape[0]:
            raise ShapeError(
                f"Fashion-MNIST {name}: {x.shape[0]} images but {y.shape[0]} labels"
            )
    return xtr, ytr, xte, yte


def sklearn_available() -> bool:
    return importlib.util.find_spec("sklearn") is not None


def load_sklearn_digits():
    """scikit-learn's 1797 8x8 digits as uint8 images (0-16 scaled to 0-255)."""
    from sklearn.datasets import load_digits  # optional; never a dependency

    bunch = load_digits()
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return images, bunch.target.astype(np.int64)


def synthetic_images(n: int, seed: int, size: int = 8, noise: float = 0.25):
    """A seeded ten-class set of ``size x size`` images: bars and blobs.

    Classes 0-3: a horizontal bar in one of four bands; 4-7: a vertical bar in one of
    four bands; 8: a centred blob; 9: four corner blobs. Each image gets a random
    sub-pixel shift, a random contrast and Gaussian noise, so the task is learnable but
    not trivial. Returns uint8 images ``(n, size, size)`` and int64 labels ``(n,)``
    (``n // 10`` or ``n // 10 + 1`` per class).
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    grid = np.arange(size) + 0.5
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    images = np.empty((n, size, size))
    band = size / 4.0
    for i, c in enumerate(labels):
        shift = rng.uniform(-0.35, 0.35, size=2) * band
        width = band * rng.uniform(0.35, 0.5)
        if c < 4:
            centre = (c + 0.5) * band + shift[0]
            img = np.exp(-0.5 * ((yy - centre) / width) ** 2)
        elif c < 8:
            centre = (c - 4 + 0.5) * band + shift[1]
            img = np.exp(-0.5 * ((xx - centre) / width) ** 2)
        elif c == 8:
            cy, cx = size / 2 + shift
            img = np.exp(-0.5 * (((yy - cy) ** 2 + (xx - cx) ** 2) / (1.2 * band) ** 2))
        else:
            img = np.zeros((size, size))
            for cy in (band, size - band):
                for cx in (band, size - band):
                    img += np.exp(
                        -0.5
                        * (
                            ((yy - cy - shift[0]) ** 2 + (xx - cx - shift[1]) ** 2)
                            / (0.6 * band) ** 2
                        )
                    )
        img = img * rng.uniform(0.6, 1.0) + noise * rng.standard_normal((size, size))
        images[i] = img
    images = np.clip(images, 0.0, 1.0)
    return np.rint(images * 255).astype(np.uint8), labels.astype(np.int64)


def stratified_subsample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a seeded, class-stratified draw of ``n`` items (sorted ascending).

    Each class gets ``n * share`` items (largest remainders break ties), where ``share``
    is its frequency in ``labels``; ``n >= len(labels)`` returns every index.
    """
    labels = np.asarray(labels)
    if n >= labels.shape[0]:
        return np.arange(labels.shape[0])
    if n < 1:
        raise ShapeError(f"subsample size must be >= 1; got {n}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * (n / labels.shape[0])
    take = np.floor(quota).astype(int)
    short = n - int(take.sum())
    if short:
        order = np.argsort(-(quota - take), kind="stable")
        take[order[:short]] += 1
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
        for c, k in zip(classes, take)
        if k > 0
    ]
    return np.sort(np.concatenate(chosen))


def _to_float(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) / 255.0)[:, None, :, :]


def load_images(
    n_train: int | None,
    n_test: int | None,
    seed: int,
    *,
    source: str = "auto",
    root: str | Path | None = None,
    synthetic_size: int = 1500,
) -> ImageData:
    """Load an image classification split, falling back as ``docs/data.md`` says.

    Args:
        n_train, n_test: sizes of the seeded class-stratified subsamples
            (``None``: all).
        seed: seed of the subsampling (and of the generated fallback set).
        source: ``"auto"`` (first available of :data:`SOURCES`) or one source name.
        root: directory holding the Fashion-MNIST IDX files (default: the
            ``DEQ_FASHION_MNIST_DIR`` environment variable, else the Debian path).
        synthetic_size: number of generated images (train + test) for the last fallback.
    """
    if source not in ("auto", *SOURCES):
        raise InvalidInputError(
            f"unknown image source {source!r}; choose auto or one "
            f"of {', '.join(SOURCES)}"
        )
    notes = []
    root = fashion_mnist_dir(root)
    if source in ("auto", "fashion-mnist"):
        if fashion_mnist_available(root):
            xtr, ytr, xte, yte = load_fashion_mnist(root)
            return _split_result(
                xtr,
                ytr.astype(np.int64),
                xte,
                yte.astype(np.int64),
                n_train,
                n_test,
                seed,
                "fashion-mnist",
                f"Fashion-MNIST from {root}",
            )
        if source == "fashion-mnist":
            raise FileNotFoundError(
                f"Fashion-MNIST not found under {root} ({FASHION_MNIST_INSTALL})"
            )
        notes.append(f"Fashion-MNIST not found under {root} ({FASHION_MNIST_INSTALL})")
    if source in ("auto", "sklearn-digits"):
        if sklearn_available():
            x, y = load_sklearn_digits()
            xtr, ytr, xte, yte = _holdout(x, y, seed, test_fraction=0.2)
            notes.append("using scikit-learn digits (8x8) as fallback")
            return _split_result(
                xtr,
                ytr,
                xte,
                yte,
                n_train,
                n_test,
                seed,
                "sklearn-digits",
                "; ".join(notes),
            )
        if source == "sklearn-digits":
            raise FileNotFoundError(
                "scikit-learn digits need scikit-learn (pip install scikit-learn)"
            )
        notes.append("scikit-learn not importable (pip install scikit-learn)")
    x, y = synthetic_images(synthetic_size, seed)
    xtr, ytr, xte, yte = _holdout(x, y, seed, test_fraction=0.2)
    notes.append(
        f"using a generated 8x8 ten-class set ({synthetic_size} images, "
        f"seed {seed}) as fallback"
    )
    return _split_result(
        xtr, ytr, xte, yte, n_train, n_test, seed, "synthetic", "; ".join(notes)
    )


def _holdout(x, y, seed, test_fraction):
    n_test = max(10, int(round(test_fraction * len(y))))
    test_idx = stratified_subsample(y, n_test, seed + 7919)
    mask = np.ones(len(y), dtype=bool)
    mask[test_idx] = False
    return x[mask], y[mask], x[test_idx], y[test_idx]


def _split_result(xtr, ytr, xte, yte, n_train, n_test, seed, source, note) -> ImageData:
    itr = stratified_subsample(ytr, n_train if n_train else len(ytr), seed)
    ite = stratified_subsample(yte, n_test if n_test else len(yte), seed + 1)
    note = (
        f"{note}; {len(itr)} train / {len(ite)} test images (seeded, class-stratified)"
    )
    return ImageData(
        _to_float(xtr[itr]),
        ytr[itr].astype(np.int64),
        _to_float(xte[ite]),
        yte[ite].astype(np.int64),
        source,
        note,
    )

"""The data a training run uses: the bundled digits made long-tailed, or the user's features.

Default (:func:`digits_data`): the handwritten digits scikit-learn ships inside its package
(``sklearn.datasets.load_digits``, 8x8 images, no download), classes 0-6. A balanced
held-out test split is drawn first (the same number of images of each class, seeded); the
training counts then follow the class ratios of ISIC 2018 task 3 (the data the original
report's recommended configuration targets, ``reference/recommended.py``), the largest
class keeping every image left to it. ``imbalance`` sets the ratio of the largest to the
smallest count: the ISIC profile is bent in log space, ``n_c = n_0 * (r_c / r_0) ** a``, with
``a`` chosen so that ``n_0 / n_6`` is the ratio asked for (1: balanced; the default, about
58, is ISIC's own). The rarest classes then keep only a few training images: the section
says so and reports per-class recall.

The user's own (:func:`load_npz`): an ``.npz`` with ``patches (N, L, D)``, optional
``global (N, D)`` (else the mean of the patches) and ``labels (N,)``: a features dump of
their own backbone on their real data. The heads are then trained on these frozen features.
The test split is balanced too: half the rarest class's samples, at most 50, of each class.
A malformed file raises :class:`DataError` with one line saying what to fix (exit 2).

Nothing here needs scikit-learn except :func:`digits_data`; the ``.npz`` path works without it.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headaudit.errors import ConfigError
from headaudit.reference.recommended import ISIC2018_TASK3_COUNTS

__all__ = ["DIGIT_CLASSES", "ISIC_IMBALANCE", "DataError", "TrainData", "digits_data", "load_npz", "long_tailed"]

#: The digit classes used (seven, like ISIC 2018 task 3).
DIGIT_CLASSES = 7
#: Images of each class held out for the balanced test split of the digits.
DIGITS_TEST_PER_CLASS = 30
#: The ratio of the largest to the smallest class of ISIC 2018 task 3 (6705 / 115).
ISIC_IMBALANCE = ISIC2018_TASK3_COUNTS[0] / ISIC2018_TASK3_COUNTS[-1]
#: The most test samples per class drawn from a user's file.
NPZ_TEST_CAP = 50


class DataError(ConfigError):
    """The data given to a training run cannot be used (one line; the CLI exits 2)."""


@dataclass(frozen=True)
class TrainData:
    """A training and a balanced test split, as arrays (picklable, shared by every run).

    ``kind`` is ``"images"`` (``x`` are ``(N, 1, 8, 8)`` images for the backbone) or
    ``"features"`` (``x`` are frozen ``(N, L, D)`` patch features and ``global_x`` the
    ``(N, D)`` global features). ``source`` names where the data came from.
    """

    kind: str
    source: str
    num_classes: int
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    train_global: np.ndarray | None = None
    test_global: np.ndarray | None = None
    imbalance: float | None = None

    @property
    def train_counts(self) -> tuple[int, ...]:
        return tuple(int(n) for n in np.bincount(self.train_y, minlength=self.num_classes))

    @property
    def test_counts(self) -> tuple[int, ...]:
        return tuple(int(n) for n in np.bincount(self.test_y, minlength=self.num_classes))

    @property
    def feature_dim(self) -> int:
        """``D`` of the user's features (the backbone's width is the run's own for images)."""
        return int(self.train_x.shape[-1])

    def digest(self) -> str:
        """sha256 over the kind, class count and every array (dtype, shape, bytes): what a
        run's cache key names of its data (the source's path is not: its content is)."""
        out = hashlib.sha256(f"{self.kind}\0{self.num_classes}\0".encode())
        for array in (self.train_x, self.train_y, self.test_x, self.test_y, self.train_global, self.test_global):
            if array is None:
                out.update(b"none\0")
                continue
            contiguous = np.ascontiguousarray(array)
            out.update(f"{contiguous.dtype.str}{contiguous.shape}\0".encode())
            out.update(contiguous.tobytes())
        return out.hexdigest()

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "source": self.source,
            "num_classes": self.num_classes,
            "train_counts": list(self.train_counts),
            "test_counts": list(self.test_counts),
            "imbalance": self.imbalance,
        }


def long_tailed(largest: int, imbalance: float, profile: tuple[int, ...] = ISIC2018_TASK3_COUNTS) -> tuple[int, ...]:
    """Training counts with ``profile``'s shape and ``largest / smallest == imbalance``
    (each rounded, at least one)."""
    if not imbalance >= 1 or not math.isfinite(imbalance):
        raise DataError(f"--imbalance {imbalance!r} must be a finite ratio >= 1 (1: balanced)")
    span = math.log(profile[0] / profile[-1])
    power = math.log(imbalance) / span
    return tuple(max(1, round(largest * (n / profile[0]) ** power)) for n in profile)


def digits_data(seed: int, imbalance: float | None = None) -> TrainData:
    """The bundled digits, classes 0-6: a balanced test split, then ISIC-shaped training counts."""
    try:
        from sklearn.datasets import load_digits  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            "the default training data needs scikit-learn (the 'train' extra: pip install 'headaudit[train]'); "
            "or give your own features with --data FILE.npz"
        ) from None
    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float32) / 16.0
    labels = np.asarray(digits.target, dtype=np.int64)
    rng = np.random.default_rng([seed, 27])
    test_idx: list[np.ndarray] = []
    pools: list[np.ndarray] = []
    for c in range(DIGIT_CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test_idx.append(idx[:DIGITS_TEST_PER_CLASS])
        pools.append(idx[DIGITS_TEST_PER_CLASS:])
    ratio = ISIC_IMBALANCE if imbalance is None else imbalance
    counts = long_tailed(min(len(p) for p in pools), ratio)
    train_idx = np.concatenate([pool[:n] for pool, n in zip(pools, counts, strict=True)])
    test = np.concatenate(test_idx)
    return TrainData(
        kind="images",
        source="sklearn.datasets.load_digits (classes 0-6)",
        num_classes=DIGIT_CLASSES,
        train_x=images[train_idx][:, None],
        train_y=labels[train_idx],
        test_x=images[test][:, None],
        test_y=labels[test],
        imbalance=ratio,
    )


def _array(data: np.lib.npyio.NpzFile, name: str, path: str) -> np.ndarray:
    try:
        return np.asarray(data[name])
    except Exception as exc:  # a corrupt member or one holding objects (allow_pickle is off)
        raise DataError(f"--data {path}: array {name!r} cannot be read ({exc})") from None


def load_npz(path: Path, seed: int) -> TrainData:
    """The user's frozen features; every malformed case is one :class:`DataError` line."""
    shown = str(path)
    if not path.is_file():
        raise DataError(f"--data {shown}: no such file; give an .npz with patches (N, L, D) and labels (N,)")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"--data {shown} is not a readable .npz ({exc}); write it with numpy.savez") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise DataError(f"--data {shown} holds one array, not an .npz archive; write it with numpy.savez")
    with data:
        for name in ("patches", "labels"):
            if name not in data.files:
                raise DataError(f"--data {shown}: array {name!r} is missing (it has {sorted(data.files)})")
        patches = _array(data, "patches", shown)
        labels = _array(data, "labels", shown)
        glob = _array(data, "global", shown) if "global" in data.files else None
    if patches.ndim != 3:
        raise DataError(f"--data {shown}: patches must be (N, L, D), got rank {patches.ndim} {patches.shape}")
    if labels.ndim != 1:
        raise DataError(f"--data {shown}: labels must be (N,), got rank {labels.ndim} {labels.shape}")
    n = patches.shape[0]
    if labels.shape[0] != n:
        raise DataError(f"--data {shown}: {labels.shape[0]} labels for {n} samples of patches")
    if glob is not None and (glob.ndim != 2 or glob.shape != (n, patches.shape[2])):
        raise DataError(f"--data {shown}: global must be (N, D) = ({n}, {patches.shape[2]}), got {glob.shape}")
    floating = np.issubdtype(patches.dtype, np.floating) and (glob is None or np.issubdtype(glob.dtype, np.floating))
    if not floating:
        raise DataError(f"--data {shown}: patches and global must be floating point, got {patches.dtype}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"--data {shown}: labels must be integers (class indices), got {labels.dtype}")
    if n == 0 or labels.min() < 0:
        lowest = int(labels.min()) if n else "none"
        raise DataError(f"--data {shown}: labels out of range: lowest {lowest} (classes are 0..C-1)")
    if not np.isfinite(patches).all() or (glob is not None and not np.isfinite(glob).all()):
        raise DataError(f"--data {shown}: patches or global hold NaN or infinite values")
    classes = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=classes)
    if classes < 2:
        raise DataError(f"--data {shown}: labels hold one class; a classification head needs two or more")
    per_class = min(int(counts.min()) // 2, NPZ_TEST_CAP)
    if per_class < 2:
        rarest = int(np.argmin(counts))
        raise DataError(
            f"--data {shown}: class {rarest} has {int(counts[rarest])} samples, so the balanced test split gets "
            f"{per_class} of it; it needs at least 2 per class (4 samples of each class 0..{classes - 1})"
        )
    patches = patches.astype(np.float32)
    glob = patches.mean(axis=1) if glob is None else glob.astype(np.float32)
    rng = np.random.default_rng([seed, 27])
    test_idx, train_idx = [], []
    for c in range(classes):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test_idx.append(idx[:per_class])
        train_idx.append(idx[per_class:])
    test, train = np.concatenate(test_idx), np.concatenate(train_idx)
    return TrainData(
        kind="features",
        source=shown,
        num_classes=classes,
        train_x=patches[train],
        train_y=labels[train].astype(np.int64),
        test_x=patches[test],
        test_y=labels[test].astype(np.int64),
        train_global=glob[train],
        test_global=glob[test],
    )

"""Tiny datasets written in each real on-disk format, for loading through `create_dataset`."""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image


@dataclass
class Tiny:
    """What a writer put on disk: the `create_dataset` arguments and the exact images and labels written."""

    name: str
    kwargs: dict[str, object]
    n_classes: int
    train_images: np.ndarray | None = None  # uint8 [N, 3, H, W], None for image-file datasets
    train_labels: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    test_images: np.ndarray | None = None
    test_labels: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    classes: list[str] | None = None
    extra: dict[str, object] = field(default_factory=dict)  # format-specific truth, e.g. the stacked corruptions


def _balanced_labels(n: int, n_classes: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) % n_classes


class TinyFiles:
    """Writes tiny copies of each dataset format under `root` (a few dozen unique random images each)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rng = np.random.default_rng(1234)

    def images(self, n: int) -> np.ndarray:
        """`n` random uint8 RGB images `[n, 3, 32, 32]`."""
        return self.rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)

    def names(self) -> set[str]:
        """The datasets this class can write."""
        return set(BUILDERS)

    def build(self, name: str) -> Tiny:
        """The tiny dataset registered as `name`."""
        return BUILDERS[name](self)

    def digits(self) -> Tiny:
        return Tiny("digits", {}, 10)

    def cifar(self, root: Path | None = None, hundred: bool = False) -> Tiny:
        """CIFAR-10 (5 train batches of 8 images) or CIFAR-100 (200 train images) in torchvision's layout."""
        root = root or self.root / "cifar"
        n_classes, n_train, n_test = (100, 200, 100) if hundred else (10, 40, 20)
        train, test = self.images(n_train), self.images(n_test)
        train_labels, test_labels = _balanced_labels(n_train, n_classes), _balanced_labels(n_test, n_classes)[::-1]
        classes = [f"class_{i}" for i in range(n_classes)]
        if hundred:
            folder = root / "cifar-100-python"
            batches = {"train": (train, train_labels), "test": (test, test_labels)}
            meta = ("meta", {"fine_label_names": classes, "coarse_label_names": [f"super_{i}" for i in range(20)]})
        else:
            folder = root / "cifar-10-batches-py"
            batches = {
                f"data_batch_{i + 1}": (train[8 * i : 8 * i + 8], train_labels[8 * i : 8 * i + 8]) for i in range(5)
            }
            batches["test_batch"] = (test, test_labels)
            meta = ("batches.meta", {"label_names": classes, "num_cases_per_batch": 8})
        folder.mkdir(parents=True)
        for file, (images, labels) in batches.items():
            content = {"batch_label": file, "data": images.reshape(len(images), -1), "filenames": []}
            if hundred:  # coarse labels differ from the fine ones, which are the ones to use
                content |= {"fine_labels": labels.tolist(), "coarse_labels": (labels % 20).tolist()}
            else:
                content |= {"labels": labels.tolist()}
            write_pickle(folder / file, content)
        write_pickle(folder / meta[0], meta[1])
        name = "cifar100" if hundred else "cifar10"
        return Tiny(name, {"data": str(root)}, n_classes, train, train_labels, test, test_labels, classes)

    def cifar10(self) -> Tiny:
        return self.cifar()

    def cifar100(self) -> Tiny:
        return self.cifar(hundred=True)

    def corrupted(self, hundred: bool = False) -> Tiny:
        """A clean CIFAR plus its -C folder: per corruption 5 severities x 6 images, mildest first."""
        root = self.root / "cifar_c"
        clean = self.cifar(root, hundred)
        per_severity = 6
        folder = root / ("CIFAR-100-C" if hundred else "CIFAR-10-C")
        folder.mkdir()
        labels = np.tile(_balanced_labels(per_severity, clean.n_classes), 5)
        np.save(folder / "labels.npy", labels)
        stacked = {}
        for corruption in ("fog", "gaussian_noise"):
            stacked[corruption] = self.rng.integers(0, 256, (5 * per_severity, 32, 32, 3), dtype=np.uint8)
            np.save(folder / f"{corruption}.npy", stacked[corruption])
        rows = slice(4 * per_severity, 5 * per_severity)  # the default severity, 5
        test = np.concatenate([stacked[c][rows].transpose(0, 3, 1, 2) for c in ("gaussian_noise", "fog")])
        clean.name = "cifar100c" if hundred else "cifar10c"
        clean.test_images, clean.test_labels = test, np.tile(labels[rows], 2)
        clean.extra["stacked"] = stacked
        return clean

    def cifar10c(self) -> Tiny:
        return self.corrupted()

    def cifar100c(self) -> Tiny:
        return self.corrupted(hundred=True)

    def svhn(self) -> Tiny:
        """`train_32x32.mat` (40 images) and `test_32x32.mat` (20), digit 0 stored as label 10."""
        root = self.root / "svhn"
        root.mkdir()
        tiny = Tiny("svhn", {"data": str(root)}, 10, classes=[str(d) for d in range(10)])
        for split, n in (("train", 40), ("test", 20)):
            images, labels = self.images(n), _balanced_labels(n, 10)
            stored = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]
            scipy.io.savemat(root / f"{split}_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": stored})
            setattr(tiny, f"{split}_images", images)
            setattr(tiny, f"{split}_labels", labels)
        return tiny

    def fashion_mnist(self, gz: bool = True) -> Tiny:
        """The four IDX files (40 train, 20 test 28x28 images), gzipped or raw."""
        root = self.root / "fashion"
        root.mkdir()
        tiny = Tiny("fashion_mnist", {"data": str(root)}, 10)
        for prefix, split, n in (("train", "train", 40), ("t10k", "test", 20)):
            gray, labels = self.rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), _balanced_labels(n, 10)
            write_idx(root / f"{prefix}-images-idx3-ubyte", 2051, gray, gz)
            write_idx(root / f"{prefix}-labels-idx1-ubyte", 2049, labels.astype(np.uint8), gz)
            setattr(tiny, f"{split}_images", np.repeat(gray[:, None], 3, axis=1))
            setattr(tiny, f"{split}_labels", labels)
        return tiny

    def imagenet(self) -> Tiny:
        """`train/` (3 classes x 8 images) and `val/` (3 x 2), PNG and JPEG files of 12x10 pixels, plus a stray file."""
        root = self.root / "imagenet"
        classes = ["n01440764", "n01443537", "n01484850"]
        for split, n in (("train", 8), ("val", 2)):
            for cls in classes:
                folder = root / split / cls
                folder.mkdir(parents=True)
                for i in range(n):
                    suffix = (".png", ".JPEG", ".jpg")[i % 3]
                    Image.fromarray(self.rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(
                        folder / f"{i}{suffix}"
                    )
                (folder / "notes.txt").write_text("not an image")
        labels = {split: np.repeat(np.arange(3), n) for split, n in (("train", 8), ("val", 2))}
        return Tiny("imagenet", {"data": str(root)}, 3, None, labels["train"], None, labels["val"], classes)


BUILDERS: dict[str, Callable[[TinyFiles], Tiny]] = {
    "digits": TinyFiles.digits,
    "fashion_mnist": TinyFiles.fashion_mnist,
    "cifar10": TinyFiles.cifar10,
    "cifar100": TinyFiles.cifar100,
    "svhn": TinyFiles.svhn,
    "imagenet": TinyFiles.imagenet,
    "cifar10c": TinyFiles.cifar10c,
    "cifar100c": TinyFiles.cifar100c,
}


def write_pickle(path: Path, content: object) -> None:
    """Pickle `content` to `path`, as the CIFAR python batches are stored."""
    with path.open("wb") as handle:
        pickle.dump(content, handle)


def write_idx(path: Path, magic: int, array: np.ndarray, gz: bool) -> Path:
    """Write `array` as an IDX file (big-endian header: magic, then one size per dimension), optionally gzipped."""
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> TinyFiles:
    """A writer of tiny dataset files under this test's temporary directory."""
    return TinyFiles(tmp_path)

"""Dataset splits held in memory or as image files, and the batch iterator that resizes, augments and normalises."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.ops import roi_align

from utils.errors import UsageError

Indices = Sequence[int] | np.ndarray | Tensor

SPLITS = ("train", "valid", "test")

# Eval-time resize of image files: the shorter side to resolution / 0.875, then a centre crop (ImageNet practice).
CENTER_CROP_FRACTION = 0.875


def _as_index(indices: Indices) -> Tensor:
    return torch.as_tensor(np.asarray(indices), dtype=torch.int64)


class TensorImageSet:
    """An in-memory split: uint8 images `[N, 3, H, W]` and int64 labels `[N]`."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        if labels.dtype != torch.int64 or tuple(labels.shape) != (images.shape[0],):
            raise ValueError(f"labels must be int64 [{images.shape[0]}], got {labels.dtype} {tuple(labels.shape)}")
        self.images = images
        self.labels = labels

    @classmethod
    def from_grayscale(cls, images: np.ndarray, labels: np.ndarray) -> TensorImageSet:
        """A set from uint8 `[N, H, W]` grayscale images, replicated to 3 channels (as a view, no copy)."""
        gray = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8))
        return cls(gray[:, None].expand(-1, 3, -1, -1), torch.from_numpy(np.asarray(labels, dtype=np.int64)))

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Indices) -> TensorImageSet:
        """The images at `indices`, in that order."""
        index = _as_index(indices)
        if self.images.stride(1) == 0:  # replicated grayscale: index one channel and keep the cheap view
            return TensorImageSet(self.images[index, :1].expand(-1, 3, -1, -1), self.labels[index])
        return TensorImageSet(self.images[index], self.labels[index])


class FolderImageSet:
    """Image files with their labels, decoded lazily with PIL (ImageNet-style class folders)."""

    def __init__(self, samples: Sequence[tuple[str, int]]) -> None:
        self.samples = list(samples)
        self.labels = torch.tensor([label for _, label in self.samples], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, indices: Indices) -> FolderImageSet:
        """The images at `indices`, in that order."""
        return FolderImageSet([self.samples[i] for i in _as_index(indices).tolist()])

    def load(self, index: int) -> Image.Image:
        """Image `index` decoded as RGB."""
        path = self.samples[index][0]
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except OSError as err:
            raise UsageError(f"cannot read image {path}: {err}") from None


ImageSet = TensorImageSet | FolderImageSet


@dataclass(frozen=True)
class Augment:
    """The standard training augmentation of a dataset."""

    pad_crop: bool = False  # random crop of the resized image zero-padded by resolution // 8 pixels
    hflip: bool = False  # random horizontal flip
    random_resized_crop: bool = False  # ImageNet-style crop of random area (8% to 100%) and aspect, then resize


@dataclass
class DatasetSplits:
    """A dataset: train, validation (carved from the training set) and test splits plus how to feed them."""

    name: str
    n_classes: int
    train: ImageSet
    valid: ImageSet
    test: ImageSet
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    augment: Augment
    classes: list[str] | None = None

    def split(self, name: str) -> ImageSet:
        """The split called `name`: "train", "valid" or "test"."""
        if name not in SPLITS:
            raise UsageError(f"unknown split {name!r}; choose one of: {', '.join(SPLITS)}")
        return getattr(self, name)


def batches(
    splits: DatasetSplits,
    split: str,
    resolution: int,
    batch_size: int,
    *,
    train: bool,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    num_workers: int = 0,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield `(x, y)`: float32 `[B, 3, resolution, resolution]` normalised images and int64 `[B]` labels.

    `train=True` shuffles with `generator` (a CPU generator; a seeded one makes the epoch reproducible) and applies
    the dataset's augmentation, dropping a final batch of one image (BatchNorm); `train=False` keeps the order and
    every image and only resizes. `limit` keeps the first `limit` images of that order. `num_workers` decodes image
    files in that many processes (tensor datasets need none).
    """
    images = splits.split(split)
    if resolution < 1 or batch_size < 1:
        raise ValueError(f"resolution and batch_size must be positive, got {resolution} and {batch_size}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be non-negative, got {limit}")
    order = torch.randperm(len(images), generator=generator) if train else torch.arange(len(images))
    chunks = list(order[:limit].split(batch_size))
    if train and chunks and len(chunks[-1]) == 1:
        chunks.pop()
    return _iterate(splits, images, chunks, resolution, train, generator, torch.device(device), num_workers)


def _iterate(
    splits: DatasetSplits,
    images: ImageSet,
    chunks: list[Tensor],
    resolution: int,
    train: bool,
    generator: torch.Generator | None,
    device: torch.device,
    num_workers: int,
) -> Iterator[tuple[Tensor, Tensor]]:
    random_crop = train and splits.augment.random_resized_crop
    if isinstance(images, TensorImageSet):
        raw: Iterator[Tensor] = (images.images[index] for index in chunks)
    else:
        raw = _decode_files(images, chunks, resolution, random_crop, generator, num_workers)
    mean = torch.tensor(splits.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(splits.std, device=device).view(1, 3, 1, 1)
    for index, pixels in zip(chunks, raw, strict=True):
        x = pixels.to(device).float().div_(255)
        if isinstance(images, TensorImageSet):
            x = _random_resized_crop(x, resolution, generator) if random_crop else _resize(x, resolution)
        if train and splits.augment.pad_crop:
            x = _pad_crop(x, generator)
        if train and splits.augment.hflip:
            x = _hflip(x, generator)
        yield (x - mean) / std, images.labels[index].to(device)


def _resize(x: Tensor, resolution: int) -> Tensor:
    if x.shape[-2:] == (resolution, resolution):
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)


def _random_resized_crop(x: Tensor, resolution: int, generator: torch.Generator | None) -> Tensor:
    """Per-image crops of 8-100% of the area and aspect ratio in [3/4, 4/3], resized to `resolution`.

    Like torchvision's RandomResizedCrop, except that a box too large for the image is clipped instead of redrawn.
    """
    n, _, height, width = x.shape
    scale = torch.empty(n).uniform_(0.08, 1.0, generator=generator)
    ratio = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=generator).exp()
    crop_w = (height * width * scale * ratio).sqrt().clamp(max=width)
    crop_h = (height * width * scale / ratio).sqrt().clamp(max=height)
    x0 = torch.rand(n, generator=generator) * (width - crop_w)
    y0 = torch.rand(n, generator=generator) * (height - crop_h)
    boxes = torch.stack([torch.arange(n, dtype=torch.float32), x0, y0, x0 + crop_w, y0 + crop_h], dim=1)
    return roi_align(x, boxes.to(x.device), output_size=resolution, sampling_ratio=-1, aligned=True)


def _pad_crop(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Per-image random crops of `x` zero-padded by an eighth of its size on each side."""
    n, channels, height, width = x.shape
    pad = height // 8
    if pad == 0:
        return x
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1, 1), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n, 1, 1), generator=generator)
    rows = (dy + torch.arange(height)[:, None]) * (width + 2 * pad)
    flat_index = (rows + dx + torch.arange(width)).view(n, 1, height * width).to(x.device)
    crops = padded.flatten(2).gather(2, flat_index.expand(-1, channels, -1))
    return crops.view(n, channels, height, width)


def _hflip(x: Tensor, generator: torch.Generator | None) -> Tensor:
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


class _FolderDataset(Dataset[Tensor]):
    """Decodes image files to uint8 `[3, resolution, resolution]`, each random crop drawn from its own seed."""

    def __init__(self, images: FolderImageSet, resolution: int, random_crop: bool) -> None:
        self.images = images
        if random_crop:
            self.transform = transforms.RandomResizedCrop(resolution, scale=(0.08, 1.0))
        else:
            short_side = round(resolution / CENTER_CROP_FRACTION)
            self.transform = transforms.Compose([transforms.Resize(short_side), transforms.CenterCrop(resolution)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: tuple[int, int]) -> Tensor:
        index, seed = item
        image = self.images.load(index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            image = self.transform(image)
        return transforms.functional.pil_to_tensor(image)


def _decode_files(
    images: FolderImageSet,
    chunks: list[Tensor],
    resolution: int,
    random_crop: bool,
    generator: torch.Generator | None,
    num_workers: int,
) -> Iterator[Tensor]:
    """The uint8 batches of `chunks`, decoded by a DataLoader; crop seeds come from `generator`."""
    batch_plan = []
    for index in chunks:
        if random_crop:
            seeds = torch.randint(0, 2**62, (len(index),), generator=generator).tolist()
        else:
            seeds = [0] * len(index)
        batch_plan.append(list(zip(index.tolist(), seeds, strict=True)))
    loader = DataLoader(
        _FolderDataset(images, resolution, random_crop), batch_sampler=batch_plan, num_workers=num_workers
    )
    yield from loader

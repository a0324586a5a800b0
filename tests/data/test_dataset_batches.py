"""`batches`: resizing, normalisation, shuffling, augmentation and limits, for in-memory and image-file splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data import Augment, DatasetSplits, TensorImageSet, batches, create_dataset
from utils.errors import UsageError


def make_splits(images: torch.Tensor, augment: Augment, labels: torch.Tensor | None = None) -> DatasetSplits:
    """Splits whose three parts are all `images`, with mean 0.5 and std 0.25."""
    labels = torch.arange(len(images)) % 10 if labels is None else labels
    images_set = TensorImageSet(images, labels)
    return DatasetSplits("toy", 10, images_set, images_set, images_set, (0.5,) * 3, (0.25,) * 3, augment)


def collect(splits: DatasetSplits, split: str = "train", resolution: int = 32, **kwargs) -> tuple[torch.Tensor, ...]:
    xs, ys = zip(*batches(splits, split, resolution, 16, **kwargs), strict=True)
    return torch.cat(xs), torch.cat(ys)


def unnormalise(x: torch.Tensor) -> torch.Tensor:
    return x * 0.25 + 0.5


@pytest.fixture(scope="module")
def digits() -> DatasetSplits:
    return create_dataset("digits")


@pytest.mark.parametrize("resolution", [16, 32])
def test_shapes_and_eval_keeps_order_and_every_image(digits: DatasetSplits, resolution: int) -> None:
    sizes = []
    for x, y in batches(digits, "test", resolution, 64, train=False):
        assert x.dtype == torch.float32 and x.shape == (len(y), 3, resolution, resolution)
        assert y.dtype == torch.int64
        sizes.append(len(y))
    assert sizes == [64] * 5 + [40]  # 360 images, the partial batch kept
    _, labels = collect(digits, "test", resolution, train=False)
    assert torch.equal(labels, digits.test.labels)


def test_constant_image_is_normalised_with_mean_and_std() -> None:
    images = torch.full((4, 3, 8, 8), 200, dtype=torch.uint8)
    images[:, 1] = 51
    splits = make_splits(images, Augment())
    for resolution in (16, 32, 6):
        x, _ = collect(splits, "valid", resolution, train=False)
        expected = torch.tensor([(200 / 255 - 0.5) / 0.25, (51 / 255 - 0.5) / 0.25, (200 / 255 - 0.5) / 0.25])
        assert torch.allclose(x, expected.view(1, 3, 1, 1).expand_as(x), atol=1e-5)


def test_eval_is_a_plain_antialiased_resize(digits: DatasetSplits) -> None:
    x, _ = collect(digits, "valid", 16, train=False, limit=20)
    pixels = digits.valid.images[:20].float() / 255
    resized = torch.nn.functional.interpolate(pixels, size=16, mode="bilinear", antialias=True, align_corners=False)
    mean, std = torch.tensor(digits.mean).view(1, 3, 1, 1), torch.tensor(digits.std).view(1, 3, 1, 1)
    assert torch.allclose(x, (resized - mean) / std, atol=1e-5)


def test_train_is_reproducible_with_a_seeded_generator(digits: DatasetSplits) -> None:
    def epoch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return collect(digits, "train", 16, train=True, generator=torch.Generator().manual_seed(seed))

    (x1, y1), (x2, y2), (x3, y3) = epoch(0), epoch(0), epoch(1)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(y1, y3) and not torch.equal(x1, x3)
    assert len(y1) == 1136  # 1137 images in batches of 16: the final batch of one is dropped


def test_limit_takes_the_first_images_of_the_shuffled_order(digits: DatasetSplits) -> None:
    _, y = collect(digits, "train", 16, train=True, generator=torch.Generator().manual_seed(5), limit=50)
    order = torch.randperm(len(digits.train), generator=torch.Generator().manual_seed(5))
    assert torch.equal(y, digits.train.labels[order[:50]])
    x, y = collect(digits, "test", 16, train=False, limit=33)
    assert len(x) == len(y) == 33 and torch.equal(y, digits.test.labels[:33])


def test_train_drops_only_a_final_batch_of_one() -> None:
    splits = make_splits(torch.zeros(33, 3, 8, 8, dtype=torch.uint8), Augment())
    assert [len(y) for _, y in batches(splits, "train", 8, 16, train=True)] == [16, 16]
    assert [len(y) for _, y in batches(splits, "train", 8, 15, train=True)] == [15, 15, 3]
    assert [len(y) for _, y in batches(splits, "test", 8, 16, train=False)] == [16, 16, 1]


def half_white(n: int, size: int = 32) -> torch.Tensor:
    """`n` images white on the left half, black on the right."""
    images = torch.zeros(n, 3, size, size, dtype=torch.uint8)
    images[..., : size // 2] = 255
    return images


def test_hflip_mirrors_some_images_and_only_in_training() -> None:
    splits = make_splits(half_white(64), Augment(hflip=True))
    x, _ = collect(splits, "train", 32, train=True, generator=torch.Generator().manual_seed(0))
    pixels = unnormalise(x)
    original = half_white(1)[0].float() / 255
    flipped = [bool(torch.allclose(p, original.flip(-1), atol=1e-5)) for p in pixels]
    kept = [bool(torch.allclose(p, original, atol=1e-5)) for p in pixels]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # each image is exactly one of the two
    assert 10 < sum(flipped) < 54
    x_eval, _ = collect(splits, "train", 32, train=False)
    assert torch.allclose(unnormalise(x_eval), original.expand_as(x_eval), atol=1e-5)


def test_pad_crop_shifts_images_within_the_zero_padding() -> None:
    images = torch.randint(0, 256, (48, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    splits = make_splits(images, Augment(pad_crop=True), labels=torch.arange(48))  # the label names the source
    x, y = collect(splits, "train", 32, train=True, generator=torch.Generator().manual_seed(0))
    resized = torch.nn.functional.interpolate(
        images.float() / 255, size=32, mode="bilinear", antialias=True, align_corners=False
    )
    pad = 32 // 8
    padded = torch.nn.functional.pad(resized, (pad,) * 4)
    offsets = set()
    for pixels, source in zip(unnormalise(x), y.tolist(), strict=True):
        crops = {
            (dy, dx): padded[source, :, dy : dy + 32, dx : dx + 32]
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
        }
        matches = [offset for offset, crop in crops.items() if torch.allclose(crop, pixels, atol=1e-5)]
        assert len(matches) == 1, "output is not a crop of its zero-padded, resized source image"
        offsets.add(matches[0])
    assert len(offsets) > 10
    x_eval, _ = collect(splits, "train", 32, train=False)
    assert torch.allclose(unnormalise(x_eval), resized, atol=1e-5)


def test_random_resized_crop_on_tensors_varies_and_stays_in_range() -> None:
    images = torch.randint(0, 256, (32, 3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    splits = make_splits(images, Augment(random_resized_crop=True))
    x, _ = collect(splits, "train", 16, train=True, generator=torch.Generator().manual_seed(0))
    again, _ = collect(splits, "train", 16, train=True, generator=torch.Generator().manual_seed(0))
    assert x.shape == (32, 3, 16, 16) and torch.equal(x, again)
    pixels = unnormalise(x)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_unknown_split_is_a_usage_error(digits: DatasetSplits) -> None:
    with pytest.raises(UsageError, match="unknown split 'val'"):
        batches(digits, "val", 16, 8, train=False)


@pytest.fixture
def imagenet(tiny) -> DatasetSplits:
    return create_dataset("imagenet", vld_size=3, **tiny.imagenet().kwargs)


@pytest.mark.parametrize("resolution", [16, 32])
def test_image_files_resize_and_center_crop_for_eval(imagenet: DatasetSplits, resolution: int) -> None:
    x, y = collect(imagenet, "test", resolution, train=False)
    assert x.shape == (6, 3, resolution, resolution) and torch.equal(y, imagenet.test.labels)
    workers, _ = collect(imagenet, "test", resolution, train=False, num_workers=2)
    assert torch.equal(x, workers)


def test_image_files_training_is_reproducible_and_augmented(imagenet: DatasetSplits) -> None:
    def epoch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return collect(imagenet, "train", 16, train=True, generator=torch.Generator().manual_seed(seed))

    (x1, y1), (x2, y2), (x3, _) = epoch(0), epoch(0), epoch(1)
    assert x1.shape == (21, 3, 16, 16)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    x_eval, _ = collect(imagenet, "train", 16, train=False)
    order = torch.randperm(21, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(x1, x_eval[order])  # random crops differ from the centre crop


def test_image_file_pixels_survive_decoding(tiny) -> None:
    splits = create_dataset("imagenet", vld_size=3, **tiny.imagenet().kwargs)
    path = next(path for path, _ in splits.test.samples if path.endswith(".png"))
    image = np.asarray(splits.test.load([p for p, _ in splits.test.samples].index(path)))
    from PIL import Image

    assert np.array_equal(image, np.asarray(Image.open(path)))


def test_grayscale_sets_stay_cheap_views_through_subsets(digits: DatasetSplits) -> None:
    assert digits.train.images.stride(1) == 0  # 3 channels replicated without copying
    part = digits.train.subset([5, 2])
    assert part.images.stride(1) == 0 and torch.equal(part.images[1], digits.train.images[2])


def test_tensor_image_set_rejects_wrong_layouts() -> None:
    with pytest.raises(ValueError, match=r"uint8 \[N, 3, H, W\]"):
        TensorImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="labels must be int64"):
        TensorImageSet(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_on_cuda_match_cpu(digits: DatasetSplits) -> None:
    cpu = collect(digits, "train", 32, train=True, generator=torch.Generator().manual_seed(0))
    gpu = collect(digits, "train", 32, train=True, generator=torch.Generator().manual_seed(0), device="cuda")
    assert gpu[0].device.type == "cuda" and gpu[1].device.type == "cuda"
    assert torch.allclose(cpu[0], gpu[0].cpu(), atol=1e-4) and torch.equal(cpu[1], gpu[1].cpu())

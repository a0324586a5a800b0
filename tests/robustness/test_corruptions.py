"""robustness.corruptions: the 15 CIFAR-10-C corruptions on real images, at several resolutions and severities."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from data import create_dataset
from data.cifar_c import CORRUPTIONS, SEVERITIES
from robustness import corruptions
from robustness.corruptions import (
    BRIGHTNESS,
    CONTRAST,
    CORRUPTION_FUNCTIONS,
    ELASTIC_TRANSFORM,
    GAUSSIAN_NOISE_STD,
    IMPULSE_NOISE_AMOUNT,
    SHOT_NOISE_PHOTONS,
    check_corruption,
    check_severity,
    corrupt,
)
from utils.errors import UsageError

RANDOM = {
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "glass_blur",
    "motion_blur",
    "snow",
    "frost",
    "fog",
    "elastic_transform",
}
DETERMINISTIC = {"defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression"}

# Corruptions whose CIFAR-10-C parameters do not make the mean pixel difference grow at every step; for them the test
# asks only that severity 5 differs more than severity 1:
# - glass_blur: the blurs before and after the swaps (sigma 0.05, 0.25, 0.4, 0.25, 0.4 px) average swapped pixels back
#   towards the clean image: severities 1 and 2 hardly blur on a pixel grid and differ alike, severity 3 (sigma 0.4,
#   one round of swaps) differs less than 2, and severity 5 (two rounds) less than 4;
# - frost: the image weight falls (1, 1, 0.9, 0.85, 0.75) while the frost weight rises (0.2 ... 0.45): darkening the
#   image partly cancels the brighter frost, severities 3 to 5 all differ by about as much;
# - pixelate: at CIFAR-10-C's factors (30, 28, 27, 24, 20 pixels for 32) the resampling misalignment, not the block
#   size, dominates the difference until severity 5.
NOT_MONOTONE = {"glass_blur", "frost", "pixelate"}
# motion_blur's severities 3 and 4 are (radius 6, sigma 2) and (8, 2): the larger radius only adds ImageMagick taps 13
# to 16, beyond 6 sigma, which weigh under 1e-9 (the taps here stop at 4 sigma): the two are equal in effect.
EQUAL_STEPS = {("motion_blur", 3)}
# elastic_transform: CIFAR-10-C shrinks the affine jitter with severity (2.56 down to 0.96 px at 32 px) while it grows
# the smooth local displacement; the jitter dominates the pixel difference, which falls with severity.
# `test_elastic_local_displacement_grows_with_severity` checks the part that grows.
FALLING = {"elastic_transform"}


def _upsample(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    resized = F.interpolate(images.float(), size=size, mode="bilinear", align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)


def _scenes(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Natural-ish colour images: smooth gradients and waves, a disk, a bar and a little fine texture."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    scenes = []
    for i in range(n):
        a = torch.rand(3, 4, generator=g)
        image = torch.stack(
            [0.2 + 0.5 * a[c, 0] + 0.25 * torch.sin(7 * (a[c, 1] * xx + a[c, 2] * yy) + i) for c in range(3)]
        )
        cx, cy = (torch.rand(2, generator=g) * 0.6 + 0.2).tolist()
        image[:, (xx - cx) ** 2 + (yy - cy) ** 2 < 0.04] = torch.rand(3, 1, generator=g)
        image[:, (xx - 0.3).abs() < 0.06] = torch.rand(3, 1, generator=g)
        image += 0.04 * torch.randn(3, h, w, generator=g)
        scenes.append(image)
    return (torch.stack(scenes).clamp(0, 1) * 255).round().to(torch.uint8)


def _mean_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


@pytest.fixture(scope="module")
def digits():
    return create_dataset("digits")


@pytest.fixture(scope="module")
def images(digits) -> torch.Tensor:
    """12 digits (8 px, upsampled to 32) and 4 colour scenes: uint8 [16, 3, 32, 32]."""
    return torch.cat([_upsample(digits.test.images[:12], 32), _scenes(4, 32, 32)])


def test_the_registry_holds_the_cifar_c_corruptions_in_order():
    assert tuple(CORRUPTION_FUNCTIONS) == CORRUPTIONS
    assert set(CORRUPTIONS) == RANDOM | DETERMINISTIC
    assert not RANDOM & DETERMINISTIC


@pytest.mark.parametrize("name", CORRUPTIONS)
@pytest.mark.parametrize("size", [(32, 32), (24, 40), (64, 64), (8, 8)])
def test_shape_and_dtype_are_kept(name, size):
    clean = _scenes(2, *size)
    before = clean.clone()
    for severity in (1, SEVERITIES):
        out = corrupt(clean, name, severity, seed=1)
        assert out.dtype == torch.uint8 and out.shape == clean.shape and out.is_contiguous()
        assert out.data_ptr() != clean.data_ptr()
    assert torch.equal(clean, before)  # the input is left alone


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_grayscale_views_are_accepted(name, digits):
    view = digits.test.images[:3]  # a channel-stride-0 view of 8 px grayscale digits
    assert view.stride(1) == 0
    out = corrupt(view, name, 3)
    assert out.shape == view.shape and out.dtype == torch.uint8 and out.is_contiguous()


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_a_seed_fixes_the_output(name, images):
    first = corrupt(images, name, 3, seed=7)
    assert torch.equal(first, corrupt(images, name, 3, seed=7))
    other = corrupt(images, name, 3, seed=8)
    assert torch.equal(first, other) == (name in DETERMINISTIC)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_chunked_runs_are_deterministic(name, images, monkeypatch):
    whole = corrupt(images, name, 4, seed=3)
    monkeypatch.setattr(corruptions, "CHUNK_PIXELS", 5 * 32 * 32)  # chunks of 5, 5, 5 and 1 images
    chunked = corrupt(images, name, 4, seed=3)
    assert chunked.shape == images.shape
    assert torch.equal(chunked, corrupt(images, name, 4, seed=3))
    if name in DETERMINISTIC:
        assert torch.equal(chunked, whole)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_orders_the_difference_from_the_clean_images(name, images):
    diffs = [_mean_abs_diff(corrupt(images, name, s, seed=0), images) for s in range(1, SEVERITIES + 1)]
    assert diffs[0] > 0, diffs
    if name in FALLING:
        assert all(a > b for a, b in pairwise(diffs)), diffs
    elif name in NOT_MONOTONE:
        assert diffs[-1] > diffs[0], diffs
    else:
        for severity, (a, b) in enumerate(pairwise(diffs), start=1):
            assert b >= a if (name, severity) in EQUAL_STEPS else b > a, (severity, diffs)


def test_elastic_local_displacement_grows_with_severity():
    rng = np.random.default_rng(0)
    stds = [corruptions._displacements(rng, 64, 32, 32, a, s).std() for a, s, _ in ELASTIC_TRANSFORM]
    assert stds[0] == 0 and all(a < b for a, b in pairwise(stds)), stds
    jitters = [jitter for _, _, jitter in ELASTIC_TRANSFORM]
    assert jitters == sorted(jitters, reverse=True)  # the affine part shrinks (see FALLING)


def _constant(value: int | tuple[int, int, int], size: int = 32) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.uint8).reshape(1, -1, 1, 1).expand(2, 3, size, size).contiguous()


@pytest.mark.parametrize("severity", range(1, SEVERITIES + 1))
def test_brightness_raises_the_hsv_value(severity):
    c = BRIGHTNESS[severity - 1]
    grey = corrupt(_constant(100), "brightness", severity)
    assert (grey.int() - round(100 + 255 * c)).abs().max() <= 1
    black = corrupt(_constant(0), "brightness", severity)  # black has no hue: it turns grey
    assert (black.int() - round(255 * c)).abs().max() <= 1
    colour = corrupt(_constant((200, 100, 50)), "brightness", severity)[0, :, 0, 0].double()
    value = min(200 / 255 + c, 1.0)  # hue and saturation kept: every channel scales with the value
    expected = torch.tensor([200, 100, 50], dtype=torch.float64) * value / (200 / 255)
    assert (colour - expected).abs().max() <= 1


def test_brightness_at_severity_4_is_exact():
    assert torch.equal(corrupt(_constant(100), "brightness", 4), _constant(151))  # 100 + 0.2 x 255


@pytest.mark.parametrize("severity", range(1, SEVERITIES + 1))
def test_contrast_shrinks_deviations_from_the_mean(severity):
    half = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    half[..., 16:] = 200  # mean 100, deviations +-100
    out = corrupt(half, "contrast", severity)
    c = CONTRAST[severity - 1]
    assert torch.equal(out[..., 16:], torch.full_like(out[..., 16:], round(100 + 100 * c)))
    assert torch.equal(out[..., :16], torch.full_like(out[..., :16], round(100 - 100 * c)))


@pytest.mark.parametrize(
    "name", ["contrast", "pixelate", "defocus_blur", "motion_blur", "zoom_blur", "glass_blur", "elastic_transform"]
)
@pytest.mark.parametrize("severity", [1, SEVERITIES])
def test_a_constant_image_stays_constant(name, severity):
    constant = _constant((90, 140, 30), size=40)
    assert torch.equal(corrupt(constant, name, severity, seed=2), constant)


@pytest.mark.parametrize("severity", range(1, SEVERITIES + 1))
def test_gaussian_noise_has_the_severity_std(severity):
    out = corrupt(_constant(128, size=64), "gaussian_noise", severity, seed=severity).double()
    std = GAUSSIAN_NOISE_STD[severity - 1] * 255
    assert abs(out.std().item() - std) < 0.05 * std
    assert abs(out.mean().item() - 128) < 0.05 * std


@pytest.mark.parametrize("severity", range(1, SEVERITIES + 1))
def test_shot_noise_has_the_poisson_std(severity):
    out = corrupt(_constant(128, size=64), "shot_noise", severity, seed=severity).double()
    photons = SHOT_NOISE_PHOTONS[severity - 1]
    std = math.sqrt(128 / 255 / photons) * 255  # a Poisson count of mean x * photons, divided by photons
    assert abs(out.std().item() - std) < 0.05 * std
    assert abs(out.mean().item() - 128) < 0.05 * std


@pytest.mark.parametrize("severity", range(1, SEVERITIES + 1))
def test_impulse_noise_flips_the_severity_fraction_to_black_or_white(severity):
    out = corrupt(_constant(128, size=128), "impulse_noise", severity, seed=severity)
    amount = IMPULSE_NOISE_AMOUNT[severity - 1]
    black, white = (out == 0).double().mean().item(), (out == 255).double().mean().item()
    assert torch.all((out == 0) | (out == 255) | (out == 128))
    assert abs(black + white - amount) < 0.15 * amount
    assert abs(black - white) < 0.25 * amount


def test_fog_never_exceeds_the_clean_maximum(images):
    for severity in range(1, SEVERITIES + 1):
        out = corrupt(images, "fog", severity)
        assert torch.all(out.flatten(1).amax(1) <= images.flatten(1).amax(1))


@pytest.mark.parametrize("name", ["defocus_blur", "motion_blur", "zoom_blur"])
@pytest.mark.parametrize("severity", [4, SEVERITIES])
def test_spatial_parameters_scale_with_the_resolution(name, severity, images):
    """A 2x-upsampled image, corrupted and downsampled back, is close to the 32 px image corrupted."""
    small = corrupt(images, name, severity)
    large = images.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # pixel-exact 64 px copies
    back = F.avg_pool2d(corrupt(large, name, severity).float(), 2)
    error = _mean_abs_diff(back, small)
    assert error < 3
    assert error < 0.5 * _mean_abs_diff(small, images)  # much less than the corruption itself


@pytest.mark.parametrize("size", [32, 64, 96])
def test_pixelate_blocks_scale_with_the_resolution(size, images):
    """At severity 5 any image is pixelated to 20 x 20 blocks (0.65 x 32 px), not to 0.65 x its size."""
    out = corrupt(F.interpolate(images.float(), size=size, mode="bilinear").round().to(torch.uint8), "pixelate", 5)
    row_changes = (out[:, :, 1:] != out[:, :, :-1]).any(dim=3).any(dim=1).any(dim=0)
    col_changes = (out[..., 1:] != out[..., :-1]).any(dim=2).any(dim=1).any(dim=0)
    assert row_changes.sum().item() + 1 == 20 and col_changes.sum().item() + 1 == 20


def test_unknown_corruption_is_a_one_line_usage_error():
    with pytest.raises(UsageError) as err:
        check_corruption("fogg")
    message = str(err.value)
    assert "\n" not in message and message.startswith("unknown corruption 'fogg'; choose one of: gaussian_noise, ")
    assert all(name in message for name in CORRUPTIONS)
    assert check_corruption("fog") == "fog"


@pytest.mark.parametrize("severity", [0, 6, -1, 2.5, "3", True])
def test_severity_outside_one_to_five_is_a_usage_error(severity):
    with pytest.raises(UsageError, match="severity must be an integer from 1 to 5, got"):
        check_severity(severity)


def test_check_severity_accepts_one_to_five():
    assert [check_severity(s) for s in (1, 2, 3, 4, 5)] == [1, 2, 3, 4, 5]
    assert check_severity(np.int64(3)) == 3


def test_bad_names_and_severities_fail_before_any_work():
    not_images = torch.zeros(2, 5)  # would fail the image checks if they ran first
    with pytest.raises(UsageError, match="unknown corruption"):
        corrupt(not_images, "fogg", 1)
    with pytest.raises(UsageError, match="severity"):
        corrupt(not_images, "fog", 6)


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((2, 3, 16, 16), torch.float32),
        ((2, 1, 16, 16), torch.uint8),
        ((2, 3, 7, 16), torch.uint8),
        ((3, 16, 16), torch.uint8),
    ],
)
def test_malformed_images_are_rejected(shape, dtype):
    with pytest.raises(ValueError, match=r"uint8 \[N, 3, H, W\]"):
        corrupt(torch.zeros(shape, dtype=dtype), "fog", 1)


def test_empty_batches_give_empty_batches():
    out = corrupt(torch.empty(0, 3, 32, 32, dtype=torch.uint8), "snow", 2)
    assert out.shape == (0, 3, 32, 32) and out.dtype == torch.uint8


def _digit_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )


def _on_canvas(images: torch.Tensor) -> torch.Tensor:
    """8 px digits centred on a black 16 px canvas: sharp strokes (upsampled digits have no pixel-scale detail left
    for a half-size blur, or for pixel noise, to remove)."""
    return F.pad(images, (4, 4, 4, 4)).contiguous()


def _error(net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (net(images.float() / 255).argmax(1) != labels).double().mean().item()


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny net trains faster on one thread, and reproducibly
    yield
    torch.set_num_threads(threads)


def test_a_trained_net_errs_more_under_more_severe_corruption(digits, one_thread):
    torch.manual_seed(0)
    net = _digit_net()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    inputs, labels = _on_canvas(digits.train.images).float() / 255, digits.train.labels
    for _ in range(5):
        order = torch.randperm(len(inputs))
        for start in range(0, len(inputs), 32):
            batch = order[start : start + 32]
            optimizer.zero_grad()
            F.cross_entropy(net(inputs[batch]), labels[batch]).backward()
            optimizer.step()
    net.eval()
    test = _on_canvas(digits.test.images)
    clean = _error(net, test, digits.test.labels)
    assert clean < 0.05
    for name in ("gaussian_noise", "defocus_blur", "contrast"):
        mild, severe = (_error(net, corrupt(test, name, s), digits.test.labels) for s in (1, SEVERITIES))
        assert severe >= mild, (name, clean, mild, severe)
        assert severe > clean, (name, clean, mild, severe)

"""The 15 CIFAR-10-C corruptions (Hendrycks & Dietterich, 2019) at 5 severities, at any image resolution.

`corrupt(images, name, severity, seed)` corrupts uint8 `[N, 3, H, W]` images; `CORRUPTION_FUNCTIONS` maps each name
of `data.cifar_c.CORRUPTIONS` to its function on float `[N, H, W, 3]` images in [0, 1]. Everything is numpy, scipy
and torch (Pillow only encodes JPEG); nothing is read from disk or downloaded.

Resolution. The severity parameters are CIFAR-10-C's, chosen for 32 px images, so spatial ones scale with
`k = min(H, W) / 32`: blur radii and sigmas, the glass-blur displacement, the motion-blur length, the elastic
displacement and its smoothing, the size of snow flakes and streaks, the feature size of the fog and frost textures,
and pixelate's blocks (an image is pixelated to `factor x 32` pixels on its shorter side, as CIFAR-10-C's were, not
to `factor x min(H, W)`). Random fields (fog's plasma, frost's texture, snow's flakes, elastic displacements) are
drawn on the grid a 32 px image would have (shorter side 32) and resized to `H x W`. So a CIFAR image upsampled to
64 px gets the corruption its 32 px original would get, upsampled. Photometric parameters (noise levels, brightness,
contrast, JPEG quality) and zoom factors (ratios already) do not scale.

Departures from CIFAR-10-C's generator (which used ImageMagick, OpenCV and frost photographs):
- defocus_blur: a disk with the area of CIFAR-10-C's aliased disk at 32 px, drawn anti-aliased at `k` times that
  radius (so it does not vanish below 32 px), then blurred by the alias sigma x k.
- motion_blur, and snow's streaks: ImageMagick's one-sided kernel (taps `t = 0, 1, ...` pixels along a line, weights
  `exp(-t^2 / 2 sigma^2)`, at most `2 radius + 1` taps), with radius and sigma x k, no taps beyond `4 sigma`, drawn
  bilinearly at the angle and applied by FFT with replicated edges.
- glass_blur: the pixel swaps are done in (2d+1)^2 interleaved sets of pixels whose swaps cannot collide, one set at a
  time, instead of pixel by pixel in raster order; partners are drawn from [-d, d] on both axes (CIFAR-10-C's
  generator draws them from [-d, d), up and left only, which drifts the swapped content up and left).
- elastic_transform: the affine jitter and the smoothed displacement are composed into one bilinear resampling.
- frost: a procedural texture instead of the frost photographs: bright veins at the zero crossings of seeded Gaussian
  noise smoothed (scipy) at four scales, over a smooth haze, tinted blue.
- snow: the flake layer is made as CIFAR-10-C's (seeded Gaussian noise, enlarged, thresholded, motion-blurred),
  without ImageMagick's 8-bit PNG round trip.
- pixelate: exact box filter down, nearest up (PIL's BOX both ways in CIFAR-10-C).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from data.cifar_c import CORRUPTIONS, SEVERITIES
from utils.errors import UsageError

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

CORRUPTION_FUNCTIONS: dict[str, Corruption] = {}
"""Name -> function(float32 images [N, H, W, 3] in [0, 1], severity 1..5, rng) -> float32 [N, H, W, 3], unclipped."""

BASE_SIZE = 32
"""The image size CIFAR-10-C's parameters are defined for."""

CHUNK_PIXELS = 1 << 20
"""Pixels per image chunk processed at once by `corrupt` (memory stays bounded for any number of images)."""

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def corruption(name: str) -> Callable[[Corruption], Corruption]:
    """Decorator registering a corruption function under `name` in `CORRUPTION_FUNCTIONS`."""

    def register(fn: Corruption) -> Corruption:
        if name in CORRUPTION_FUNCTIONS:
            raise ValueError(f"corruption {name!r} is registered twice")
        CORRUPTION_FUNCTIONS[name] = fn
        return fn

    return register


def check_corruption(name: str) -> str:
    """`name` if it is a corruption, else a `UsageError` listing the choices."""
    if name not in CORRUPTION_FUNCTIONS:
        raise UsageError(f"unknown corruption {name!r}; choose one of: {', '.join(CORRUPTION_FUNCTIONS)}")
    return name


def check_severity(severity: int) -> int:
    """`severity` if it is an integer from 1 to 5, else a `UsageError`."""
    if isinstance(severity, bool) or not isinstance(severity, int | np.integer) or not 1 <= severity <= SEVERITIES:
        raise UsageError(f"severity must be an integer from 1 to {SEVERITIES}, got {severity!r}")
    return int(severity)


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """uint8 images `[N, 3, H, W]` under corruption `name` at `severity`: a new uint8 tensor, the same for one seed."""
    fn = CORRUPTION_FUNCTIONS[check_corruption(name)]
    severity = check_severity(severity)
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3 or min(images.shape[2:]) < 8:
        raise ValueError(f"images must be uint8 [N, 3, H, W] with H, W >= 8, got {images.dtype} {tuple(images.shape)}")
    images = images.cpu()
    n, _, h, w = images.shape
    rng = np.random.default_rng(seed)
    out = torch.empty((n, 3, h, w), dtype=torch.uint8)
    chunk = max(1, CHUNK_PIXELS // (h * w))
    for start in range(0, n, chunk):
        x = images[start : start + chunk].permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32) / 255
        y = np.rint(np.clip(fn(x, severity, rng), 0, 1) * 255).astype(np.uint8)
        out[start : start + chunk] = torch.from_numpy(y).permute(0, 3, 1, 2)
    return out


# Shared helpers: scale, resizing, sampling and filtering of float [N, H, W, C] arrays.


def _scale(x: np.ndarray) -> float:
    """How many times larger than a CIFAR image `x` is: `k = min(H, W) / 32`."""
    return min(x.shape[1:3]) / BASE_SIZE


def _base_shape(h: int, w: int) -> tuple[int, int]:
    """The size (shorter side 32) at which an `h x w` image's random fields are drawn."""
    k = min(h, w) / BASE_SIZE
    return max(1, round(h / k)), max(1, round(w / k))


def _to_torch(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(0, 3, 1, 2)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.permute(0, 2, 3, 1).numpy(), dtype=np.float32)


def _resize(fields: np.ndarray, h: int, w: int, mode: str = "bilinear") -> np.ndarray:
    """Fields `[N, h0, w0]` resized to `[N, h, w]`."""
    if fields.shape[1:] == (h, w):
        return fields.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(fields, dtype=np.float32))[:, None]
    return F.interpolate(t, size=(h, w), mode=mode, align_corners=False)[:, 0].numpy()


def _gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """Each image of `x` [N, H, W, C] blurred spatially with a Gaussian of std `sigma` pixels."""
    return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest").astype(np.float32)


def _convolve(x: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """`x` [N, H, W, C] convolved (FFT, edges replicated) with centred odd kernels [N or 1, K, K], one per image."""
    n, h, w, _ = x.shape
    r = kernels.shape[-1] // 2
    padded = F.pad(_to_torch(x), (r, r, r, r), mode="replicate")
    size = (h + 4 * r, w + 4 * r)  # room for the full linear convolution: no wrap-around reaches the kept window
    kernel = torch.from_numpy(np.ascontiguousarray(kernels, dtype=np.float32))[:, None]
    spectrum = torch.fft.rfft2(padded, s=size) * torch.fft.rfft2(kernel, s=size)
    full = torch.fft.irfft2(spectrum, s=size)
    return _to_numpy(full[:, :, 2 * r : 2 * r + h, 2 * r : 2 * r + w])


def _sample(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, padding: str = "border") -> np.ndarray:
    """`x` [N, H, W, C] read bilinearly at pixel coordinates `rows`, `cols` [N or 1, H, W]."""
    n, h, w, _ = x.shape
    grid = np.stack([cols * (2 / max(w - 1, 1)) - 1, rows * (2 / max(h - 1, 1)) - 1], axis=-1)
    grid_t = torch.from_numpy(grid.astype(np.float32)).expand(n, h, w, 2)
    out = F.grid_sample(_to_torch(x), grid_t, mode="bilinear", padding_mode=padding, align_corners=True)
    return _to_numpy(out)


def _line_kernels(radius: float, sigma: float, angles: np.ndarray) -> np.ndarray:
    """One-sided motion kernels [N, K, K]: taps t = 0, 1, ... at `angles` (degrees), weights exp(-t^2 / 2 sigma^2)."""
    taps = max(2, min(2 * math.ceil(radius) + 1, math.ceil(4 * sigma) + 1))
    t = np.arange(taps, dtype=np.float64)
    weights = np.exp(-(t**2) / (2 * max(sigma, 1e-6) ** 2))
    weights /= weights.sum()
    theta = np.deg2rad(angles)[:, None]
    centre = taps  # one pixel of margin around the line's reach, so the bilinear splat stays inside
    rows, cols = centre + t * np.sin(theta), centre + t * np.cos(theta)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    n, size = len(angles), 2 * centre + 1
    kernels = np.zeros((n, size, size))
    image = np.broadcast_to(np.arange(n)[:, None], r0.shape)
    for dr, dc, share in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        np.add.at(kernels, (image, r0 + dr, c0 + dc), weights * share)
    return kernels


def _motion_blur(x: np.ndarray, radius: float, sigma: float, angles: np.ndarray) -> np.ndarray:
    """`x` [N, H, W, C] smeared along a line at `angles` (degrees, one per image)."""
    return _convolve(x, _line_kernels(radius, sigma, angles))


def _zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """`x` [N, H, W, C] enlarged `factor` times about its centre, cropped to its size."""
    h, w = x.shape[1:3]
    rows = ((h - 1) / 2 + (np.arange(h, dtype=np.float64) - (h - 1) / 2) / factor)[:, None]
    cols = ((w - 1) / 2 + (np.arange(w, dtype=np.float64) - (w - 1) / 2) / factor)[None, :]
    return _sample(x, np.broadcast_to(rows, (1, h, w)), np.broadcast_to(cols, (1, h, w)))


def _smooth_noise(rng: np.random.Generator, n: int, h: int, w: int, sigma: float) -> np.ndarray:
    """[N, h, w] Gaussian noise smoothed by `sigma` (in 32 px units) at the base grid, unit std, resized to h x w."""
    h0, w0 = _base_shape(h, w)
    field = ndimage.gaussian_filter(rng.standard_normal((n, h0, w0)), sigma=(0, sigma, sigma), mode="wrap")
    field /= field.std(axis=(1, 2), keepdims=True) + 1e-12
    return _resize(field, h, w, mode="bicubic")


# Noise.

GAUSSIAN_NOISE_STD = (0.04, 0.06, 0.08, 0.09, 0.10)
SHOT_NOISE_PHOTONS = (500, 250, 100, 75, 50)
IMPULSE_NOISE_AMOUNT = (0.01, 0.02, 0.03, 0.05, 0.07)


@corruption("gaussian_noise")
def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise per pixel and channel."""
    std = GAUSSIAN_NOISE_STD[severity - 1]
    return (x + rng.normal(0.0, std, x.shape)).astype(np.float32)


@corruption("shot_noise")
def shot_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson (photon-count) noise."""
    photons = SHOT_NOISE_PHOTONS[severity - 1]
    return (rng.poisson(x * photons) / photons).astype(np.float32)


@corruption("impulse_noise")
def impulse_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise: a fraction of the values, per channel, set to 0 or 1 with equal odds."""
    hit = rng.random(x.shape) < IMPULSE_NOISE_AMOUNT[severity - 1]
    salt = rng.random(x.shape) < 0.5
    return np.where(hit, salt.astype(np.float32), x)


# Blur.

DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))
"""(disk radius, alias blur sigma) at 32 px."""
GLASS_BLUR = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
"""(blur sigma, largest pixel displacement, iterations) at 32 px."""
MOTION_BLUR = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))
"""(radius, sigma) of ImageMagick's motion blur at 32 px (CIFAR-10-C's; (10, 1) ... (12, 3) are Tiny ImageNet-C's)."""
ZOOM_BLUR = (1.06, 1.11, 1.16, 1.21, 1.26)
"""Zoom factors from 1 up to (excluded) these, by 0.01."""


def _disk_kernel(radius: float, sigma: float, k: float) -> np.ndarray:
    """An anti-aliased disk with the area of CIFAR-10-C's aliased disk of `radius`, scaled by `k`, then blurred."""
    reach = math.floor(radius)
    lattice = np.arange(-reach, reach + 1)
    area = np.count_nonzero(lattice[:, None] ** 2 + lattice[None, :] ** 2 <= radius**2)
    r = math.sqrt(area / math.pi) * k
    half = math.ceil(r + 0.5) + math.ceil(4 * sigma * k)
    fine = 8  # sub-samples per pixel side
    offsets = (np.arange((2 * half + 1) * fine) + 0.5) / fine - half - 0.5
    inside = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= r**2).astype(np.float64)
    disk = inside.reshape(2 * half + 1, fine, 2 * half + 1, fine).mean(axis=(1, 3))
    disk = ndimage.gaussian_filter(disk, sigma * k, mode="constant")
    return (disk / disk.sum())[None]


@corruption("defocus_blur")
def defocus_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Convolution with a slightly blurred disk (an out-of-focus lens)."""
    radius, sigma = DEFOCUS_BLUR[severity - 1]
    return _convolve(x, _disk_kernel(radius, sigma, _scale(x)))


def _swap_locally(x: np.ndarray, reach: int, rng: np.random.Generator) -> np.ndarray:
    """Every pixel (`reach` from the border on) swapped with a random one at most `reach` away, in place."""
    n, h, w, _ = x.shape
    period = 2 * reach + 1  # pixels of one residue class are this far apart: their swaps touch disjoint pixels
    image = np.arange(n)[:, None, None]
    for a in reversed(range(period)):
        for b in reversed(range(period)):
            rows = np.arange(reach + a, h - reach, period)
            cols = np.arange(reach + b, w - reach, period)
            if not (rows.size and cols.size):
                continue
            r, c = np.meshgrid(rows, cols, indexing="ij")
            dr, dc = rng.integers(-reach, reach + 1, size=(2, n, *r.shape))
            here = x[image, r, c]
            x[image, r, c] = x[image, r + dr, c + dc]
            x[image, r + dr, c + dc] = here
    return x


@corruption("glass_blur")
def glass_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur, local pixel shuffling, blur again (frosted glass)."""
    sigma, delta, iterations = GLASS_BLUR[severity - 1]
    k = _scale(x)
    reach = max(1, round(delta * k))
    x = _gaussian(x, sigma * k)
    for _ in range(iterations):
        x = _swap_locally(x, reach, rng)
    return _gaussian(x, sigma * k)


@corruption("motion_blur")
def motion_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Smear along a random direction within 45 degrees of horizontal (camera shake)."""
    radius, sigma = MOTION_BLUR[severity - 1]
    k = _scale(x)
    return _motion_blur(x, radius * k, sigma * k, rng.uniform(-45, 45, len(x)))


@corruption("zoom_blur")
def zoom_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """The mean of the image and its centre zooms (a zooming camera)."""
    stop = ZOOM_BLUR[severity - 1]
    factors = 1 + 0.01 * np.arange(round((stop - 1) / 0.01))
    total = x.copy()
    for factor in factors:
        total += _zoom(x, factor)
    return total / (len(factors) + 1)


# Weather.

SNOW = (
    (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
    (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
)
"""(flake mean, flake std, flake zoom, flake threshold, streak radius, streak sigma, image kept) at 32 px."""
FROST = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))
"""(image weight, frost weight)."""
FROST_VEINS = ((0.5, 0.28), (1.0, 0.24), (2.0, 0.2), (4.0, 0.16))
"""(noise smoothing sigma at 32 px, brightness) of the frost texture's vein networks."""
FOG = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))
"""(fog amount, plasma roughness decay)."""


def _snow_layer(rng: np.random.Generator, n: int, h: int, w: int, params: tuple[float, ...]) -> np.ndarray:
    """[N, h, w, 1] falling snow: thresholded enlarged noise streaked downwards."""
    mean, std, zoom, threshold, radius, sigma, _ = params
    k = min(h, w) / BASE_SIZE
    flakes = rng.normal(mean, std, (n, math.ceil(h / (zoom * k)), math.ceil(w / (zoom * k))))
    flakes = _resize(flakes, h, w)
    flakes = np.clip(np.where(flakes < threshold, 0, flakes), 0, 1)
    return _motion_blur(flakes[..., None], radius * k, sigma * k, rng.uniform(-135, -45, n))


@corruption("snow")
def snow(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Snowflakes streaking down over a whitened image."""
    params = SNOW[severity - 1]
    n, h, w, _ = x.shape
    layer = _snow_layer(rng, n, h, w, params)
    kept = params[-1]
    whitened = np.maximum(x, (x @ LUMA)[..., None] * 1.5 + 0.5)
    return kept * x + (1 - kept) * whitened + layer + layer[:, ::-1, ::-1]


def _frost_texture(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """[N, h, w, 3] procedural frost in [0, 1]: networks of thin bright veins at four scales over a bluish haze."""
    haze = _smooth_noise(rng, n, h, w, 5.0)
    texture = 0.3 + 0.12 * haze
    for sigma, weight in FROST_VEINS:  # bright where smooth noise crosses zero: a net of crystal edges per scale
        texture = texture + weight * np.exp(-((_smooth_noise(rng, n, h, w, sigma) / 0.3) ** 2))
    return np.clip(texture, 0, 1)[..., None] * np.array([0.86, 0.93, 1.0], np.float32)


@corruption("frost")
def frost(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A frost texture added over the image, dimmed at higher severities (frost on a window)."""
    weight, amount = FROST[severity - 1]
    n, h, w, _ = x.shape
    return weight * x + amount * _frost_texture(rng, n, h, w)


def _plasma(rng: np.random.Generator, n: int, size: int, decay: float) -> np.ndarray:
    """[N, size, size] periodic diamond-square fractals in [0, 1] (size a power of two); larger decay, smoother."""
    maps = np.zeros((n, size, size))
    step, wibble = size, 100.0
    while step >= 2:  # known points every `step`: fill the square centres, then the edge midpoints, each with noise
        half = step // 2
        corners = maps[:, ::step, ::step]
        below, right = np.roll(corners, -1, axis=1), np.roll(corners, -1, axis=2)
        centres = (corners + below + right + np.roll(below, -1, axis=2)) / 4
        centres += rng.uniform(-wibble, wibble, centres.shape)
        left_centres, upper_centres = np.roll(centres, 1, axis=2), np.roll(centres, 1, axis=1)
        vertical = (corners + below + centres + left_centres) / 4 + rng.uniform(-wibble, wibble, centres.shape)
        horizontal = (corners + right + centres + upper_centres) / 4 + rng.uniform(-wibble, wibble, centres.shape)
        maps[:, half::step, half::step] = centres
        maps[:, half::step, ::step] = vertical
        maps[:, ::step, half::step] = horizontal
        step, wibble = half, wibble / decay
    low, high = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / (high - low + 1e-12)


@corruption("fog")
def fog(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A plasma-fractal haze added, then the image rescaled to its former maximum."""
    amount, decay = FOG[severity - 1]
    n, h, w, _ = x.shape
    h0, w0 = _base_shape(h, w)
    size = 1 << (max(h0, w0) - 1).bit_length()
    haze = _resize(_plasma(rng, n, size, decay)[:, :h0, :w0], h, w)
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    return (x + amount * haze[..., None]) * peak / (peak + amount)


# Digital.

BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
ELASTIC_TRANSFORM = ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))
"""(displacement scale, displacement smoothing sigma, affine jitter), as fractions of the image size (32 px)."""
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)
JPEG_QUALITY = (80, 65, 58, 50, 40)


@corruption("brightness")
def brightness(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """The HSV value (brightest channel) raised, hue and saturation kept."""
    value = x.max(axis=-1, keepdims=True)
    raised = np.minimum(value + BRIGHTNESS[severity - 1], 1).astype(np.float32)
    # Scaling all channels by V'/V keeps hue and saturation; black (V = 0, S = 0 by convention) becomes grey V'.
    return np.where(value > 0, x * (raised / np.maximum(value, 1e-12)), raised)


@corruption("contrast")
def contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Deviations from each image's mean (per channel) shrunk."""
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) * CONTRAST[severity - 1] + mean


def _displacements(rng: np.random.Generator, n: int, h: int, w: int, alpha: float, sigma: float) -> np.ndarray:
    """[N, h, w] smoothed uniform displacements (pixels), drawn at the base grid and scaled to h x w."""
    h0, w0 = _base_shape(h, w)
    field = rng.uniform(-1, 1, (n, h0, w0))
    field = ndimage.gaussian_filter(field, (0, sigma * BASE_SIZE, sigma * BASE_SIZE), mode="reflect", truncate=3)
    return _resize(field * alpha * BASE_SIZE, h, w) * (min(h, w) / BASE_SIZE)


def _affine_jitters(rng: np.random.Generator, n: int, h: int, w: int, jitter: float) -> np.ndarray:
    """[N, 2, 3] maps (x, y, 1) -> (x, y) undoing a random affine warp that moves 3 points up to `jitter` pixels."""
    cx, cy, third = w // 2, h // 2, min(h, w) // 3
    points = np.array([[cx + third, cy + third], [cx + third, cy - third], [cx - third, cy - third]], np.float64)
    moved = points + rng.uniform(-jitter, jitter, (n, 3, 2))
    homogeneous = np.concatenate([moved, np.ones((n, 3, 1))], axis=2)
    return np.linalg.solve(homogeneous, np.broadcast_to(points, (n, 3, 2))).transpose(0, 2, 1)


@corruption("elastic_transform")
def elastic_transform(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A random affine jitter followed by a smooth random local displacement."""
    alpha, sigma, jitter = ELASTIC_TRANSFORM[severity - 1]
    n, h, w, _ = x.shape
    undo = _affine_jitters(rng, n, h, w, jitter * min(h, w))
    rows = np.arange(h, dtype=np.float64)[None, :, None] + _displacements(rng, n, h, w, alpha, sigma)
    cols = np.arange(w, dtype=np.float64)[None, None, :] + _displacements(rng, n, h, w, alpha, sigma)
    src_cols = undo[:, 0, 0, None, None] * cols + undo[:, 0, 1, None, None] * rows + undo[:, 0, 2, None, None]
    src_rows = undo[:, 1, 0, None, None] * cols + undo[:, 1, 1, None, None] * rows + undo[:, 1, 2, None, None]
    return _sample(x, src_rows, src_cols, padding="reflection")


def _box_weights(size: int, small: int) -> np.ndarray:
    """[small, size] box-filter weights: the share of each source pixel in each of `small` equal, wider pixels."""
    width = size / small
    start = np.arange(small)[:, None] * width
    pixel = np.arange(size)[None, :]
    return np.clip(np.minimum(start + width, pixel + 1) - np.maximum(start, pixel), 0, None) / width


@corruption("pixelate")
def pixelate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Box-filtered down to a fraction of the size, then enlarged back with square pixels."""
    factor = PIXELATE[severity - 1]
    h, w = x.shape[1:3]
    h0, w0 = _base_shape(h, w)  # blocks of 1 / factor pixels at 32 px, k / factor pixels at k times that size
    rows, cols = _box_weights(h, max(1, int(h0 * factor))), _box_weights(w, max(1, int(w0 * factor)))
    small = np.einsum("ih,nhwc,jw->nijc", rows, x, cols, optimize=True)
    return _to_numpy(F.interpolate(_to_torch(small), size=(h, w), mode="nearest-exact"))


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


@corruption("jpeg_compression")
def jpeg_compression(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Each image JPEG-encoded and decoded (Pillow, in memory)."""
    quality = JPEG_QUALITY[severity - 1]
    images = np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)
    return np.stack([_jpeg(image, quality) for image in images]).astype(np.float32) / 255


if tuple(CORRUPTION_FUNCTIONS) != CORRUPTIONS:  # pragma: no cover  (a guard for whoever edits this file)
    raise ImportError("robustness.corruptions must register exactly data.cifar_c.CORRUPTIONS, in that order")

"""One-shot space layouts: the papers' layer lists at both scales, paths and their errors."""

import numpy as np
import pytest

from oneshot.blocks import BLOCKS
from oneshot.spaces import (
    FB_CANDIDATES,
    MB_CANDIDATES,
    SCALES,
    SHUFFLE_CANDIDATES,
    SP_CANDIDATES,
    create_oneshot_spec,
    list_oneshot_spaces,
    scaled,
)
from search_space.base import InvalidArchitecture
from utils.errors import UsageError


def stage_list(widths_depths: list[tuple[int, int]]) -> list[int]:
    return [w for w, d in widths_depths for _ in range(d)]


MBV2_CHANNELS = stage_list([(24, 4), (40, 4), (80, 4), (96, 4), (192, 4), (320, 1)])
MBV2_STRIDES = [2, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
FIRST_OF_STAGE = {0, 4, 8, 12, 16, 20}
FBNET_CHANNELS = stage_list([(16, 1), (24, 4), (32, 4), (64, 4), (112, 4), (184, 4), (352, 1)])
FBNET_STRIDES = [1, 2, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
SPOS_CHANNELS = stage_list([(64, 4), (160, 4), (320, 8), (640, 4)])
SPOS_STRIDES = [2, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]

LAYOUTS = {  # name: (stem, fixed (c_in, c_out), channels, ImageNet strides, first stride-2 layer, head)
    "proxyless": (32, (32, 16), MBV2_CHANNELS, MBV2_STRIDES, 0, 1280),
    "singlepath": (32, (32, 16), MBV2_CHANNELS, MBV2_STRIDES, 0, 1280),
    "fbnet": (16, None, FBNET_CHANNELS, FBNET_STRIDES, 1, 1504),
    "spos": (16, None, SPOS_CHANNELS, SPOS_STRIDES, 0, 1024),
}


def test_the_four_spaces_are_registered():
    assert list_oneshot_spaces() == ["fbnet", "proxyless", "singlepath", "spos"]
    assert SCALES == ("cifar", "imagenet")


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_paper_layouts_at_width_1(name, scale):
    stem, fixed, channels, strides, first_s2, head = LAYOUTS[name]
    spec = create_oneshot_spec(name, scale)
    assert (spec.name, spec.scale, spec.width_mult) == (name, scale, 1.0)
    assert spec.stem_channels == stem and spec.head_channels == head and not spec.stem_pool
    assert spec.stem_stride == (2 if scale == "imagenet" else 1)
    if fixed is None:
        assert spec.fixed == ()
    else:
        assert [(f.c_in, f.c_out, f.stride, f.candidates) for f in spec.fixed] == [(*fixed, 1, ("mb_k3_e1",))]
    assert spec.n_layers == len(channels)
    assert [layer.c_out for layer in spec.layers] == channels
    assert [layer.c_in for layer in spec.layers] == [spec.stem_out, *channels[:-1]]
    expected = list(strides)
    if scale == "cifar":
        expected[first_s2] = 1
    assert [layer.stride for layer in spec.layers] == expected
    resolution = 224 if scale == "imagenet" else 32
    assert spec.output_shape(resolution) == (
        channels[-1],
        7 if scale == "imagenet" else 4,
        7 if scale == "imagenet" else 4,
    )


def test_candidates_per_layer():
    proxyless, singlepath = create_oneshot_spec("proxyless"), create_oneshot_spec("singlepath")
    for i in range(21):
        first = i in FIRST_OF_STAGE
        assert proxyless.layers[i].candidates == (MB_CANDIDATES if first else (*MB_CANDIDATES, "skip"))
        assert singlepath.layers[i].candidates == (SP_CANDIDATES if first else (*SP_CANDIDATES, "skip"))
    assert proxyless.n_choices == tuple(6 if i in FIRST_OF_STAGE else 7 for i in range(21))
    assert singlepath.n_choices == tuple(4 if i in FIRST_OF_STAGE else 5 for i in range(21))
    assert create_oneshot_spec("fbnet").n_choices == (9,) * 22
    assert all(layer.candidates == FB_CANDIDATES for layer in create_oneshot_spec("fbnet").layers)
    assert create_oneshot_spec("spos", "imagenet").n_choices == (4,) * 20
    assert all(layer.candidates == SHUFFLE_CANDIDATES for layer in create_oneshot_spec("spos").layers)
    for name in list_oneshot_spaces():
        for layer in create_oneshot_spec(name).layers:
            assert all(c in BLOCKS for c in layer.candidates)


def test_width_mult_rounds_to_multiples_of_8():
    assert [scaled(c, 0.5) for c in (16, 24, 40, 80, 96, 192, 320, 1280)] == [8, 16, 24, 40, 48, 96, 160, 640]
    assert scaled(16, 0.25) == 8 and scaled(24, 0.25) == 8 and scaled(40, 0.25) == 8 and scaled(1504, 0.25) == 376
    spec = create_oneshot_spec("proxyless", width_mult=0.5)
    assert (spec.stem_channels, spec.fixed[0].c_out, spec.head_channels) == (16, 8, 640)
    assert [layer.c_out for layer in spec.layers] == [scaled(c, 0.5) for c in MBV2_CHANNELS]
    assert create_oneshot_spec("fbnet", "imagenet", 2).stem_channels == 32


def test_layer_input_shapes():
    spec = create_oneshot_spec("proxyless", "imagenet")
    shapes = spec.layer_input_shapes(224)
    assert shapes[0] == (16, 112, 112) and shapes[4] == (24, 56, 56) and shapes[20] == (192, 7, 7)
    cifar = create_oneshot_spec("spos")
    assert cifar.layer_input_shapes(32)[:5] == [(16, 32, 32), (64, 32, 32), (64, 32, 32), (64, 32, 32), (64, 32, 32)]
    assert cifar.layer_input_shapes(32)[-1] == (640, 4, 4)
    assert create_oneshot_spec("spos", "imagenet").layer_input_shapes(224)[0] == (16, 112, 112)


def test_paths_names_and_sampling():
    spec = create_oneshot_spec("proxyless")
    path = [0] * 4 + [5, 6, 6, 6] + [1] * 13
    names = spec.names(path)
    assert names[:5] == ["mb_k3_e3"] * 4 + ["mb_k7_e6"] and names[5] == "skip"
    assert spec.path_of(names) == path and spec.candidate(5, 6) == "skip"
    assert spec.validate_path(np.array(path)) == path
    a, b = spec.sample_path(np.random.default_rng(3)), spec.sample_path(np.random.default_rng(3))
    assert a == b and spec.validate_path(a) == a
    draws = np.array([spec.sample_path(np.random.default_rng(s)) for s in range(300)])
    assert set(draws[:, 1]) == set(range(7)) and set(draws[:, 0]) == set(range(6))
    assert spec.n_paths() == 6**6 * 7**15


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ([0] * 20, "a path has 21 choices .*got 20"),
        ([0] * 22, "got 22"),
        ([0, 7, *[0] * 19], "layer 1 choice 7 is outside \\[0, 6\\]"),
        ([6, *[0] * 20], "layer 0 choice 6 is outside \\[0, 5\\]"),
        ([0, -1, *[0] * 19], "layer 1 choice -1"),
        ([0, 1.5, *[0] * 19], "layer 1 choice 1.5 is not an integer"),
        ([True, *[0] * 20], "layer 0 choice True"),
        ("0" * 21, "sequence"),
    ],
)
def test_bad_paths_name_the_layer(path, match):
    spec = create_oneshot_spec("proxyless")
    with pytest.raises(InvalidArchitecture, match=match) as err:
        spec.validate_path(path)
    assert "\n" not in str(err.value)


def test_bad_names_name_the_layer():
    spec = create_oneshot_spec("fbnet")
    names = spec.names([0] * 22)
    with pytest.raises(InvalidArchitecture, match="layer 3 block 'mb_k3_e3' is not one of fb_k3_e1, "):
        spec.path_of([*names[:3], "mb_k3_e3", *names[4:]])
    with pytest.raises(InvalidArchitecture, match="22 candidates"):
        spec.path_of(names[:-1])
    with pytest.raises(InvalidArchitecture, match="layer 30"):
        spec.candidate(30, 0)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("darts",), "unknown one-shot space 'darts'; choose one of: fbnet, proxyless, singlepath, spos"),
        (("fbnet", "mobile"), "unknown one-shot scale 'mobile'; choose one of: cifar, imagenet"),
        (("fbnet", "cifar", 0), "width_mult must be a positive number, got 0"),
        (("fbnet", "cifar", -1.0), "got -1.0"),
        (("spos", "imagenet", 0.125), "spos at width_mult 0.125: layer 0 would not widen its 8 channels at stride 2"),
        (("spos", "cifar", 0.05), "spos at width_mult 0.05: layer 4 .*use a larger width_mult"),
    ],
)
def test_bad_specs_are_one_line_usage_errors(args, match):
    with pytest.raises(UsageError, match=match) as err:
        create_oneshot_spec(*args)
    assert "\n" not in str(err.value)

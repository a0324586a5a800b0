"""The analytic `CostModel` against measurements on subnets extracted from a real OFA MobileNetV3 supernet."""

import itertools
import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from hw.metrics import CostCounts, CostMetrics
from search_space import InvalidArchitecture, create_search_space
from search_space.ofa_mbv3 import (
    CostModel,
    OFAMobileNetV3LiveTracer,
    clear_cost_cache,
    compute_metrics,
    measure,
    measure_counts,
)
from supernets.ofa_mbv3 import SupernetConfig, build_supernet, extract_subnet

CFG = SupernetConfig(n_classes=10)
SPACE = create_search_space("ofa_mbv3", lr=32, ur=32)
RESOLUTIONS = (32, 40)
ARCHS = [SPACE.smallest(), SPACE.largest(), *SPACE.sample(20, np.random.default_rng(2024))]


def at(arch, resolution):
    return {**arch, "r": resolution}


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return build_supernet(CFG)


@pytest.fixture(scope="module")
def cost_model():
    return CostModel(CFG)


def traced_events(subnet, resolution):
    subnet.eval()
    with torch.no_grad(), OFAMobileNetV3LiveTracer(subnet) as tracer:
        subnet(torch.randn(1, 3, resolution, resolution))
    return tracer.events


def check_against_subnet(model, subnet, arch):
    """Exact equality of every metric, of the per-operation live elements and of per-module parameters."""
    expected = measure_counts(subnet, arch["r"])
    assert expected.peak_act is not None
    assert model.counts(arch) == expected
    assert model(arch) == expected.to_metrics()

    rows = model.layers(arch)
    assert [(row.name, row.live) for row in rows] == traced_events(subnet, arch["r"])

    modules = dict(subnet.named_modules())
    for row in rows:
        if row.name in modules:
            params = sum(p.numel() for p in modules[row.name].parameters())
            inner = [r for r in rows if r.name == row.name or r.name.startswith(row.name + ".")]
            assert params == sum(r.params for r in inner), row.name
        else:
            assert row.name.endswith(".add") and row.name.removesuffix(".add") in modules


@pytest.mark.parametrize("index", range(len(ARCHS)))
def test_analytic_equals_measured(supernet, cost_model, index):
    arch = ARCHS[index]
    subnet = extract_subnet(supernet, arch)
    # the CNAS definition also counts Flatten/AvgPool2d/MaxPool2d modules: an ofa subnet has none
    assert not any(isinstance(m, nn.Flatten | nn.AvgPool2d | nn.MaxPool2d) for m in subnet.modules())
    for resolution in RESOLUTIONS:
        check_against_subnet(cost_model, subnet, at(arch, resolution))


def test_odd_resolution_matches(supernet, cost_model):
    arch = at(ARCHS[2], 33)
    check_against_subnet(cost_model, extract_subnet(supernet, arch), arch)


def test_wider_supernet_with_100_classes():
    cfg = SupernetConfig(n_classes=100, width_mult=1.2)
    net = build_supernet(cfg)
    model = CostModel(cfg)
    archs = [SPACE.smallest(), SPACE.largest(), *SPACE.sample(2, np.random.default_rng(7))]
    for arch in archs:
        subnet = extract_subnet(net, arch)
        assert subnet.classifier.linear.out_features == 100
        for resolution in (32, 48):
            check_against_subnet(model, subnet, at(arch, resolution))
    assert model(archs[0]).params > CostModel(CFG)(archs[0]).params


PINNED = {  # n_classes=10, width 1.0, r=32; verified against measure() on the extracted subnets
    "smallest": CostCounts(params=2_142_602, macs=3_935_184, activations=133_690, peak_act=16_384, latency=35_330),
    "largest": CostCounts(params=6_396_570, macs=15_198_240, activations=393_242, peak_act=30_720, latency=325_254),
}


@pytest.mark.parametrize("which", ["smallest", "largest"])
def test_pinned_values(cost_model, which):
    arch = getattr(SPACE, which)()
    assert arch["r"] == 32
    assert cost_model.counts(arch) == PINNED[which]
    metrics = cost_model(arch)
    assert metrics.params == pytest.approx(PINNED[which].params / 1e6, rel=1e-12)
    assert metrics.macs == pytest.approx(PINNED[which].macs / 1e6, rel=1e-12)


def test_resolution_changes_only_feature_map_costs(cost_model):
    for arch in SPACE.sample(30, np.random.default_rng(3)):
        counts = [cost_model.counts(at(arch, r)) for r in range(32, 97, 8)]
        assert len({c.params for c in counts}) == 1
        for smaller, larger in itertools.pairwise(counts):
            assert larger.macs > smaller.macs
            assert larger.activations > smaller.activations
            assert larger.peak_act >= smaller.peak_act


def bumped(arch, space):
    """Every architecture that raises one kernel, one expansion or one depth choice of `arch` by one step."""
    slots = len(arch["ks"]) // 5
    for s, depth in enumerate(arch["d"]):
        for i in range(depth):
            j = s * slots + i
            for key, choices in (("ks", space.ks_list), ("e", space.e_list)):
                pos = choices.index(arch[key][j])
                if pos + 1 < len(choices):
                    values = list(arch[key])
                    values[j] = choices[pos + 1]
                    yield {**arch, key: values}
        pos = space.d_list.index(depth)
        if pos + 1 < len(space.d_list):
            depths = list(arch["d"])
            depths[s] = space.d_list[pos + 1]
            yield {**arch, "d": depths}


def test_larger_choices_never_decrease_params_or_macs(cost_model):
    archs = [SPACE.smallest(), *SPACE.sample(60, np.random.default_rng(11))]
    checked = 0
    for arch in archs:
        for resolution in RESOLUTIONS:
            base = cost_model.counts(at(arch, resolution))
            for bigger in bumped(at(arch, resolution), SPACE):
                counts = cost_model.counts(bigger)
                assert counts.params >= base.params
                assert counts.macs >= base.macs
                checked += 1
    assert checked > 1000


def test_layer_table_adds_up(cost_model):
    for arch in [*ARCHS[:5], at(ARCHS[5], 40)]:
        rows = cost_model.layers(arch)
        counts = cost_model.counts(arch)
        assert sum(r.params for r in rows) == counts.params
        assert sum(r.macs for r in rows) == counts.macs
        assert sum(r.activations for r in rows) == counts.activations
        assert max(r.live for r in rows) == counts.peak_act
        assert rows[0].name == "first_conv" and rows[-1].name == "classifier"
        assert rows[-1].output == CFG.n_classes


def test_ten_thousand_distinct_architectures_are_fast():
    space = create_search_space("ofa_mbv3")  # 192..256 px, the upstream default
    archs = space.sample(10_000, np.random.default_rng(5))
    assert len({tuple(space.encode(a)) for a in archs}) == 10_000
    model = CostModel(CFG)
    clear_cost_cache()
    start = time.perf_counter()
    results = [model(arch) for arch in archs]
    elapsed = time.perf_counter() - start
    assert elapsed < 10.0, f"10,000 analytic evaluations took {elapsed:.2f} s"
    assert all(r.macs > 0 and r.peak_act > 0 for r in results)


def test_compute_metrics_uses_the_config(cost_model):
    arch = ARCHS[3]
    assert compute_metrics(arch, CFG) == cost_model(arch)
    assert compute_metrics(arch, CFG) == compute_metrics(dict(arch), SupernetConfig(n_classes=10))
    wide = compute_metrics(arch, SupernetConfig(n_classes=1000))
    assert wide.params > cost_model(arch).params
    assert wide.peak_act == cost_model(arch).peak_act


def test_metrics_as_dict():
    metrics = CostMetrics(params=1.5, macs=2.0, activations=3.0, peak_act=0.25, latency=0.5)
    assert metrics.as_dict() == {"params": 1.5, "macs": 2.0, "activations": 3.0, "peak_act": 0.25, "latency": 0.5}


@pytest.mark.parametrize("array", [(8, 8), (32, 16), (1, 1)])
def test_latency_on_other_arrays_equals_the_hook_measurement(supernet, array):
    model = CostModel(CFG, array=array)
    for arch in (at(ARCHS[1], 24), at(ARCHS[4], 40)):
        measured = measure_counts(extract_subnet(supernet, arch), arch["r"], array)
        assert model.counts(arch).latency == measured.latency
    assert compute_metrics(ARCHS[1], CFG, array) == model(ARCHS[1])


def test_latency_is_not_monotonic_in_width():
    """On a 16x16 array, 16 output channels cost one column pass and 17 cost two: MACs grow 6 %, latency 2x."""
    lat = {c: measure_counts(nn.Sequential(nn.Conv2d(3, c, 1)), 8).latency for c in (8, 16, 17)}
    assert lat == {8: 64, 16: 64, 17: 128}


@pytest.mark.parametrize(
    "change",
    [
        {"ks": [4] * 20},
        {"e": [5] * 20},
        {"d": [1] * 5},
        {"d": [4] * 4},
        {"r": 0},
        {"r": "32"},
    ],
)
def test_invalid_architectures_are_rejected(cost_model, change):
    with pytest.raises(InvalidArchitecture):
        cost_model({**ARCHS[1], **change})


def test_missing_key_is_rejected(cost_model):
    arch = dict(ARCHS[0])
    del arch["r"]
    with pytest.raises(InvalidArchitecture):
        cost_model(arch)


def test_measure_on_a_plain_network():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 5),
    )
    net.train()
    counts = measure_counts(net, 8)
    assert net.training  # the mode is restored
    assert counts.params == (8 * 27 + 8) + 16 + (128 * 5 + 5)
    assert counts.macs == 8 * 27 * 64 + 128 * 5
    assert counts.activations == 8 * 64 + 8 * 64 + 8 * 16 + 128 + 5
    assert counts.peak_act is None
    assert counts.latency == 2 * 1 * 64 + 8 * 1 * 1  # ceil(27/16)·ceil(8/16)·8² + ceil(128/16)·ceil(5/16)
    assert measure_counts(net, 8, (8, 8)).latency == 4 * 1 * 64 + 16 * 1 * 1
    assert math.isnan(measure(net, 8).peak_act)
    with pytest.raises(TypeError):
        OFAMobileNetV3LiveTracer(net)


def test_tracer_refuses_the_elastic_supernet(supernet):
    with pytest.raises(TypeError):
        OFAMobileNetV3LiveTracer(supernet)

"""Lookup tables: every space's path costs equal the counts measured on the extracted network, exactly."""

import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hw.measure import measure_counts, model_cost
from oneshot.lut import HC_METRICS, LUT_METRICS, LookupTable, lookup_table
from oneshot.spaces import create_oneshot_spec, list_oneshot_spaces
from oneshot.supernet import OneShotSupernet
from search_space.base import InvalidArchitecture
from utils.errors import UsageError

N_CLASSES = 5
ARRAY = (8, 8)


def flops_macs(net: torch.nn.Module, r: int) -> int:
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, r, r))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize(("scale", "r"), [("cifar", 16), ("imagenet", 32)])
@pytest.mark.parametrize("name", list_oneshot_spaces())
def test_path_costs_equal_the_measured_extracted_network(name, scale, r):
    torch.manual_seed(0)
    net = OneShotSupernet(create_oneshot_spec(name, scale, 0.25), N_CLASSES)
    lut = LookupTable.build(net, resolution=r, array=ARRAY)
    assert (lut.resolution, lut.space, lut.scale, lut.n_classes) == (r, name, scale, N_CLASSES)
    rng = np.random.default_rng(1)
    paths = [lut.smallest()[0], lut.largest()[0], *(net.spec.sample_path(rng) for _ in range(3))]
    for path in paths:
        sub = net.extract(path)
        measured = measure_counts(sub, (3, r, r), ARRAY)
        assert lut.counts(path) == measured  # params, MACs, activations, latency; peak_act None in both
        assert lut.cost(path, "macs") == flops_macs(sub, r)
        assert lut.cost(path, "flops") == 2 * measured.macs
        assert lut.cost(path, "peak_act") == model_cost("peak_act", sub, (3, r, r))


def test_build_from_a_spec_equals_build_from_the_supernet_and_keeps_the_rng():
    spec = create_oneshot_spec("fbnet", "cifar", 0.25)
    state = torch.random.get_rng_state()
    lut = LookupTable.build(spec, N_CLASSES, 16, ARRAY)
    assert torch.equal(torch.random.get_rng_state(), state)  # building candidates does not draw from the caller
    assert lut == LookupTable.build(OneShotSupernet(spec, N_CLASSES), resolution=16, array=ARRAY)
    assert lookup_table(spec, N_CLASSES, 16, ARRAY) is lookup_table(spec, N_CLASSES, 16, ARRAY)
    assert len(lut.table["macs"]) == 22 and all(len(row) == 9 for row in lut.table["params"])
    assert set(lut.table) == {*LUT_METRICS, "peak_act"} == set(lut.fixed)


def test_identity_skip_costs_nothing_and_smallest_largest_are_the_extremes():
    spec = create_oneshot_spec("proxyless", "cifar", 0.25)
    lut = lookup_table(spec, N_CLASSES, 16, ARRAY)
    for i, layer in enumerate(spec.layers):
        if "skip" in layer.candidates:
            assert all(lut.table[m][i][layer.candidates.index("skip")] == 0 for m in LUT_METRICS)
    small, small_macs = lut.smallest()
    large, large_macs = lut.largest()
    assert spec.names(small) == ["mb_k3_e3" if "skip" not in layer.candidates else "skip" for layer in spec.layers]
    assert spec.names(large) == ["mb_k7_e6"] * 21
    rng = np.random.default_rng(0)
    for _ in range(20):
        path = spec.sample_path(rng)
        assert small_macs <= lut.cost(path) <= large_macs
    assert lut.smallest("params")[1] <= lut.cost(small, "params")
    assert lut.largest("flops") == (large, 2 * large_macs)


@pytest.mark.parametrize("metric", [*LUT_METRICS, "flops"])
def test_expected_cost_with_one_hot_probabilities_is_the_path_cost_and_its_gradient_the_table(metric):
    spec = create_oneshot_spec("singlepath", "cifar", 0.25)
    lut = lookup_table(spec, N_CLASSES, 16, ARRAY)
    path = spec.sample_path(np.random.default_rng(2))
    probs = [
        torch.nn.functional.one_hot(torch.tensor(c), n).float().requires_grad_()
        for c, n in zip(path, spec.n_choices, strict=True)
    ]
    value = lut.expected(probs, metric)
    assert value.dtype == torch.float64 and value.shape == ()
    assert value.item() == lut.cost(path, metric)
    value.backward()
    base, factor = ("macs", 2) if metric == "flops" else (metric, 1)
    for p, row in zip(probs, lut.table[base], strict=True):
        assert p.grad.tolist() == [factor * v for v in row]


def test_expected_cost_of_uniform_probabilities_is_the_mean_entry():
    spec = create_oneshot_spec("spos", "cifar", 0.25)
    lut = lookup_table(spec, N_CLASSES, 16, ARRAY)
    probs = [torch.full((n,), 1 / n, dtype=torch.float64) for n in spec.n_choices]
    mean = lut.fixed["params"] + sum(sum(row) / len(row) for row in lut.table["params"])
    assert lut.expected(probs, "params").item() == pytest.approx(mean, rel=1e-12)


def test_json_round_trip():
    lut = lookup_table(create_oneshot_spec("fbnet", "imagenet", 0.25), N_CLASSES, 32, ARRAY)
    back = LookupTable.from_dict(json.loads(json.dumps(lut.to_dict())))
    assert back == lut and back.array == ARRAY
    assert json.loads(lut.to_json()) == lut.to_dict()


def test_bad_inputs_are_one_line_errors():
    spec = create_oneshot_spec("proxyless", "cifar", 0.25)
    lut = lookup_table(spec, N_CLASSES, 16, ARRAY)
    with pytest.raises(
        UsageError, match="unknown cost metric 'energy'; hardware-constraint metrics: macs, flops, params"
    ):
        lut.cost([0] * 21, "energy")
    with pytest.raises(UsageError, match="lookup-table metrics: macs, params, activations, latency"):
        lut.expected([torch.ones(n) for n in spec.n_choices], "peak_act")
    with pytest.raises(InvalidArchitecture, match="layer 20 choice 6 is outside"):
        lut.cost([0] * 20 + [6])
    with pytest.raises(InvalidArchitecture, match="21 choices"):
        lut.counts([0] * 3)
    with pytest.raises(UsageError, match="21 probability vectors"):
        lut.expected([torch.ones(6)])
    with pytest.raises(UsageError, match="layer 0: probabilities of shape"):
        lut.expected([torch.ones(7) for _ in range(21)])
    with pytest.raises(UsageError, match="not a lookup table"):
        LookupTable.from_dict({"table": {}})
    with pytest.raises(UsageError, match="needs n_classes"):
        LookupTable.build(spec)
    assert HC_METRICS == ("macs", "flops", "params")

"""The one-shot spaces registered for the outer search: genome, validation, costs, supernet bundle."""

import numpy as np
import pytest
import torch

from hw.measure import measure_counts, model_cost
from oneshot.supernet import OneShotSupernet
from search_space import SEARCH_SPACES, InvalidArchitecture, create_search_space
from search_space.oneshot import registered_name
from utils.errors import UsageError

NAMES = ["proxyless", "fbnet", "spos", "singlepath"]
REGISTERED = [*NAMES, *(f"{n}_imagenet" for n in NAMES)]
FIRST_OF_STAGE = {0, 4, 8, 12, 16, 20}


def test_eight_spaces_are_registered_with_one_line_help():
    for name in REGISTERED:
        entry = SEARCH_SPACES.entry(name)
        assert entry.help and "\n" not in entry.help
        space = create_search_space(name)
        assert space.name == name and space.default_evaluator == "supernet"
        assert space.scale == ("imagenet" if name.endswith("_imagenet") else "cifar")
        assert space.default_supernet("digits", 1.0, "cpu") is None
        assert registered_name(space.space, space.scale) == name
    with pytest.raises(UsageError, match="unknown one-shot space 'nas'"):
        registered_name("nas")
    with pytest.raises(UsageError, match="unknown one-shot scale 'tiny'"):
        registered_name("spos", "tiny")


def test_genome_and_architecture():
    space = create_search_space("proxyless", lr=16, ur=32, rstep=8)
    assert space.n_var == 22 and space.resolutions == (16, 24, 32)
    assert space.xu.tolist() == [5 if i in FIRST_OF_STAGE else 6 for i in range(21)] + [2]
    x = np.array([0] * 4 + [5 if i in FIRST_OF_STAGE else 6 for i in range(4, 21)] + [2])
    arch = space.decode(x)
    assert arch == {
        "blocks": ["mb_k3_e3"] * 4 + ["skip" if i not in FIRST_OF_STAGE else "mb_k7_e6" for i in range(4, 21)],
        "r": 32,
    }
    assert space.encode(arch).tolist() == x.tolist()
    assert space.summary(arch) == "r32 0000" + "".join("5" if i in FIRST_OF_STAGE else "6" for i in range(4, 21))
    assert space.gene_names()[1] == "layer 1 block (24->24, stride 1)" and space.gene_names()[-1] == "resolution"
    assert space.unrestricted().validate({**arch, "r": 100}) == {**arch, "r": 100}


def test_smallest_and_largest_by_macs():
    space = create_search_space("proxyless", lr=16, ur=24, rstep=8)
    assert space.smallest() == {
        "blocks": ["mb_k3_e3" if i in FIRST_OF_STAGE else "skip" for i in range(21)],
        "r": 16,
    }
    assert space.largest() == {"blocks": ["mb_k7_e6"] * 21, "r": 24}
    spos = create_search_space("spos_imagenet")
    costs = spos.cost_function(10)
    samples = spos.sample(10, np.random.default_rng(0))
    assert all(costs(spos.smallest()).macs <= costs(a).macs <= costs(spos.largest()).macs for a in samples)


@pytest.mark.parametrize(
    ("arch", "match"),
    [
        ({"blocks": ["fb_k3_e1"] * 22}, "has the keys blocks, r"),
        ({"blocks": ["fb_k3_e1"] * 21, "r": 32}, "22 candidates"),
        ({"blocks": ["fb_k3_e1"] * 5 + ["mb_k3_e3"] + ["fb_k3_e1"] * 16, "r": 32}, "layer 5 block 'mb_k3_e3'"),
        ({"blocks": ["fb_k3_e1"] * 22, "r": 30}, "r = 30 is not one of 32..32"),
        ({"blocks": ["fb_k3_e1"] * 22, "r": True}, "r = True"),
    ],
)
def test_invalid_architectures_name_the_field(arch, match):
    with pytest.raises(InvalidArchitecture, match=match) as err:
        create_search_space("fbnet").validate(arch)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["fbnet", "spos_imagenet", "singlepath"])
def test_costs_equal_the_measured_extracted_and_built_networks(name):
    space = create_search_space(name, lr=16, ur=24, rstep=8)
    torch.manual_seed(0)
    supernet = space.build_supernet(5, width_mult=0.25)
    assert isinstance(supernet, OneShotSupernet) and supernet.spec.width_mult == 0.25
    costs = space.cost_function(5, width_mult=0.25, array=(8, 8))
    for arch in [space.smallest(), *space.sample(2, np.random.default_rng(3))]:
        r = arch["r"]
        for net in (space.extract(supernet, arch), space.build_network(arch, 5, width_mult=0.25)):
            measured = measure_counts(net, (3, r, r), (8, 8)).to_metrics()
            got = costs(arch)
            for key in ("params", "macs", "activations", "latency"):
                assert getattr(got, key) == getattr(measured, key), key
            assert got.peak_act == model_cost("peak_act", net, (3, r, r)) / 1e6
            assert space.measure(net, arch, (8, 8)) == got


def test_extract_refuses_another_supernet():
    space = create_search_space("proxyless")
    other = create_search_space("singlepath").build_supernet(5, width_mult=0.25)
    with pytest.raises(UsageError, match="not a proxyless one-shot supernet"):
        space.extract(other, space.smallest())
    with pytest.raises(UsageError, match="--lr 40 is larger than maximum --ur 32"):
        create_search_space("proxyless", lr=40)

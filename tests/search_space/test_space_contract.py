"""The contract every registered search space keeps, checked on each of them and on the tiny test space."""

from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from torch import nn

from evaluator import EVALUATORS
from hw.measure import measure_counts
from search_space import SEARCH_SPACES, InvalidArchitecture, SearchSpace, create_search_space, list_search_spaces
from tests.search_space.tiny_space import TinySpace
from utils.errors import UsageError

SPACES = [*list_search_spaces(aliases=False), "tiny"]
N_CLASSES = 7


@pytest.fixture(params=SPACES)
def space(request) -> SearchSpace:
    """Each registered space over 16-24 px (the tiny space registered for the test only)."""
    tiny = SEARCH_SPACES.register_temporarily("tiny", TinySpace) if request.param == "tiny" else nullcontext()
    with tiny:
        yield create_search_space(request.param, lr=16, ur=24, rstep=4)


def probes(space: SearchSpace) -> list[dict]:
    return [space.smallest(), space.largest(), *space.sample(3, np.random.default_rng(0))]


def networks(space: SearchSpace) -> Callable[[dict], nn.Module]:
    """`arch -> network`: extracted from one fresh supernet, or, in a space without one, its `build_network`.

    The darts spaces have no supernet (their evaluator searches and trains every network); their cost function
    counts the reference network `build_network` gives.
    """
    try:
        supernet = space.build_supernet(N_CLASSES)
    except UsageError:
        return lambda arch: space.build_network(arch, N_CLASSES)
    return lambda arch: space.extract(supernet, arch)


def test_genome_round_trip_and_bounds(space):
    assert space.name in SEARCH_SPACES and len(space.xl) == len(space.xu) == space.n_var == len(space.gene_names())
    assert (space.xl <= space.xu).all()
    for arch in probes(space):
        x = space.encode(arch)
        assert ((space.xl <= x) & (x <= space.xu)).all()
        assert space.decode(x) == space.validate(arch) == arch
        assert space.unrestricted().validate(arch) == arch
    archs = space.sample(5, np.random.default_rng(1))
    assert len({tuple(space.encode(a)) for a in archs}) == 5


def test_bad_genomes_name_the_gene(space):
    with pytest.raises(InvalidArchitecture, match="gene 0"):
        space.decode(np.r_[space.xu[0] + 1, space.xl[1:]])
    with pytest.raises(InvalidArchitecture):
        space.decode(space.xl[:-1])
    with pytest.raises(InvalidArchitecture):
        space.validate({"nonsense": 1})


def test_default_evaluator_is_registered(space):
    assert space.default_evaluator in EVALUATORS


def test_cost_function_equals_measured_costs_of_the_extracted_network(space):
    torch.manual_seed(0)
    network = networks(space)
    costs = space.cost_function(N_CLASSES, array=(8, 8))
    for arch in probes(space):
        r = space.resolution(arch)
        net = network(arch)
        assert net(torch.zeros(2, 3, r, r)).shape == (2, N_CLASSES)
        measured = measure_counts(net, (3, r, r), (8, 8)).to_metrics()
        got = costs(arch)
        for key in ("params", "macs", "activations", "latency"):
            assert getattr(got, key) == pytest.approx(getattr(measured, key), rel=1e-12), key
        assert got.peak_act > 0


def test_load_supernet_restores_the_saved_weights(space, tmp_path):
    torch.manual_seed(1)
    path = tmp_path / "supernet.pth"
    try:
        supernet = space.build_supernet(N_CLASSES)
    except UsageError as err:  # a space without a supernet says so in one line, wherever one is asked for
        assert "\n" not in str(err)
        with pytest.raises(UsageError, match="no weight-sharing supernet"):
            space.load_supernet(path, N_CLASSES)
        return
    torch.save({"state_dict": supernet.state_dict()}, path)
    loaded = space.load_supernet(path, N_CLASSES)
    restored = loaded.state_dict()
    assert all(torch.equal(restored[key], value) for key, value in supernet.state_dict().items())
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="corrupt or unreadable checkpoint"):
        space.load_supernet(path, N_CLASSES)

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_space import InvalidArchitecture, create_search_space, list_search_spaces
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from search_space.oneshot import OneShotSearchSpace
from utils.errors import UsageError

SPACE = OFAMobileNetV3Space(lr=24, ur=40, rstep=4)


def genomes(space: OFAMobileNetV3Space = SPACE) -> st.SearchStrategy[np.ndarray]:
    return st.tuples(*[st.integers(int(lo), int(hi)) for lo, hi in zip(space.xl, space.xu, strict=True)]).map(
        lambda t: np.array(t, dtype=np.int64)
    )


def test_bounds_match_the_choices():
    assert SPACE.n_var == 46
    assert SPACE.resolutions == (24, 28, 32, 36, 40)
    per_stage = [2, 2, 2, 2, 2, 2, 2, 2, 2]
    assert SPACE.xu.tolist() == per_stage * 5 + [4]
    assert SPACE.xl.tolist() == [0] * 46
    names = SPACE.gene_names()
    assert names[0] == "stage 0 depth" and names[1] == "stage 0 layer 0 kernel" and names[5] == "stage 0 layer 0 expand"
    assert names[9] == "stage 1 depth" and names[-1] == "resolution"


def test_known_genome_decodes_to_known_architecture():
    x = np.zeros(46, dtype=np.int64)
    x[0] = 2  # stage 0: depth 4
    x[1:5] = [0, 1, 2, 1]  # kernels 3 5 7 5
    x[5:9] = [2, 2, 1, 0]  # expansions 6 6 4 3
    x[9] = 1  # stage 1: depth 3, its fourth layer unused
    x[9 + 4] = 2  # kernel gene of the unused layer: normalised away
    x[-1] = 3
    arch = SPACE.decode(x)
    assert arch["d"] == [4, 3, 2, 2, 2]
    assert arch["ks"][:8] == [3, 5, 7, 5, 3, 3, 3, 3]
    assert arch["e"][:4] == [6, 6, 4, 3]
    assert arch["r"] == 36
    assert SPACE.encode(arch)[13] == 0


def test_smallest_and_largest():
    assert SPACE.smallest() == {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 24}
    largest = SPACE.largest()
    assert largest == {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 40}
    assert SPACE.encode(largest).tolist() == SPACE.xu.tolist()


@settings(max_examples=200, deadline=None)
@given(genomes())
def test_decode_is_valid_and_encode_is_canonical(x):
    arch = SPACE.decode(x)
    assert SPACE.validate(arch) == arch
    canonical = SPACE.encode(arch)
    assert SPACE.decode(canonical) == arch
    assert SPACE.encode(SPACE.decode(canonical)).tolist() == canonical.tolist()
    for s, depth in enumerate(arch["d"]):  # unused layers carry the first choice, in the genome and the dict
        for j in range(depth, 4):
            assert canonical[s * 9 + 1 + j] == 0 and canonical[s * 9 + 5 + j] == 0
            assert arch["ks"][s * 4 + j] == 3 and arch["e"][s * 4 + j] == 3
    json.loads(json.dumps(arch))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_samples_are_valid_distinct_and_round_trip(seed):
    archs = SPACE.sample(10, np.random.default_rng(seed))
    assert len(archs) == 10
    assert len({json.dumps(a) for a in archs}) == 10
    for arch in archs:
        assert SPACE.decode(SPACE.encode(arch)) == arch
        x = SPACE.encode(arch)
        assert ((x >= SPACE.xl) & (x <= SPACE.xu)).all()


def test_two_genomes_of_one_network_encode_alike():
    x = SPACE.encode(SPACE.smallest())
    y = x.copy()
    y[3] = 2  # stage 0 layer 2 kernel: unused at depth 2
    assert SPACE.decode(x) == SPACE.decode(y)
    assert SPACE.encode(SPACE.decode(y)).tolist() == x.tolist()


def test_sampling_is_seeded():
    a = SPACE.sample(5, np.random.default_rng(3))
    b = SPACE.sample(5, np.random.default_rng(3))
    c = SPACE.sample(5, np.random.default_rng(4))
    assert a == b and a != c


def test_tiny_space_samples_fewer_when_exhausted():
    space = OFAMobileNetV3Space(lr=32, ur=32, ks_list=(3,), e_list=(3,), d_list=(4,))
    assert space.sample(5, np.random.default_rng(0)) == [space.smallest()]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x: x.__setitem__(9, 3), "gene 9 (stage 1 depth) = 3 is outside [0, 2]"),
        (lambda x: x.__setitem__(45, 5), "gene 45 (resolution) = 5 is outside [0, 4]"),
        (lambda x: x.__setitem__(1, -1), "gene 1 (stage 0 layer 0 kernel) = -1 is outside [0, 2]"),
    ],
)
def test_decode_names_the_bad_gene(change, message):
    x = SPACE.encode(SPACE.smallest())
    change(x)
    with pytest.raises(InvalidArchitecture, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        SPACE.decode(x)


def test_decode_rejects_wrong_length_and_fractions():
    with pytest.raises(InvalidArchitecture, match="46 integers"):
        SPACE.decode([0] * 45)
    x = SPACE.encode(SPACE.smallest()).astype(float)
    x[2] = 0.5
    with pytest.raises(InvalidArchitecture, match=r"gene 2 \(stage 0 layer 1 kernel\) = 0.5 is not an integer"):
        SPACE.decode(x)
    x[2] = 1.0  # pymoo hands over integral floats
    assert SPACE.decode(x)["ks"][1] == 5


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5}, "missing: \\['r'\\]"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32, "x": 1}, "unexpected: \\['x'\\]"),
        ({"ks": [3] * 19, "e": [3] * 20, "d": [2] * 5, "r": 32}, "'ks' must be a list of 20"),
        ({"ks": [3] * 19 + [4], "e": [3] * 20, "d": [4] * 5, "r": 32}, r"ks\[19\] = 4 is not one of \(3, 5, 7\)"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2, 2, 5, 2, 2], "r": 32}, r"d\[2\] = 5"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 30}, "field r = 30 is not one of"),
        ({"ks": [3] * 20, "e": [True] * 20, "d": [2] * 5, "r": 32}, r"e\[0\] = True"),
        ([1, 2], "must be a dict"),
    ],
)
def test_validate_names_the_bad_field(arch, message):
    with pytest.raises(InvalidArchitecture, match=message):
        SPACE.validate(arch)


def test_invalid_architecture_is_a_usage_error():
    assert issubclass(InvalidArchitecture, UsageError)


def test_bad_resolution_range_is_a_usage_error():
    with pytest.raises(UsageError, match="--lr 40 is larger than maximum --ur 32"):
        OFAMobileNetV3Space(lr=40, ur=32)


@pytest.mark.parametrize("name", list_search_spaces())
def test_every_registered_space_round_trips(name):
    space = create_search_space(name)
    rng = np.random.default_rng(0)
    for arch in [space.smallest(), space.largest(), *space.sample(5, rng)]:
        assert space.decode(space.encode(arch)) == arch
    if not isinstance(space, OneShotSearchSpace):  # one-shot candidates are not ordered by cost
        assert space.encode(space.smallest()).tolist() == space.xl.tolist()


def test_unknown_space_lists_the_choices():
    with pytest.raises(UsageError, match="unknown search space 'nope'; choose one of: .*ofa_mbv3"):
        create_search_space("nope")

import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_space import InvalidArchitecture, create_search_space
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from search_space.ofa_mbv3_ee import EXIT_POSITIONS, THRESHOLDS, CBNMobileNetV3Space, EEMobileNetV3Space
from utils.errors import UsageError

OFA = OFAMobileNetV3Space(lr=24, ur=40, rstep=4)
EE = create_search_space("eemobilenetv3", lr=24, ur=40, rstep=4)
CBN = create_search_space("cbnmobilenetv3", lr=24, ur=40, rstep=4)
SPACES = [EE, CBN]
SMALL = OFA.smallest()
LARGE = OFA.largest()


def genomes(space) -> st.SearchStrategy[np.ndarray]:
    return st.tuples(*[st.integers(int(lo), int(hi)) for lo, hi in zip(space.xl, space.xu, strict=True)]).map(
        lambda t: np.array(t, dtype=np.int64)
    )


def with_exits(x: np.ndarray, exits: list[int]) -> np.ndarray:
    return np.r_[x, exits].astype(np.int64)


def test_registered_classes_and_constants():
    assert isinstance(EE, EEMobileNetV3Space) and EE.name == "eemobilenetv3"
    assert isinstance(CBN, CBNMobileNetV3Space) and CBN.name == "cbnmobilenetv3"
    assert EXIT_POSITIONS == 4 and THRESHOLDS == (0.1, 0.2, 1.0)
    assert EE.default_evaluator == CBN.default_evaluator == "ee"


def test_bounds_and_gene_names():
    assert EE.n_var == CBN.n_var == 50
    assert EE.xu.tolist() == [*OFA.xu.tolist(), 2, 2, 2, 2]
    assert CBN.xu.tolist() == [*OFA.xu.tolist(), 1, 1, 1, 1]
    assert EE.xl.tolist() == CBN.xl.tolist() == [0] * 50
    assert EE.gene_names()[:46] == OFA.gene_names()
    assert EE.gene_names()[46:] == [f"exit {k} threshold" for k in (1, 2, 3, 4)]
    assert CBN.gene_names()[46:] == [f"exit {k} off" for k in (1, 2, 3, 4)]


def test_known_genomes_decode_to_known_architectures():
    x = OFA.encode(SMALL)
    x[9] = 2  # stage 1 depth 4
    x[-1] = 3  # 36 px
    backbone = OFA.decode(x)
    assert EE.decode(with_exits(x, [0, 2, 1, 2])) == {**backbone, "t": [0.1, 1.0, 0.2, 1.0]}
    assert CBN.decode(with_exits(x, [0, 1, 0, 1])) == {**backbone, "b": [1, 0, 1, 0]}
    assert EE.encode({**backbone, "t": [0.1, 1.0, 0.2, 1.0]}).tolist() == [*x.tolist(), 0, 2, 1, 2]
    assert CBN.encode({**backbone, "b": [1, 0, 1, 0]}).tolist() == [*x.tolist(), 0, 1, 0, 1]


@pytest.mark.parametrize("cls", [EEMobileNetV3Space, CBNMobileNetV3Space])
def test_exit_genes_are_read_after_a_single_choice_resolution_gene(cls):
    space = cls(lr=32, ur=32)
    assert space.n_var == 50 and space.xu[45] == 0
    x = with_exits(space.ofa.encode(space.ofa.largest()), [1, 0, 1, 1])
    arch = space.decode(x)
    assert arch["r"] == 32 and arch["d"] == [4] * 5
    assert arch[space.key] == ([0.2, 0.1, 0.2, 0.2] if cls is EEMobileNetV3Space else [0, 1, 0, 0])
    assert space.encode(arch).tolist() == x.tolist()


@pytest.mark.parametrize("space", SPACES, ids=["ee", "cbn"])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_decode_is_valid_and_encode_is_canonical(space, data):
    x = data.draw(genomes(space))
    arch = space.decode(x)
    assert space.validate(arch) == arch
    canonical = space.encode(arch)
    assert space.decode(canonical) == arch
    assert space.canonical(x[None]).tolist() == [canonical.tolist()]
    assert canonical[:46].tolist() == OFA.encode(space.backbone(arch)).tolist()
    json.loads(json.dumps(arch))


def test_smallest_and_largest():
    assert EE.smallest() == {**SMALL, "t": [0.1] * 4}
    assert EE.largest() == {**LARGE, "t": [1.0] * 4}
    assert CBN.smallest() == {**SMALL, "b": [1, 1, 1, 1]}
    assert CBN.largest() == {**LARGE, "b": [0, 0, 0, 1]}
    assert EE.encode(EE.largest()).tolist() == EE.xu.tolist()
    assert CBN.encode(CBN.largest()).tolist() == [*OFA.xu.tolist(), 1, 1, 1, 0]


def test_all_exits_off_is_repaired_to_the_last_exit_on():
    x = OFA.encode(SMALL)
    off = with_exits(x, [1, 1, 1, 1])
    assert CBN.decode(off) == {**SMALL, "b": [0, 0, 0, 1]}
    assert CBN.canonical(np.stack([off, with_exits(x, [1, 0, 1, 1])])).tolist() == [
        [*x.tolist(), 1, 1, 1, 0],
        [*x.tolist(), 1, 0, 1, 1],
    ]
    assert EE.decode(with_exits(x, [2, 2, 2, 2]))["t"] == [1.0] * 4  # no exit at all is a valid EE network


@pytest.mark.parametrize("space", SPACES, ids=["ee", "cbn"])
def test_random_genomes_never_fail(space):
    pop = np.random.default_rng(0).integers(space.xl, space.xu + 1, size=(1000, space.n_var))
    pop[:50, 46:] = space.xu[46:]  # every exit gene at its highest value: all exits off
    canonical = space.canonical(pop)
    archs = [space.decode(x) for x in pop]
    assert canonical.tolist() == [space.encode(arch).tolist() for arch in archs]
    if space is CBN:
        assert all(CBN.exit_stages(arch) for arch in archs)
        assert archs[0]["b"] == [0, 0, 0, 1]


def test_sampling_covers_the_exit_genes():
    archs = CBN.sample(200, np.random.default_rng(1))
    assert len({json.dumps(a) for a in archs}) == 200
    assert {tuple(a["b"]) for a in archs} >= {(1, 0, 0, 0), (0, 0, 0, 1), (1, 1, 1, 1)}


@pytest.mark.parametrize(
    ("space", "arch", "message"),
    [
        (CBN, {**SMALL, "b": [0, 0, 0, 0]}, r"'b' = \[0, 0, 0, 0\] turns every exit off"),
        (CBN, {**SMALL, "b": [0, 2, 0, 1]}, r"field b\[1\] = 2 is not one of \(0, 1\)"),
        (CBN, {**SMALL, "b": [True, 0, 0, 0]}, r"field b\[0\] = True"),
        (CBN, {**SMALL, "b": [1.0, 0, 0, 0]}, r"field b\[0\] = 1.0"),
        (CBN, {**SMALL, "b": [1, 0, 0]}, "'b' must be a list of 4 values"),
        (CBN, {**SMALL, "t": [1.0] * 4}, r"missing: \['b'\], unexpected: \['t'\]"),
        (EE, {**SMALL, "t": [0.1, 0.5, 1.0, 1.0]}, r"field t\[1\] = 0.5 is not one of \(0.1, 0.2, 1.0\)"),
        (EE, {**SMALL, "t": ["0.1", 1.0, 1.0, 1.0]}, r"field t\[0\] = '0.1'"),
        (EE, {**SMALL, "t": 0.1}, "'t' must be a list of 4 values"),
        (EE, SMALL, r"missing: \['t'\]"),
        (EE, {**SMALL, "t": [1.0] * 4, "b": [1] * 4}, r"unexpected: \['b'\]"),
        (EE, {**SMALL, "r": 30, "t": [1.0] * 4}, "field r = 30"),
        (EE, [1, 2], "must be a dict with keys ks, e, d, r, t"),
    ],
)
def test_validate_names_the_bad_field(space, arch, message):
    with pytest.raises(InvalidArchitecture, match=message):
        space.validate(arch)
    assert issubclass(InvalidArchitecture, UsageError)


def test_validate_normalises_thresholds():
    assert EE.validate({**SMALL, "t": [1, np.float64(0.2), 1.0, 1]})["t"] == [1.0, 0.2, 1.0, 1.0]
    assert CBN.validate({**SMALL, "b": [np.int64(1), 0, 0, 0]})["b"] == [1, 0, 0, 0]


@pytest.mark.parametrize(
    ("space", "exits", "message"),
    [
        (EE, [0, 3, 0, 0], r"gene 47 \(exit 2 threshold\) = 3 is outside \[0, 2\]"),
        (CBN, [0, 0, 0, 2], r"gene 49 \(exit 4 off\) = 2 is outside \[0, 1\]"),
    ],
)
def test_decode_names_the_bad_gene(space, exits, message):
    with pytest.raises(InvalidArchitecture, match=message):
        space.decode(with_exits(OFA.encode(SMALL), exits))
    with pytest.raises(InvalidArchitecture, match="genome must be a vector of 50 integers"):
        space.decode(OFA.encode(SMALL))


def test_exit_stages_thresholds_and_backbone():
    ee = {**LARGE, "t": [1.0, 0.2, 1.0, 0.1]}
    assert EE.exit_stages(ee) == [1, 3]
    assert EE.thresholds(ee) == [0.2, 0.1]
    assert EE.backbone(ee) == LARGE
    assert EE.exit_stages({**LARGE, "t": [1.0] * 4}) == [] and EE.thresholds({**LARGE, "t": [1.0] * 4}) == []
    cbn = {**SMALL, "b": [1, 0, 1, 0]}
    assert CBN.exit_stages(cbn) == [0, 2]
    assert CBN.thresholds(cbn) is None
    assert CBN.backbone(cbn) == SMALL
    unused = {**SMALL, "ks": [7] * 20, "b": [0, 0, 0, 1]}  # layers beyond depth 2: normalised like ofa_mbv3
    assert CBN.backbone(unused) == {**SMALL, "ks": [7, 7, 3, 3] * 5}


def test_summary_shows_the_exits():
    assert EE.summary({**SMALL, "r": 32, "t": [0.1, 1.0, 0.2, 1.0]}) == "r32 d22222 exits 1@0.1,3@0.2"
    assert EE.summary({**SMALL, "t": [1.0] * 4}) == "r24 d22222 exits none"
    assert CBN.summary({**LARGE, "b": [1, 0, 1, 0]}) == "r40 d44444 exits 1,3"


def test_features_are_the_backbone_features_then_the_exit_values():
    rng = np.random.default_rng(2)
    for space in SPACES:
        pop = rng.integers(space.xl, space.xu + 1, size=(300, space.n_var))
        features = space.features(pop)
        assert features.shape == (300, 50)
        assert ((features >= 0) & (features <= 1)).all()
        assert np.array_equal(features[:, :46], OFA.features(pop[:, :46]))
    x = OFA.encode(SMALL)
    assert EE.features(with_exits(x, [0, 1, 2, 2])[None])[0, 46:].tolist() == [0.1, 0.2, 1.0, 1.0]
    assert CBN.features(with_exits(x, [0, 1, 0, 1])[None])[0, 46:].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert CBN.features(with_exits(x, [1, 1, 1, 1])[None])[0, 46:].tolist() == [0.0, 0.0, 0.0, 1.0]  # repaired


def test_costs_are_the_backbone_costs():
    ofa_costs = OFA.cost_function(10, array=(8, 8))
    for space in SPACES:
        costs = space.cost_function(10, array=(8, 8))
        for arch in [space.smallest(), space.largest(), *space.sample(5, np.random.default_rng(3))]:
            assert costs(arch) == ofa_costs(space.backbone(arch))
        assert pickle.loads(pickle.dumps(costs))(space.largest()) == ofa_costs(LARGE)
    with pytest.raises(InvalidArchitecture, match=r"missing: \['t'\]"):
        EE.cost_function(10)(LARGE)


def test_unrestricted_keeps_the_exit_genes():
    for space in SPACES:
        wide = space.unrestricted()
        assert type(wide) is type(space) and wide.n_var == 50 and wide.xu[-4:].tolist() == space.xu[-4:].tolist()
        arch = {**space.largest(), "r": 100}
        assert wide.validate(arch) == arch
        assert space.ofa.resolutions == OFA.resolutions  # the original keeps its range

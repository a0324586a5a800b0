"""The early-exit network: shared backbone, outputs, parameters, early stopping in `infer`, export."""

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from early_exit.model import EarlyExitNet, ExitOutputs, build_early_exit_net, collect_outputs
from early_exit.policy import create_policy, list_policies
from search_space.ofa_mbv3 import OFAMobileNetV3Space

SPACE = OFAMobileNetV3Space(lr=24, ur=32)
N_CLASSES = 10
ARCH = SPACE.sample(1, np.random.default_rng(4))[0]
ALL = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return SPACE.build_supernet(N_CLASSES)


def build(supernet, stages=ALL, confidence=True, arch=ARCH) -> tuple[torch.nn.Module, EarlyExitNet]:
    subnet = SPACE.extract(supernet, arch).eval()
    return subnet, build_early_exit_net(subnet, arch["d"], stages, N_CLASSES, arch["r"], confidence).eval()


def images(n, arch=ARCH, seed=0):
    return torch.randn(n, 3, arch["r"], arch["r"], generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("stages", [ALL, (1, 3), (0,), ()])
def test_outputs_per_exit(supernet, stages):
    subnet, net = build(supernet, stages)
    x = images(4)
    with torch.no_grad():
        out = net(x)
        expected = subnet(x)
    assert out.n_exits == net.n_exits == len(stages) + 1 and net.exit_stages == stages
    assert all(t.shape == (4, N_CLASSES) for t in out.logits)
    torch.testing.assert_close(out.logits[-1], expected, rtol=0, atol=1e-6)
    assert len(out.confidence) == out.n_exits and all(c.shape == (4,) for c in out.confidence)
    assert all(bool(((c > 0) & (c < 1)).all()) for c in out.confidence[:-1])
    assert torch.equal(out.confidence[-1], torch.ones(4))


def test_no_confidence(supernet):
    _, net = build(supernet, confidence=False)
    with torch.no_grad():
        assert net(images(2)).confidence is None


def test_exits_sit_after_their_stages(supernet):
    subnet, net = build(supernet)
    depths = ARCH["d"]
    blocks = [list(segment) for segment in net.segments]
    assert blocks[0][0] is subnet.first_conv
    flat = [m for segment in blocks for m in segment][1:]
    assert flat == list(subnet.blocks)
    assert [len(b) for b in blocks] == [2 + depths[0], depths[1], depths[2], depths[3], depths[4]]


def test_backbone_is_shared_not_copied(supernet):
    subnet, net = build(supernet)
    backbone = {id(p) for p in net.backbone_parameters()}
    heads = {id(p) for p in net.head_parameters()}
    assert backbone == {id(p) for p in subnet.parameters()}
    assert not backbone & heads and backbone | heads == {id(p) for p in net.parameters()}
    assert heads == {id(p) for p in net.heads.parameters()}
    x = images(2)
    with torch.no_grad():
        before = net(x).logits[-1]
        subnet.classifier.linear.bias.add_(1.0)
        after = net(x).logits[-1]
        subnet.classifier.linear.bias.sub_(1.0)
    torch.testing.assert_close(after, before + 1.0)


def test_heads_are_seeded_and_leave_the_global_generator_alone(supernet):
    subnet = SPACE.extract(supernet, ARCH)  # extraction draws from the global generator, building must not
    state = torch.get_rng_state()
    a = build_early_exit_net(subnet, ARCH["d"], ALL, N_CLASSES, ARCH["r"], True)
    assert torch.equal(torch.get_rng_state(), state)
    _, b = build(supernet)
    assert all(torch.equal(p, q) for p, q in zip(a.head_parameters(), b.head_parameters(), strict=True))


@pytest.mark.parametrize("stages", [(3, 1), (4,), (0, 0), (-1,)])
def test_bad_exit_stages(supernet, stages):
    with pytest.raises(ValueError):
        build(supernet, stages)


def test_depths_and_classes_must_match(supernet):
    subnet = SPACE.extract(supernet, ARCH)
    with pytest.raises(ValueError):
        build_early_exit_net(subnet, [d + 1 for d in ARCH["d"]], ALL, N_CLASSES, ARCH["r"], True)
    with pytest.raises(ValueError):
        build_early_exit_net(subnet, ARCH["d"], ALL, N_CLASSES + 1, ARCH["r"], True)


def midpoints(scores: torch.Tensor) -> list[float]:
    """Per early exit a threshold between two distinct scores near the middle (no sample sits on it)."""
    out = []
    for row in scores[:-1]:
        values = row.unique()
        k = len(values) // 2
        out.append(float(values[k - 1] + values[k]) / 2)
    return out


@pytest.mark.parametrize("name", list_policies())
def test_infer_matches_exit_index_on_the_full_forward(supernet, name):
    _, net = build(supernet)
    policy = create_policy(name)
    x = images(16)
    with torch.no_grad():
        out = net(x)
    epsilon = midpoints(policy.scores(out))
    expected_exit = policy.exit_index(out, epsilon)
    assert len(expected_exit.unique()) >= 3  # the samples really spread over the exits
    expected = torch.stack(out.logits).argmax(-1).gather(0, expected_exit[None])[0]
    predictions, exit_index = net.infer(x, policy, epsilon)
    assert torch.equal(exit_index, expected_exit)
    assert torch.equal(predictions, expected)


def count_calls(net: EarlyExitNet) -> dict[str, list[int]]:
    """Batch sizes each segment and exit saw, by name."""
    seen: dict[str, list[int]] = {}
    for i, (segment, exit_) in enumerate(zip(net.segments, net.exits(), strict=True)):
        for name, module in ((f"segment{i}", segment), (f"exit{i}", exit_)):
            seen[name] = []
            module.register_forward_hook(lambda m, inputs, output, name=name: seen[name].append(inputs[0].shape[0]))
    return seen


def test_samples_that_left_are_not_computed_further(supernet):
    _, net = build(supernet)
    seen = count_calls(net)
    x = images(6)
    predictions, exit_index = net.infer(x, create_policy("margin"), [2.0, 0.0, 2.0, 2.0])
    assert exit_index.tolist() == [1] * 6
    assert seen == {
        "segment0": [6],
        "exit0": [6],
        "segment1": [6],
        "exit1": [6],
        "segment2": [],
        "exit2": [],
        "segment3": [],
        "exit3": [],
        "segment4": [],
        "exit4": [],
    }
    with torch.no_grad():
        assert torch.equal(predictions, net(x).logits[1].argmax(1))


def test_later_segments_see_only_the_remaining_samples(supernet):
    _, net = build(supernet, stages=(1, 3))
    policy = create_policy("cumulative")
    x = images(12)
    with torch.no_grad():
        out = net(x)
    epsilon = midpoints(policy.scores(out))
    seen = count_calls(net)
    _, exit_index = net.infer(x, policy, epsilon)
    left = torch.bincount(exit_index, minlength=3).tolist()
    assert seen["segment0"] == seen["exit0"] == [12]
    assert seen["segment1"] == seen["exit1"] == [12 - left[0]]
    assert seen["segment2"] == seen["exit2"] == [left[2]]


def test_collect_outputs_over_batches(supernet):
    _, net = build(supernet)
    net.train()
    batches = [(images(3, seed=1), torch.tensor([0, 1, 2])), (images(2, seed=2), torch.tensor([3, 4]))]
    outputs, labels = collect_outputs(net, batches)
    assert net.training
    net.eval()
    with torch.no_grad():
        full = net(torch.cat([x for x, _ in batches]))
    assert labels.tolist() == [0, 1, 2, 3, 4] and outputs.n_samples == 5
    for got, want in zip(outputs.logits + outputs.confidence, full.logits + full.confidence, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_exit_outputs_checks_and_joins():
    a = ExitOutputs([torch.zeros(2, 3), torch.ones(2, 3)], [torch.full((2,), 0.5), torch.ones(2)])
    joined = ExitOutputs.cat([a, a.map(lambda t: t[:1])])
    assert joined.n_exits == 2 and joined.n_samples == 3 and joined.confidence[0].shape == (3,)
    assert ExitOutputs.cat([ExitOutputs([torch.zeros(2, 3)])]).confidence is None
    with pytest.raises(ValueError):
        ExitOutputs.cat([a, ExitOutputs(a.logits)])
    with pytest.raises(ValueError):
        ExitOutputs([torch.zeros(2, 3)], [torch.ones(2), torch.ones(2)])
    with pytest.raises(ValueError):
        ExitOutputs([])


def test_onnx_export_of_every_exit(supernet):
    _, net = build(supernet, stages=(0, 2))
    module = net.exportable().eval()
    assert module.output_names == ["logits_0", "logits_1", "logits_2", "confidence_0", "confidence_1", "confidence_2"]
    buffer = io.BytesIO()
    r = ARCH["r"]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(1, 3, r, r),),
            buffer,
            dynamo=False,
            input_names=["input"],
            output_names=module.output_names,
            opset_version=17,
            dynamic_axes={"input": {0: "batch"}, **{name: {0: "batch"} for name in module.output_names}},
        )
    onnx.checker.check_model(onnx.load_from_string(buffer.getvalue()))
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x = images(3)
    got = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        want = module(x)
    assert len(got) == len(want) == 6
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-5)


def test_a_frozen_backbone_stays_in_eval_mode_while_the_heads_train(supernet):
    _, net = build(supernet)
    net.frozen_backbone = True
    net.train()
    assert all(not m.training for m in [*net.segments.modules(), *net.final.modules()])
    assert all(m.training for m in net.heads.modules())
    net.frozen_backbone = False
    net.train()
    assert all(m.training for m in net.modules())

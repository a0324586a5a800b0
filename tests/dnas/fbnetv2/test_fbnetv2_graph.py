"""FBNetV2Graph: width and kernel choices on real OFA MobileNetV3 subnets, residuals and squeeze-excitation kept."""

import math

import pytest
import torch
import torch.nn.functional as F

from dnas.fbnetv2 import FBNetV2Graph
from dnas.pit import PIT
from hw import COST_MODELS, HARDWARE_MODELS, systolic_latency
from tests.dnas.pit.ofa_subnets import (  # noqa: F401 (an autouse fixture)
    build,
    flop_macs,
    input_shape,
    layer_params,
    one_torch_thread,
    sampled_archs,
    stage_blocks,
)
from tests.dnas.test_dnas_contract import Case, Tiny, check_contract
from utils.errors import UsageError

ARCHS = sampled_archs()


@pytest.fixture(scope="module", params=range(len(ARCHS)), ids=lambda i: f"arch{i}")
def case(request):
    arch = ARCHS[request.param]
    net = build(arch)
    return arch, net, FBNetV2Graph(net, input_shape(arch)).eval()


def masker(engine, name):
    return engine.seed.get_submodule(name).out_masker


def randomise(engine, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in engine.arch_parameters():
            p.copy_(torch.randn(p.shape, generator=generator))


def test_untrained_choices_are_the_subnet(case):
    arch, net, engine = case
    x = torch.randn(3, *input_shape(arch), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(engine(x), net(x), atol=1e-5, rtol=0)
    assert engine.get_macs() == flop_macs(net, input_shape(arch))
    assert engine.reference_cost == engine.reference_latency == engine.get_latency()


def test_groups_share_one_width_choice_and_depthwise_kernels_are_chosen(case):
    arch, net, engine = case
    for stage in stage_blocks(net):
        output = masker(engine, f"blocks.{stage[0]}.conv.point_linear.conv")
        assert output.choices == [round(f * output.choices[-1]) for f in (0.25, 0.5, 0.75, 1.0)]
        for i in stage:
            assert masker(engine, f"blocks.{i}.conv.point_linear.conv") is output
            expansion = masker(engine, f"blocks.{i}.conv.inverted_bottleneck.conv")
            assert masker(engine, f"blocks.{i}.conv.depth_conv.conv") is expansion
            kernel = net.blocks[i].conv.depth_conv.conv.kernel_size[0]
            chosen = engine.seed.get_submodule(f"blocks.{i}.conv.depth_conv.conv").kernel_masker
            assert ([3] if chosen is None else chosen.choices) == [k for k in (3, 5, 7) if k <= kernel]
    assert masker(engine, "classifier.linear").choices == [10]
    n_se = sum(name.endswith(".se") for name, _ in net.named_modules())
    widths = [p for p in engine.arch_parameters() if len(p) == 4]
    assert len(widths) == 1 + sum(arch["d"]) + 5 + n_se + 2  # as PIT's trainable groups
    summary = engine.arch_summary()
    assert len(summary["groups"]) == len(widths) + 1 and summary["latency"] == engine.reference_latency


def test_export_is_the_one_hot_network_with_its_costs(case):
    arch, net, engine = case
    engine = FBNetV2Graph(net, input_shape(arch))
    randomise(engine, arch["r"])
    engine.eval()
    exported = engine.arch_export().eval()
    shape = input_shape(arch)
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(exported(x), engine(x), atol=1e-5, rtol=0)
    assert flop_macs(exported, shape) == engine.get_macs() < flop_macs(net, shape)
    assert layer_params(exported) == engine.get_size() < layer_params(net)
    assert engine.get_latency() == systolic_latency(exported, shape, engine.hardware.shape)
    summary = engine.arch_summary()
    for kernel in summary["kernels"]:
        conv = exported.get_submodule(kernel["layer"])
        assert conv.kernel_size == (kernel["kernel"],) * 2 and conv.padding == (kernel["kernel"] // 2,) * 2
    assert any(k["kernel"] < k["kernels"][-1] for k in summary["kernels"])  # some kernels did shrink
    with torch.no_grad():  # the expected cost at (nearly) one-hot probabilities is the exact cost
        for p in engine.arch_parameters():
            p.copy_(60.0 * F.one_hot(p.argmax(), len(p)))
        assert float(engine.cost("macs")) == pytest.approx(engine.get_macs(), rel=1e-5)
        assert float(engine.cost("params")) == pytest.approx(engine.get_size(), rel=1e-5)


def test_regulariser_is_differentiable_and_prefers_smaller_widths(case):
    arch, net, engine = case
    engine = FBNetV2Graph(net, input_shape(arch))
    loss = engine.get_regularization_loss()
    loss.backward()
    grads = [p.grad for p in engine.arch_parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    widths = [m.choice.logits for m in engine.choice_maskers() if len(m.choices) == 4]

    def loss_favouring(index):
        with torch.no_grad():
            for logits in widths:
                logits.copy_(3.0 * F.one_hot(torch.tensor(index), 4))
            return float(engine.get_regularization_loss())

    assert loss_favouring(0) < float(loss.detach()) < loss_favouring(3) < 1.0
    assert engine.cost().requires_grad


def test_training_samples_one_choice_per_group_and_trains_the_logits(case):
    arch, net, engine = case
    engine = FBNetV2Graph(net, input_shape(arch), hard=True).train()
    weights = torch.optim.SGD(engine.net_parameters(), lr=0.01)
    alphas = torch.optim.Adam(engine.arch_parameters(), lr=0.1)
    before = [p.detach().clone() for p in engine.arch_parameters()]
    torch.manual_seed(0)
    for epoch in range(2):
        x, y = torch.randn(4, *input_shape(arch)), torch.randint(0, 10, (4,))
        loss = F.cross_entropy(engine(x), y) + 0.5 * engine.get_regularization_loss()
        weights.zero_grad()
        alphas.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in engine.arch_parameters())
        weights.step()
        alphas.step()
        engine.epoch_end(epoch, 2)
    assert all(not torch.equal(a, b) for a, b in zip(before, engine.arch_parameters(), strict=True))
    assert all(m.sample is None for m in engine.choice_maskers())  # samples live for one forward pass only
    assert engine.temperature == pytest.approx(0.5)
    assert not set(map(id, engine.net_parameters())) & set(map(id, engine.arch_parameters()))


def test_temperature_anneals_exponentially_and_other_engines_ignore_epoch_end():
    engine = FBNetV2Graph(Tiny(), (3, 6, 6), temperature=8.0, final_temperature=0.5)
    engine.epoch_end(0, 4)
    assert engine.temperature == pytest.approx(8.0 * (0.5 / 8.0) ** 0.25)
    engine.epoch_end(3, 4)
    assert engine.temperature == pytest.approx(0.5)
    with pytest.raises(UsageError, match="epoch 4 is not one of the 4 epochs"):
        engine.epoch_end(4, 4)
    pit = PIT(Tiny(), (3, 6, 6))
    state = {k: v.clone() for k, v in pit.state_dict().items()}
    pit.epoch_end(0, 1)
    assert all(torch.equal(v, pit.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fractions": (0.0, 1.0)}, "width fractions"),
        ({"dw_kernels": (4,)}, "kernel choices"),
        ({"final_temperature": 0.0}, "temperatures must be positive"),
    ],
)
def test_bad_choices_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        FBNetV2Graph(Tiny(), (3, 6, 6), **kwargs)


def graph_case(regularizer: str, hardware: str | None) -> Case:
    torch.manual_seed(0)
    engine = FBNetV2Graph(Tiny(), (3, 6, 6), regularizer=regularizer, hardware=hardware, fractions=(0.5, 1.0))
    randomise(engine, 0)

    def binarise() -> None:
        with torch.no_grad():
            for p in engine.arch_parameters():
                p.copy_(30.0 * F.one_hot(p.argmax(), len(p)))
        engine.eval()

    return Case(engine, engine.get_regularization_loss, binarise, (3, 6, 6))


@pytest.mark.parametrize("cost", COST_MODELS.names(aliases=False))
def test_every_cost_model_regularises_the_graph_engine(cost):
    check_contract(graph_case(cost, None), cost)


@pytest.mark.parametrize("hardware", HARDWARE_MODELS.names(aliases=False))
def test_every_hardware_model_is_a_latency_regulariser_of_the_graph_engine(hardware):
    check_contract(graph_case("latency", hardware), "latency")


def test_tiny_kernel_choice_is_a_centre_crop():
    torch.manual_seed(0)
    engine = FBNetV2Graph(Tiny(), (3, 6, 6), dw_kernels=(1, 3))
    dw = engine.seed.dw
    assert dw.kernel_masker.choices == [1, 3] and math.prod(dw.kernel_size) == 9
    with torch.no_grad():
        dw.kernel_masker.choice.logits.copy_(torch.tensor([1.0, 0.0]))
    exported = engine.eval().arch_export()
    assert exported.dw.kernel_size == (1, 1) and exported.dw.padding == (0, 0)
    torch.testing.assert_close(exported.dw.weight, engine.seed.dw.weight[:, :, 1:2, 1:2])

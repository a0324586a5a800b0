"""Contract: every registered cost model (and hardware model) regularises every engine, with the exact value.

Each engine builds a tiny searchable network with `regularizer=<cost>`. The penalty it trains with must be finite
and reach the architecture parameters; once the architecture is binarised (PIT masks) or one-hot (DARTS alphas,
FBNetV2 logits), the engine's cost must equal what `hw` measures on the exported network, independently: the
cost model on the traced exported layers (exact counts; their tensor form for a smooth cost such as latency).
"""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from dnas.base import DNAS
from dnas.darts import NetworkSearchCnn, ResourcePenalty
from dnas.fbnetv2 import ArchDef, FBNetV2, LayerDef
from dnas.pit import PIT
from hw import COST_MODELS, HARDWARE_MODELS, HardwareModel, model_cost


@dataclass
class Case:
    """An engine, the penalty it trains with, how to binarise its architecture, and its input shape."""

    engine: DNAS
    penalty: Callable[[], Tensor]
    binarise: Callable[[], None]
    input_shape: tuple[int, ...]


class Tiny(nn.Module):
    """conv → depthwise conv → 1×1 conv → pooling → linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.conv1 = nn.Conv2d(8, 12, 1)
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        y = self.conv1(torch.relu(self.dw(torch.relu(self.conv0(x)))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


def pit_case(regularizer: str, hardware: str | None) -> Case:
    torch.manual_seed(0)
    pit = PIT(Tiny(), (3, 6, 6), regularizer=regularizer, hardware=hardware)

    def binarise() -> None:
        with torch.no_grad():
            pit.seed.conv0.out_masker.theta[[2, 5, 6]] = 0
            pit.seed.conv1.out_masker.theta[[1, 4, 7, 8, 10]] = 0

    return Case(pit, pit.get_regularization_loss, binarise, (3, 6, 6))


PRIMITIVES = ["none", "max_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3"]


def darts_case(regularizer: str, hardware: str | None) -> Case:
    net = NetworkSearchCnn(
        4, 3, 3, (2, 8, 8), nodes_per_layer=1, multiplier=1, stem_multiplier=1, space="2d", primitives=PRIMITIVES,
        regularizer=regularizer, hardware=hardware, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip

    def binarise() -> None:  # one-hot alphas: both edges of the one-node cells are kept by the genotype
        with torch.no_grad():
            for alphas, ops in ((net.alphas_normal, ("sep_conv_3x3", "max_pool_3x3")),
                                (net.alphas_reduce, ("dil_conv_3x3", "skip_connect"))):  # fmt: skip
                alphas.zero_()
                for edge, op in enumerate(ops):
                    alphas[edge, PRIMITIVES.index(op)] = 60.0

    return Case(net, lambda: ResourcePenalty(regularizer)(net), binarise, (2, 8, 8))  # the search's penalty


FBNET_ARCH = ArchDef(
    (3, 8, 8),
    (
        LayerDef("conv", 8, (0.5, 1.0), (1, 3)),
        LayerDef("dwconv", kernels=(3, 5), stride=2),
        LayerDef("conv", 12, (0.5, 1.0), (1, 3), avgpool=True),
        LayerDef("linear", 10, (0.5, 1.0)),
        LayerDef("linear", 4, act=False),
    ),
)


def fbnetv2_case(regularizer: str, hardware: str | None) -> Case:
    torch.manual_seed(0)
    model = FBNetV2(FBNET_ARCH, hardware, regularizer=regularizer)
    with torch.no_grad():
        for p in model.arch_parameters():
            p.normal_()

    def binarise() -> None:
        with torch.no_grad():
            for layer, (width, kernel) in zip(model.searchable, [(0, 1), (0, 0), (0, 0), (0, 0), (0, 0)], strict=True):
                for choice, index in ((layer.channels, width), (layer.kernels, kernel)):
                    choice.logits.zero_()
                    choice.logits[index] = 30.0
        model.eval()

    return Case(model, model.get_regularization_loss, binarise, FBNET_ARCH.input_shape)


ENGINES = {"pit": pit_case, "darts": darts_case, "fbnetv2": fbnetv2_case}


def check_contract(case: Case, cost: str) -> None:
    engine = case.engine
    penalty = case.penalty()
    assert penalty.dim() == 0 and torch.isfinite(penalty)
    penalty.backward()
    grads = [p.grad for p in engine.arch_parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0  # the gradient reaches the architecture
    case.binarise()
    exported = engine.arch_export()
    args = (cost, exported, case.input_shape, engine.cost_kinds, engine.hardware)
    reference = float(model_cost(*args, soft=True))
    with torch.no_grad():
        assert float(engine.cost(cost)) == pytest.approx(reference, rel=1e-4)
    if not COST_MODELS.meta(cost)["smooth"]:
        assert reference == pytest.approx(model_cost(*args), rel=1e-6)  # the exact count itself


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("cost", COST_MODELS.names(aliases=False))
def test_every_cost_model_regularises_every_engine(engine, cost):
    case = ENGINES[engine](cost, None)
    assert case.engine.regularizer == cost
    check_contract(case, cost)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("hardware", HARDWARE_MODELS.names(aliases=False))
def test_every_hardware_model_is_a_latency_regulariser_of_every_engine(engine, hardware):
    case = ENGINES[engine]("latency", hardware)
    assert isinstance(case.engine.hardware, HARDWARE_MODELS.get(hardware))
    check_contract(case, "latency")


class MacUnits(HardwareModel):
    """A stand-in hardware model: `units` multiply-accumulate units, one MAC each per cycle."""

    def __init__(self, units: int = 4) -> None:
        self.units = units

    def layer_latency(self, layer, batch=1):
        return COST_MODELS.get("macs")(layer) * batch / self.units


def bits(layer, hardware=None):
    """A stand-in cost model: the weights' bits at 8 bits each."""
    return 8 * COST_MODELS.get("params")(layer)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_new_entry_reaches_every_engine_without_touching_it(engine):
    with HARDWARE_MODELS.register_temporarily("mac_units", MacUnits, unit="cycles"):
        check_contract(ENGINES[engine]("latency", "mac_units"), "latency")
    with COST_MODELS.register_temporarily("bits", bits, unit="bits", reduce="sum", smooth=False):
        check_contract(ENGINES[engine]("bits", None), "bits")

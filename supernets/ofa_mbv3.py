"""Building an OFA MobileNetV3 supernet through the `ofa` package, activating and extracting its subnets."""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

with warnings.catch_warnings():  # ofa imports deprecated torchvision/torch helpers
    warnings.simplefilter("ignore")
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SupernetConfig:
    """What defines an OFA MobileNetV3 supernet: classes, width and the elastic choice lists."""

    n_classes: int = 10
    width_mult: float = 1.0
    ks_list: tuple[int, ...] = (3, 5, 7)
    e_list: tuple[int, ...] = (3, 4, 6)
    d_list: tuple[int, ...] = (2, 3, 4)
    dropout: float = 0.1
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5

    @property
    def name(self) -> str:
        """OFA's naming, e.g. `ofa_mbv3_d234_e346_k357_w1.0`."""

        def digits(values: tuple[int, ...]) -> str:
            return "".join(str(v) for v in values)

        return (
            f"ofa_mbv3_d{digits(self.d_list)}_e{digits(self.e_list)}_k{digits(self.ks_list)}"
            f"_w{float(self.width_mult)}"
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form (lists instead of tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def build_supernet(cfg: SupernetConfig) -> OFAMobileNetV3:
    """A freshly initialised OFA MobileNetV3 supernet, with its largest subnet active."""
    net = OFAMobileNetV3(
        n_classes=cfg.n_classes,
        bn_param=(cfg.bn_momentum, cfg.bn_eps),
        dropout_rate=cfg.dropout,
        width_mult=cfg.width_mult,
        ks_list=list(cfg.ks_list),
        expand_ratio_list=list(cfg.e_list),
        depth_list=list(cfg.d_list),
    )
    net.set_max_net()
    return net


def activate(supernet: OFAMobileNetV3, arch: dict[str, Any]) -> None:
    """Make `arch` (its kernels, expansions and depths) the active subnet of `supernet`."""
    supernet.set_active_subnet(ks=arch["ks"], e=arch["e"], d=arch["d"])


def extract_subnet(supernet: OFAMobileNetV3, arch: dict[str, Any]) -> nn.Module:
    """A standalone static MobileNetV3 for `arch`, with weights copied from `supernet`."""
    activate(supernet, arch)
    subnet = supernet.get_active_subnet(preserve_weight=True)
    subnet.to(next(supernet.parameters()).device)
    return subnet

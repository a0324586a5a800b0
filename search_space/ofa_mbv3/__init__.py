"""The OFA MobileNetV3 search space bundle: genome, analytic costs and the live-tensor tracer of its subnets."""

from search_space.ofa_mbv3.costs import CostModel, LayerCost, clear_cost_cache, compute_metrics, measure, measure_counts
from search_space.ofa_mbv3.space import OFAMobileNetV3Space
from search_space.ofa_mbv3.tracer import OFAMobileNetV3LiveTracer, is_static_ofa_mbv3

__all__ = [
    "CostModel",
    "LayerCost",
    "OFAMobileNetV3LiveTracer",
    "OFAMobileNetV3Space",
    "clear_cost_cache",
    "compute_metrics",
    "is_static_ofa_mbv3",
    "measure",
    "measure_counts",
]

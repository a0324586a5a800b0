"""DARTS: differentiable cell search for 1-D TinyML (`(B, C, T, 1)`) and 2-D image networks, resource-aware."""

from dnas.darts.architect import UPSTREAM_MODES, Architect, ResourcePenalty, beta_decay, mode_cost, optimization_modes
from dnas.darts.costs import Cost, measure
from dnas.darts.genotypes import IMAGE_2D, TINYML_1D, Genotype_CNN, genotype_record, read_genotype
from dnas.darts.model import NetworkCnn
from dnas.darts.model_search_cnn import NetworkSearchCnn
from dnas.darts.operations import (
    OPERATIONS,
    SPACES,
    create_operation,
    default_primitives,
    operation_spaces,
    register_operation,
)
from dnas.darts.train_cnn_search import DartsSearchConfig, SearchResult, search, search_and_get_model

__all__ = [
    "IMAGE_2D",
    "OPERATIONS",
    "SPACES",
    "TINYML_1D",
    "UPSTREAM_MODES",
    "Architect",
    "Cost",
    "DartsSearchConfig",
    "Genotype_CNN",
    "NetworkCnn",
    "NetworkSearchCnn",
    "ResourcePenalty",
    "SearchResult",
    "beta_decay",
    "create_operation",
    "default_primitives",
    "genotype_record",
    "measure",
    "mode_cost",
    "operation_spaces",
    "optimization_modes",
    "read_genotype",
    "register_operation",
    "search",
    "search_and_get_model",
]

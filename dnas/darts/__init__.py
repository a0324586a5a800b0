"""DARTS: differentiable cell search for 1-D TinyML (`(B, C, T, 1)`) and 2-D image networks, resource-aware."""

from dnas.darts.architect import OPTIMIZATION_MODES, Architect, ResourcePenalty, beta_decay
from dnas.darts.costs import Cost, measure
from dnas.darts.genotypes import IMAGE_2D, PRIMITIVES_CNN, TINYML_1D, Genotype_CNN
from dnas.darts.model import NetworkCnn
from dnas.darts.model_search_cnn import NetworkSearchCnn
from dnas.darts.operations import OPERATIONS, create_operation, operation_spaces, register_operation
from dnas.darts.train_cnn_search import DartsSearchConfig, SearchResult, search, search_and_get_model

__all__ = [
    "IMAGE_2D",
    "OPERATIONS",
    "OPTIMIZATION_MODES",
    "PRIMITIVES_CNN",
    "TINYML_1D",
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
    "measure",
    "operation_spaces",
    "register_operation",
    "search",
    "search_and_get_model",
]

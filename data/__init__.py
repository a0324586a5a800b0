"""Datasets: a registry of loaders, each giving train / validation (carved from train) / test splits.

Importing the package registers every loader: digits (the embedded default), fashion_mnist, cifar10, cifar100,
svhn, imagenet, cifar10c and cifar100c.
"""

from data import cifar, cifar_c, digits, fashion_mnist, imagenet, svhn  # noqa: F401  (registration)
from data.base import Augment, DatasetSplits, FolderImageSet, TensorImageSet, batches
from data.registry import DATASETS, create_dataset, list_datasets
from data.splits import SplitSpec, validation_split

__all__ = [
    "DATASETS",
    "Augment",
    "DatasetSplits",
    "FolderImageSet",
    "SplitSpec",
    "TensorImageSet",
    "batches",
    "create_dataset",
    "list_datasets",
    "validation_split",
]

"""Datasets and input pipelines.

Small datasets (digits, CIFAR, SIGNS, the JPEG copy of CIFAR-10) load as one uint8 tensor that
``DeviceLoader`` keeps on the training device and augments a batch at a time; image folders load as
a ``FolderDataset`` that ``FolderLoader`` decodes in DataLoader workers with the ImageNet recipe.
"""

from resnetlab.data.array import ArrayDataset
from resnetlab.data.folder import FolderDataset
from resnetlab.data.folder_loader import FolderLoader
from resnetlab.data.info import DatasetInfo
from resnetlab.data.loader import DeviceLoader, Loader, make_loader
from resnetlab.data.registry import list_datasets, load_dataset
from resnetlab.data.split import train_val_split
from resnetlab.data.transforms import ImageNetRecipe, ten_crop

__all__ = [
    "ArrayDataset",
    "DatasetInfo",
    "DeviceLoader",
    "FolderDataset",
    "FolderLoader",
    "ImageNetRecipe",
    "Loader",
    "list_datasets",
    "load_dataset",
    "make_loader",
    "ten_crop",
    "train_val_split",
]

"""Data specs -> (train, val, test) splits, the datasets that hold them, and augmentation.

    splits = load_data("folder:photos", image_size=64, seed=0)
    augmenter = Augmenter(parse_augment("rotation=10,shift=0.1,hflip"))
"""

from cnnlab.data.augment import AugmentOptions, Augmenter, make_preprocess, parse_augment
from cnnlab.data.datasets import ArrayDataset, FileDataset
from cnnlab.data.specs import list_datasets
from cnnlab.data.splits import Duplicate, Splits, describe_duplicates, load_data

__all__ = ["load_data", "list_datasets", "ArrayDataset", "FileDataset", "Splits", "Duplicate", "describe_duplicates",
           "parse_augment", "AugmentOptions", "Augmenter", "make_preprocess"]

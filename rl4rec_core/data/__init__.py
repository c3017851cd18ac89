"""Datasets: loaders for ML-100k (from PyPI), RecBole atomic files and the Amazon/Yelp layout,
prepared into Parquet tables with leave-one-out splits. See docs/architecture.md ("Data")."""

from rl4rec_core.data.dataset import SPLITS, Dataset, Split, load_dataset, load_datasets
from rl4rec_core.data.prepare import FORMATS, prepare_dataset, read_meta
from rl4rec_core.data.tables import MIN_ITEMS_PER_USER, RawData, build_tables

__all__ = ["Dataset", "Split", "SPLITS", "load_dataset", "load_datasets", "prepare_dataset", "read_meta", "FORMATS",
           "MIN_ITEMS_PER_USER", "RawData", "build_tables"]

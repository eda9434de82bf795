"""Which dataset a features folder gives a model: slide graphs or bags.

* graph models (HIGT, H2-MIL: ``models.needs_graph``) need the patch coordinates of every
  labelled slide: ``.h5`` files of ``napari-higt preprocess`` or CLAM/TRIDENT ``.h5`` with
  ``coords``; a folder with coordinate-free files (``.pt`` bags, ``.h5`` with ``features``
  only) is refused, naming the formats that carry coordinates;
* the MIL models read any of them; a folder of coordinate ``.h5`` files keeps giving them the
  slide graph's patch nodes (`SlideGraphDataset`), one with coordinate-free files gives bags
  (`BagDataset`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from napari_higt.errors import FeatureError
from napari_higt.features.bags import coordinate_free_files

__all__ = ["open_dataset"]


def open_dataset(features_dir: str | os.PathLike, labels_csv: str | os.PathLike, model: str,
                 group_column: str | None = None, skip_bad: bool = False,
                 cache: bool = True) -> Any:
    """The training dataset of ``model`` on ``features_dir`` (see the module docstring).

    Raises
    ------
    FeatureError
        A graph model on coordinate-free files; bad bag files without ``skip_bad``; no
        usable slide.
    LabelError
        An unusable labels CSV or group column.
    """
    from napari_higt.features.bags import COORDINATE_FORMATS
    from napari_higt.labels import read_labels
    from napari_higt.models import needs_graph, registered_models
    from napari_higt.training.bag_dataset import BagDataset
    from napari_higt.training.dataset import SlideGraphDataset

    features_dir = Path(features_dir)
    if not features_dir.is_dir():
        raise FeatureError(f"features folder not found: {features_dir}")
    import warnings

    with warnings.catch_warnings():  # the dataset reads the CSV again and warns once
        warnings.simplefilter("ignore")
        ids = read_labels(labels_csv, group_column=group_column).slide_ids
    bare = coordinate_free_files(features_dir, ids)
    if needs_graph(model):
        if bare:
            readers = ", ".join(m for m in registered_models() if not needs_graph(m))
            shown = ", ".join(bare[:3]) + (f" and {len(bare) - 3} more" if len(bare) > 3 else "")
            raise FeatureError(
                f"{model} needs patch coordinates to build the slide graph, and {len(bare)} "
                f"feature file(s) in {features_dir} carry none ({shown}); give it "
                f"{COORDINATE_FORMATS}, or train a model that reads bags ({readers})")
        return SlideGraphDataset.from_folder(features_dir, labels_csv, cache=cache,
                                             group_column=group_column)
    if bare:
        return BagDataset.from_folder(features_dir, labels_csv, group_column=group_column,
                                      skip_bad=skip_bad)
    return SlideGraphDataset.from_folder(features_dir, labels_csv, cache=cache,
                                         group_column=group_column)

"""Fixtures of the training tests: tiny synthetic slide graphs and feature files."""

from __future__ import annotations

import os

import pytest
import torch

# The machine is shared: single-threaded, tiny models.
torch.set_num_threads(int(os.environ.get("NAPARI_HIGT_TEST_THREADS", "1")))

TINY = {"hidden": 16, "n_blocks": 1, "block_layers": 1}


@pytest.fixture(scope="session")
def synth_graphs():
    from tests.training._synth import make_graphs

    return make_graphs(24, seed=0)


@pytest.fixture
def synth_dataset(synth_graphs):
    from napari_higt.training.dataset import SlideGraphDataset

    g, y = synth_graphs
    return SlideGraphDataset.from_graphs(g, y, class_names=["benign", "tumour"])


@pytest.fixture
def feature_folder(tmp_path):
    from tests.training._synth import write_feature_files

    return write_feature_files(tmp_path / "features", n=12)

"""Shared fixtures: the real sample slides and small slides made from real tissue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def cmu1_path() -> Path:
    """Aperio SVS, one level, 0.499 µm/px (real tissue)."""
    return SAMPLE / "cmu-1-small-region.svs"


@pytest.fixture(scope="session")
def tcga_path() -> Path:
    """Whole TCGA section, two levels, no scale in the file."""
    return SAMPLE / "tcga-cr-7395-01a-01-ts1.svs"


@pytest.fixture(scope="session")
def tissue_rgb(cmu1_path) -> np.ndarray:
    """A 1024 x 1024 crop of real H&E tissue from the CMU-1 sample."""
    from napari_higt.slide import Slide

    with Slide(cmu1_path) as s:
        return s.read_region((740, 1900), 0, (1024, 1024))


@pytest.fixture(scope="session")
def tiled_tiff(tmp_path_factory, tissue_rgb) -> Path:
    """A 3-level pyramidal tiled TIFF (2048 x 1536 px, 0.5 µm/px) of real tissue."""
    from napari_higt.slide.writer import tile_to_size, write_pyramidal_tiff

    path = tmp_path_factory.mktemp("slides") / "tissue.tif"
    rgb = tile_to_size(tissue_rgb, (1536, 2048))
    return write_pyramidal_tiff(path, rgb, mpp=0.5, tile=256, min_size=512)


@pytest.fixture(scope="session")
def tcga_graph(tcga_path):
    """The TCGA section's graph at a stated 1.0 µm/px (512 px tiles, no upsampling), with
    placeholder-free features: each node's mean RGB and its tissue fraction."""
    from napari_higt.graph import HierarchicalGraph
    from napari_higt.slide import Slide
    from napari_higt.slide.tiling import tile_slide

    with Slide(tcga_path, mpp=1.0) as s:
        tiling = tile_slide(s, tissue_threshold=0.25)
        thumb = s.thumbnail(256).astype(np.float32)
        ds = s.dimensions[0] / thumb.shape[1]
    coords = {k: g.coords for k, g in tiling.levels.items()}
    feats = {}
    for k, g in tiling.levels.items():
        # Mean colour of the tile on the thumbnail: cheap real features for layout tests.
        cx = np.clip(((g.coords[:, 0] + g.size0 / 2) / ds).astype(int), 0, thumb.shape[1] - 1)
        cy = np.clip(((g.coords[:, 1] + g.size0 / 2) / ds).astype(int), 0, thumb.shape[0] - 1)
        feats[k] = np.column_stack([thumb[cy, cx] / 255.0, g.tissue]).astype(np.float32)
    sizes = {k: g.size0 for k, g in tiling.levels.items()}
    graph = HierarchicalGraph.from_arrays(coords, feats, patch_size=sizes)
    return graph, tiling


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory, tcga_path, cmu1_path):
    """A tiny HIGT checkpoint trained in seconds on real handcrafted features.

    Two slides (the TCGA section at a stated 1.0 µm/px, CMU-1 at its own scale), labelled
    "tumour" and "normal", a few dozen Adam steps: enough to give the model non-trivial,
    reproducible weights for the inference and export tests.
    """
    import torch

    from napari_higt.features.pipeline import preprocess_slide
    from napari_higt.inference.checkpoint import save_checkpoint
    from napari_higt.models import build_model, resolve_config
    from napari_higt.training.dataset import load_graph

    root = tmp_path_factory.mktemp("ckpt")
    feats = root / "features"
    paths = [preprocess_slide(tcga_path, feats, "handcrafted", mpp=1.0),
             preprocess_slide(cmu1_path, feats, "handcrafted")]
    graphs = [load_graph(p) for p in paths]
    torch.manual_seed(0)
    cfg = resolve_config({"model": "higt", "in_dim": 64, "n_classes": 2, "hidden": 32,
                          "n_blocks": 1, "block_layers": 1})
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(30):
        for g, y in zip(graphs, (1, 0)):
            loss = torch.nn.functional.cross_entropy(model(g).logits, torch.tensor([y]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    path = save_checkpoint(root / "small.pt", model.state_dict(), {
        "model": cfg, "class_names": ["normal", "tumour"], "extractor": "handcrafted",
        "in_dim": 64, "train": {"steps": 30}})
    return path, feats

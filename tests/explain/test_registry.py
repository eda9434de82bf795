"""The score vocabulary: every score the model gives has one entry, and its readers agree."""

import numpy as np
import pytest

from napari_higt.explain.registry import (
    DIVERGING_CMAP,
    EDGE_SCORE,
    NORMALISATIONS,
    SCORES,
    SEQUENTIAL_CMAP,
    USES,
    default_score,
    score_keys,
    score_spec,
)


def test_every_score_of_higt_has_an_entry(tcga_graph):
    import torch

    from napari_higt.explain.reduce import node_scores
    from napari_higt.models import build_model

    graph, _ = tcga_graph
    torch.manual_seed(0)
    model = build_model({"model": "higt", "in_dim": graph.x.shape[1], "n_classes": 2,
                         "hidden": 16, "n_blocks": 1, "block_layers": 1}).eval()
    with torch.no_grad():
        scores, how = node_scores(model(graph.to_pyg()), graph.level)
    per_node = set(scores) - {EDGE_SCORE.key}
    assert per_node and per_node <= set(SCORES)
    assert how == {k: score_spec(k).reduction for k in scores}
    for k in per_node:
        assert scores[k].shape == (graph.num_nodes,)
        off = ~np.isin(graph.level, [{"x5": 1, "x10": 2}[lv] for lv in SCORES[k].levels])
        assert np.isnan(scores[k][off]).all() and np.isfinite(scores[k][~off]).all()
    assert scores[EDGE_SCORE.key].shape == (graph.edge_index.shape[1],)


def test_entries_are_complete_and_consistent():
    for key, s in SCORES.items():
        assert s.key == key and s.display_name and s.meaning and s.levels
        assert s.display_name != key and s.meaning.endswith(".")  # plain words, one sentence
        assert s.high and s.low and "100" in s.legend("x10", "tumour")
        assert set(s.levels) <= {"x5", "x10"}
        assert s.normalisation in NORMALISATIONS and set(s.uses) <= set(USES)
        assert s.colormap == (DIVERGING_CMAP if s.diverging else SEQUENTIAL_CMAP)
    assert score_keys("paint")[0] == "node_importance"
    assert default_score() in score_keys("paint")
    assert default_score({"mil_attention": 0}) == "mil_attention"  # a baseline's own map
    assert set(score_keys("export")) == set(SCORES)
    assert score_spec("something_else").colormap == SEQUENTIAL_CMAP
    with pytest.raises(ValueError, match="use must be"):
        score_keys("draw")


def test_score_maps_follow_the_registry(tcga_graph):
    from napari_higt.explain.maps import score_maps

    graph, tiling = tcga_graph
    scores = {k: np.linspace(0.1, 1, graph.num_nodes) for k in SCORES}
    maps = score_maps(graph, scores, (4000, 3000))
    for m in maps:
        assert m.level in SCORES[m.name].levels
        assert m.colormap == SCORES[m.name].colormap
    assert {m.name for m in maps if m.diverging} == {
        k for k, s in SCORES.items() if s.normalisation == "signed_percentile"}

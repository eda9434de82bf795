"""Gradient attributions: finite, one per node in node order, complete, and on the evidence."""

import numpy as np
import pytest
import torch

from napari_higt.explain.attribution import (
    gradient_x_input,
    integrated_gradients,
    level_mean_baseline,
    predicted_class,
    random_scores,
)
from napari_higt.explain.faithfulness import localisation_auroc
from napari_higt.models import build_model
from napari_higt.models.norm import fit_standardizer
from tests.explain._planted import GRID, planted_slide


def _target(model, data, baseline, target):
    with torch.no_grad():
        lo = model(data).logits[0]
        g = data.clone()
        g.x = baseline
        lb = model(g).logits[0]
    return float((lo[target] - lo.mean()) - (lb[target] - lb.mean()))


@pytest.fixture(scope="module")
def small_higt(planted_pools):
    graphs = [planted_slide(planted_pools, i % 2, 300 + i).data for i in range(4)]
    torch.manual_seed(0)
    model = build_model({"model": "higt", "in_dim": graphs[0].x.shape[1], "n_classes": 2,
                         "hidden": 16, "n_blocks": 1, "block_layers": 1})
    fit_standardizer(model, graphs)
    return model.eval()


def test_higt_attributions_are_finite_and_one_per_node(small_higt, planted_pools):
    data = planted_slide(planted_pools, 1, 11).data
    before = [p.detach().clone() for p in small_higt.parameters()]
    for fn in (gradient_x_input, integrated_gradients):
        s = fn(small_higt, data)
        assert s.shape == (data.num_nodes,) and s.dtype == np.float64
        assert np.all(np.isfinite(s)) and np.abs(s).max() > 0
    assert all(p.grad is None for p in small_higt.parameters())  # nothing accumulated
    assert all(torch.equal(a, b) for a, b in zip(before, small_higt.parameters()))


def test_the_standardised_origin_is_a_blind_baseline_for_higt(small_higt, planted_pools):
    """HIGT layer-normalises every node first, so gradient x (x - training mean) is 0 per
    node: why the default baseline is the slide's mean node of each level."""
    data = planted_slide(planted_pools, 1, 12).data
    origin = small_higt.standardize.mean.expand_as(data.x)
    blind = gradient_x_input(small_higt, data, baseline=origin)
    useful = gradient_x_input(small_higt, data)
    assert np.abs(blind).max() < 1e-3 * np.abs(useful).max()


def test_attributions_follow_the_node_order(planted_abmil, planted_pools):
    order = np.random.default_rng(0).permutation(GRID * GRID)
    a = planted_slide(planted_pools, 1, 21)
    b = planted_slide(planted_pools, 1, 21, order=order)  # the same slide, patches reordered
    for fn in (gradient_x_input, integrated_gradients):
        sa, sb = fn(planted_abmil, a.data)[a.units], fn(planted_abmil, b.data)[b.units]
        np.testing.assert_allclose(sb, sa[order], rtol=1e-4, atol=1e-6)
        assert localisation_auroc(sa, a.evidence) > 0.9
        assert localisation_auroc(sb, b.evidence) > 0.9


def test_integrated_gradients_add_up_to_the_change_of_the_target(planted_abmil,
                                                                  planted_pools):
    data = planted_slide(planted_pools, 1, 31).data
    target = predicted_class(planted_abmil, data)
    ig = integrated_gradients(planted_abmil, data, steps=64, batch_size=32)
    delta = _target(planted_abmil, data, level_mean_baseline(data), target)
    assert abs(delta) > 0.1
    assert ig.sum() == pytest.approx(delta, rel=0.05, abs=1e-3)
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(planted_abmil, data, steps=0)


def test_level_mean_baseline_and_bad_input(planted_abmil, planted_pools):
    data = planted_slide(planted_pools, 0, 41).data
    b = level_mean_baseline(data)
    for lv in range(3):
        m = data.level == lv
        torch.testing.assert_close(b[m], data.x[m].mean(0).expand(int(m.sum()), -1))
    with pytest.raises(ValueError, match="baseline of shape"):
        gradient_x_input(planted_abmil, data, baseline=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="baseline must be"):
        gradient_x_input(planted_abmil, data, baseline="blurred")
    planted_abmil.train()
    try:
        with pytest.raises(ValueError, match="eval mode"):
            integrated_gradients(planted_abmil, data)
    finally:
        planted_abmil.eval()


def test_random_scores_are_seeded():
    a, b = random_scores(50, 3), random_scores(50, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, random_scores(50, 4)) and a.shape == (50,)

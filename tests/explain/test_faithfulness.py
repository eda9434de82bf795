"""The faithfulness measures on planted evidence in real tissue: a correct map localises and
deletes the evidence first, a shuffled map and random orders do not."""

import numpy as np
import pytest

from napari_higt.explain.attribution import integrated_gradients, random_scores
from napari_higt.explain.faithfulness import (
    DEFAULT_FRACTIONS,
    curve_auc,
    deletion_curve,
    insertion_curve,
    localisation_auroc,
    model_removal_fn,
    ranking,
    removal_weights,
    top_fraction_masks,
)
from tests.explain._planted import planted_slide

SEEDS = range(500, 506)


@pytest.fixture(scope="module")
def positives(planted_pools):
    return [planted_slide(planted_pools, 1, s) for s in SEEDS]


def test_localisation_auroc_matches_its_definition():
    rng = np.random.default_rng(0)
    s, e = rng.normal(size=50).round(1), rng.random(50) < 0.3  # rounding makes ties
    pos, neg = s[e][:, None], s[~e][None, :]  # P(evidence outscores the rest), ties 1/2
    assert localisation_auroc(s, e) == pytest.approx(np.mean((pos > neg) + 0.5 * (pos == neg)))
    assert localisation_auroc(np.ones(10), np.arange(10) < 3) == 0.5
    assert np.isnan(localisation_auroc(s, np.zeros(50, bool)))
    s[e] = np.nan  # unscored evidence ranks last
    assert localisation_auroc(s, e) == 0.0
    with pytest.raises(ValueError, match="scores for"):
        localisation_auroc(s[:3], e)


def test_a_correct_map_localises_the_evidence_and_a_shuffled_one_does_not(
        planted_abmil, positives):
    correct, shuffled = [], []
    for k, sl in enumerate(positives):
        ig = integrated_gradients(planted_abmil, sl.data, steps=16)[sl.units]
        assert np.all(np.isfinite(ig))
        correct.append(localisation_auroc(ig, sl.evidence))
        shuffled.append(localisation_auroc(np.random.default_rng(k).permutation(ig),
                                           sl.evidence))
    assert min(correct) > 0.9
    assert np.mean(shuffled) < 0.75 and max(shuffled) < min(correct)


def test_deleting_the_evidence_drops_the_probability_faster_than_random(
        planted_abmil, positives):
    gaps_del, gaps_ins = [], []
    for sl in positives:
        prob = model_removal_fn(planted_abmil, sl.data, sl.x_background, sl.units, target=1)
        # the evidence first (the oracle map), then random orders of the same slide
        oracle = ranking(sl.evidence.astype(float))
        d = deletion_curve(prob, oracle)
        i = insertion_curve(prob, oracle)
        assert d[0] > 0.9 and d[-1] < 0.5  # the model uses the evidence
        assert i[0] < 0.5 < i[-1]
        rand = [ranking(random_scores(len(sl.units), r), r) for r in range(6)]
        d_rand = np.mean([curve_auc(DEFAULT_FRACTIONS, deletion_curve(prob, o)) for o in rand])
        i_rand = np.mean([curve_auc(DEFAULT_FRACTIONS, insertion_curve(prob, o)) for o in rand])
        gaps_del.append(d_rand - curve_auc(DEFAULT_FRACTIONS, d))
        gaps_ins.append(curve_auc(DEFAULT_FRACTIONS, i) - i_rand)
    assert min(gaps_del) > 0.2 and min(gaps_ins) > 0.2


def test_deleting_background_changes_nothing(planted_abmil, planted_pools):
    sl = planted_slide(planted_pools, 0, 7)  # no tissue B: the twin is the slide itself
    prob = model_removal_fn(planted_abmil, sl.data, sl.x_background, sl.units, target=0)
    curve = deletion_curve(prob, ranking(random_scores(len(sl.units))))
    assert np.ptp(curve) < 1e-6


def test_removal_weights_are_each_nodes_share_of_removed_content():
    # thumbnail 0 <- regions 1, 2 <- patches 3, 4 (region 1) and 5 (region 2)
    parent = np.array([0, 0, 0, 1, 1, 2])
    units = np.array([3, 4, 5])
    removed = np.array([[True, False, False], [True, True, True], [False, False, False]])
    w = removal_weights(removed, units, parent)
    np.testing.assert_allclose(w[0], [1 / 3, 1 / 2, 0, 1, 0, 0])
    np.testing.assert_allclose(w[1], 1.0)
    np.testing.assert_allclose(w[2], 0.0)
    # a unit that the replacement does not change (mass 0) takes nothing away
    w = removal_weights(removed[:1], units, parent, mass=np.array([0.0, 1.0, 1.0]))
    np.testing.assert_allclose(w[0], [0, 0, 0, 0, 0, 0])
    w = removal_weights([[False, True, False]], units, parent, mass=np.array([0.0, 1.0, 1.0]))
    np.testing.assert_allclose(w[0], [1 / 2, 1, 0, 0, 1, 0])
    with pytest.raises(ValueError, match="units"):
        removal_weights(removed[:, :2], units, parent)


def test_masks_ranking_and_area():
    order = ranking(np.array([0.2, 0.9, np.nan, 0.9, 0.5]), seed=3)
    assert set(order[:2]) == {1, 3} and order[2] == 4 and order[-1] == 2
    assert not np.array_equal(ranking(np.zeros(30), 1), ranking(np.zeros(30), 2))  # ties
    masks = top_fraction_masks(np.arange(20)[::-1], DEFAULT_FRACTIONS)
    assert masks.shape == (11, 20)
    assert masks.sum(1).tolist() == [round(f * 20) for f in DEFAULT_FRACTIONS]
    assert masks[1, 19] and not masks[1, 0]
    assert curve_auc(DEFAULT_FRACTIONS, np.full(11, 0.7)) == pytest.approx(0.7)
    assert curve_auc([0, 0.5], [1.0, 0.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="positive range"):
        curve_auc([0.1, 0.1], [1, 1])

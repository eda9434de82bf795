"""Grouped folds: a group never straddles two parts, over many random group layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_higt.errors import UserFacingError
from napari_higt.training.folds import (
    FOLDS_FILE,
    Fold,
    check_grouped,
    make_folds,
    read_folds,
    write_folds,
)


def _random_cohort(rng: np.random.Generator):
    """Slides of random groups: 1-4 slides a group, group label drawn per group, 2-4 classes."""
    n_classes = int(rng.integers(2, 5))
    n_groups = int(rng.integers(6 * n_classes, 40))
    sizes = rng.integers(1, 5, n_groups)
    # Every class in at least 4 groups, so that up to 4 folds are possible.
    glab = np.concatenate([np.tile(np.arange(n_classes), 4),
                           rng.integers(0, n_classes, n_groups - 4 * n_classes)])
    groups = np.repeat([f"case{i:03d}" for i in range(n_groups)], sizes)
    y = np.repeat(glab, sizes)
    perm = rng.permutation(len(y))  # slides of a group are not contiguous in the list
    return y[perm], groups[perm]


@pytest.mark.parametrize("protocol", ["inner-val", "eval-fold"])
def test_a_group_is_never_split_over_random_layouts(protocol: str) -> None:
    rng = np.random.default_rng(1234)
    for trial in range(40):
        y, groups = _random_cohort(rng)
        k = int(rng.integers(2, 4))
        folds = make_folds(y, groups, k, seed=trial, protocol=protocol)
        assert len(folds) == k
        tests = np.concatenate([f.test for f in folds])
        assert sorted(tests.tolist()) == list(range(len(y)))  # every slide tested once
        for f in folds:
            parts = [set(groups[f.train]), set(groups[f.val]), set(groups[f.test])]
            assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
            assert len(f.train) + len(f.val) + len(f.test) == len(y)
            if protocol == "inner-val":
                assert len(f.val) > 0 and len(f.train) > 0
                assert np.array_equal(f.select, f.val)
            else:
                assert len(f.val) == 0 and np.array_equal(f.select, f.test)


def test_folds_are_stratified_and_differ_by_seed() -> None:
    y = np.repeat([0, 1], 50)
    groups = np.arange(100) // 2  # pairs of slides of one label
    a = make_folds(y, groups, 5, seed=0)
    b = make_folds(y, groups, 5, seed=1)
    for f in a:
        assert abs(y[f.test].mean() - 0.5) < 0.15
    assert any(not np.array_equal(fa.test, fb.test) for fa, fb in zip(a, b))
    again = make_folds(y, groups, 5, seed=0)
    assert all(np.array_equal(f.test, g.test) and np.array_equal(f.val, g.val)
               for f, g in zip(a, again))


def test_too_few_groups_is_a_clear_error() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    groups = ["a", "a", "b", "c", "c", "c"]  # class 1 lives in one group only
    with pytest.raises(UserFacingError, match="class 1 has 1"):
        make_folds(y, groups, 2, seed=0)


def test_check_grouped_catches_a_split_group() -> None:
    groups = ["a", "a", "b", "c"]
    bad = Fold(0, np.array([0, 2]), np.zeros(0, np.int64), np.array([1, 3]))
    with pytest.raises(UserFacingError, match="group 'a'"):
        check_grouped([bad], groups, 4)


def test_folds_file_round_trip_and_refusals(tmp_path) -> None:
    rng = np.random.default_rng(0)
    y, groups = _random_cohort(rng)
    ids = [f"slide{i:03d}" for i in range(len(y))]
    folds = {0: make_folds(y, groups, 3, 0), 1: make_folds(y, groups, 3, 1)}
    write_folds(tmp_path / FOLDS_FILE, ids, folds, protocol="inner-val", group_column="case")
    # Read back onto the slides in another order: the same partitions by slide id.
    order = rng.permutation(len(ids))
    back, meta = read_folds(tmp_path, [ids[i] for i in order], groups[order])
    assert meta == {"protocol": "inner-val", "group_column": "case"}
    for sd in (0, 1):
        for f, g in zip(folds[sd], back[sd]):
            for part in ("train", "val", "test"):
                assert sorted(ids[i] for i in getattr(f, part)) == \
                    sorted(ids[order[i]] for i in getattr(g, part))
    with pytest.raises(UserFacingError, match="does not have"):
        read_folds(tmp_path, ids[1:])
    with pytest.raises(UserFacingError, match="in none of its parts"):
        read_folds(tmp_path, ids + ["extra"])
    with pytest.raises(UserFacingError, match="has slides in both"):
        read_folds(tmp_path, ids, ["one"] * len(ids))  # grouped differently: one big group
    (tmp_path / "other.json").write_text(json.dumps({"x": 1}))
    with pytest.raises(UserFacingError, match="not a napari-higt folds file"):
        read_folds(tmp_path / "other.json", ids)

"""The bag dataset: labels + a folder of .pt / .h5 bags, bad files, batches by index."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_higt.errors import FeatureError
from napari_higt.training.bag_dataset import BagDataset


def _folder(tmp_path, n=6, dim=5):
    feats = tmp_path / "features"
    feats.mkdir()
    rows = ["slide_id,case_id,label"]
    for i in range(n):
        torch.save(torch.full((i + 1, dim), float(i)), feats / f"s{i}.pt")
        rows.append(f"s{i},case{i // 2},{'LUAD' if i % 2 else 'LUSC'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return feats, tmp_path / "labels.csv"


def test_from_folder_and_collate(tmp_path) -> None:
    feats, labels = _folder(tmp_path)
    ds = BagDataset.from_folder(feats, labels, group_column="case_id")
    assert len(ds) == 6 and ds.in_dim == 5 and ds.class_names == ["luad", "lusc"]  # labels are case-folded
    assert ds.groups.tolist() == ["case0", "case0", "case1", "case1", "case2", "case2"]
    assert ds.y.tolist() == [1, 0, 1, 0, 1, 0] and not ds.has_coords
    b = ds.collate([4, 0, 2])
    assert b.num_graphs == 3 and b.y.tolist() == [1, 1, 1]
    assert b.batch.tolist() == [0] * 5 + [1] + [2] * 3
    assert b.x[:, 0].tolist() == [4.0] * 5 + [0.0] + [2.0] * 3
    assert ds[3].x.shape == (4, 5)
    assert "6 bags" in ds.summary()


def test_bad_files_stop_unless_skipped(tmp_path) -> None:
    feats, labels = _folder(tmp_path)
    torch.save(torch.randn(3), feats / "s1.pt")
    torch.save(torch.tensor([[float("nan")] * 5]), feats / "s4.pt")
    with pytest.raises(FeatureError) as err:
        BagDataset.from_folder(feats, labels)
    lines = str(err.value).splitlines()
    assert "--skip-bad" in lines[0] and len(lines) == 3
    assert lines[1].startswith("s1.pt: ") and "1-D" in lines[1]
    assert lines[2].startswith("s4.pt: ") and "NaN" in lines[2]
    with pytest.warns(UserWarning, match="2 bad feature file"):
        ds = BagDataset.from_folder(feats, labels, skip_bad=True)
    assert ds.slide_ids == ["s0", "s2", "s3", "s5"] and len(ds.skipped) == 2


def test_missing_and_unlabelled_are_reported(tmp_path) -> None:
    feats, labels = _folder(tmp_path)
    (feats / "s5.pt").unlink()
    torch.save(torch.randn(2, 5), feats / "extra.pt")
    with pytest.warns(UserWarning, match="1 labelled slide.*s5.*1 feature file.*extra"):
        ds = BagDataset.from_folder(feats, labels)
    assert len(ds) == 5


def test_from_arrays_matches_per_bag_rows() -> None:
    rng = np.random.default_rng(0)
    bags = [rng.normal(size=(int(n), 3)).astype(np.float32) for n in rng.integers(1, 9, 20)]
    ds = BagDataset.from_arrays(bags, [i % 3 for i in range(20)])
    idx = rng.permutation(20)[:7]
    b = ds.collate(idx)
    np.testing.assert_array_equal(b.x.numpy(), np.concatenate([bags[i] for i in idx]))
    assert ds.n_classes == 3


def test_bag_and_graph_datasets_share_the_label_bookkeeping(tmp_path) -> None:
    """Length, classes, counts and the class check live once (training.labelled)."""
    from napari_higt.training.dataset import SlideGraphDataset
    from napari_higt.training.labelled import LabelledSlides, class_indices

    assert issubclass(BagDataset, LabelledSlides) and issubclass(SlideGraphDataset,
                                                                 LabelledSlides)
    y, names = class_indices(["b", "a", "b"])
    assert names == ["a", "b"] and y.tolist() == [1, 0, 1]
    ds = BagDataset.from_arrays([np.ones((2, 3))] * 3, ["b", "a", "b"])
    assert len(ds) == 3 and ds.n_classes == 2 and ds.class_counts().tolist() == [1, 2]
    assert ds.summary().startswith("3 bags (a: 1, b: 2)")
    torch.save(torch.ones(4, 3), tmp_path / "s1.pt")
    (tmp_path / "labels.csv").write_text("slide_id,label\ns1,a\ns2,b\n")
    with pytest.warns(UserWarning), pytest.raises(FeatureError, match="has class 'b'"):
        BagDataset.from_folder(tmp_path, tmp_path / "labels.csv")

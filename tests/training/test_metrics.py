"""Multi-class metrics agree with scikit-learn, including classes missing from a fold."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, roc_auc_score

from napari_higt.training.metrics import (
    auc_score,
    balanced_accuracy,
    classification_metrics,
    confusion,
    macro_f1,
)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_against_sklearn_on_random_predictions(n_classes: int) -> None:
    rng = np.random.default_rng(n_classes)
    for _ in range(20):
        n = int(rng.integers(n_classes, 40))
        y = rng.integers(0, n_classes, n)
        y[:n_classes] = np.arange(n_classes)  # every class present
        probs = rng.dirichlet(np.ones(n_classes), n)
        pred = probs.argmax(1)
        labels = np.arange(n_classes)
        assert np.array_equal(confusion(y, probs), confusion_matrix(y, pred, labels=labels))
        assert balanced_accuracy(y, probs) == pytest.approx(balanced_accuracy_score(y, pred))
        assert macro_f1(y, probs) == pytest.approx(f1_score(y, pred, average="macro",
                                                            zero_division=0))
        ref = (roc_auc_score(y, probs[:, 1]) if n_classes == 2 else
               roc_auc_score(y, probs, multi_class="ovr", average="macro"))
        assert auc_score(y, probs) == pytest.approx(ref)


def test_a_class_absent_from_the_fold() -> None:
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.1, 0.7], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]])
    m = classification_metrics(y, probs)
    assert m["confusion"] == [[1, 0, 1], [0, 2, 0], [0, 0, 0]]
    assert m["balanced_acc"] == pytest.approx(0.75)  # recall of the classes present: 0.5, 1
    # class 2 is predicted once: sklearn counts it (F1 0) in the macro average
    assert m["f1"] == pytest.approx(f1_score(y, probs.argmax(1), average="macro"))
    assert m["acc"] == pytest.approx(0.75)
    assert np.isfinite(m["auc"])
    assert np.isnan(balanced_accuracy(np.zeros(0, int), np.zeros((0, 3))))

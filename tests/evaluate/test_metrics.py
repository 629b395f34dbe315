"""Accuracy, per-class scores, confusion matrix and calibration on hand-checked numbers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from maas.errors import ShapeMismatch
from maas.evaluate.metrics import classification_report, confusion_matrix

PROBS = np.array(
    [
        [0.9, 0.05, 0.05],  # true 0, right, conf 0.9
        [0.6, 0.3, 0.1],  # true 1, wrong (says 0), conf 0.6
        [0.1, 0.8, 0.1],  # true 1, right, conf 0.8
        [0.2, 0.2, 0.6],  # true 2, right, conf 0.6
        [0.15, 0.7, 0.15],  # true 2, wrong (says 1), conf 0.7
    ]
)
TRUE = np.array([0, 1, 1, 2, 2])


def test_accuracy_confusion_and_per_class_scores_match_sklearn() -> None:
    report = classification_report(PROBS, TRUE, ["a", "b", "c"])
    assert report.accuracy == pytest.approx(3 / 5)
    assert report.confusion.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    precision, recall, f1, support = precision_recall_fscore_support(
        TRUE, PROBS.argmax(1), zero_division=0
    )
    for k, scores in enumerate(report.per_class):
        assert scores.label == "abc"[k]
        assert scores.precision == pytest.approx(precision[k])
        assert scores.recall == pytest.approx(recall[k])
        assert scores.f1 == pytest.approx(f1[k])
        assert scores.support == support[k]
    assert report.log_loss == pytest.approx(-np.mean(np.log([0.9, 0.3, 0.8, 0.6, 0.15])))


def test_expected_calibration_error_by_hand() -> None:
    report = classification_report(PROBS, TRUE, [])
    # bins (0.5,0.6]: confs 0.6, 0.6 -> acc 1/2; (0.6,0.7]: 0.7 -> 0; (0.7,0.8]: 0.8 -> 1;
    # (0.8,0.9]: 0.9 -> 1
    expected = (2 * abs(0.5 - 0.6) + abs(0.0 - 0.7) + abs(1 - 0.8) + abs(1 - 0.9)) / 5
    assert report.ece == pytest.approx(expected)
    assert sum(b.count for b in report.reliability) == 5
    assert [c.label for c in report.per_class] == ["0", "1", "2"]


def test_a_perfectly_confident_right_model_is_calibrated() -> None:
    probs = np.eye(4)[[0, 1, 2, 3, 3]]
    report = classification_report(probs, np.array([0, 1, 2, 3, 3]), [])
    assert report.accuracy == 1.0
    assert report.ece == pytest.approx(0.0)
    assert report.macro_f1 == pytest.approx(1.0)


def test_shapes_are_checked() -> None:
    with pytest.raises(ShapeMismatch):
        classification_report(PROBS, TRUE[:3], [])
    with pytest.raises(ShapeMismatch):
        classification_report(PROBS, TRUE, ["a", "b"])
    assert confusion_matrix(np.array([1]), np.array([0]), 2).tolist() == [[0, 0], [1, 0]]

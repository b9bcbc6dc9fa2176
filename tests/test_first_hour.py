"""What a new user hits first (issue 10): each item here failed on the main before the fix."""

from __future__ import annotations

import numpy as np
import pytest

# --- item 6: the metrics are scikit-learn's -----------------------------------------------------


def test_macro_f1_matches_scikit_learn_on_a_class_predicted_but_never_true() -> None:
    from sklearn.metrics import f1_score

    from signlang.training.evaluation import classification_report, labels_accuracy_f1

    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 1, 2])  # class 2 is predicted once but has no true clip
    proba = np.eye(3)[pred] * 0.9 + 0.1 / 3
    expected = f1_score(y, pred, average="macro")
    assert expected == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)  # not 0.833 (classes in y_true only)
    assert classification_report(y, proba, ("a", "b", "c"))["macro_f1"] == pytest.approx(expected, abs=1e-12)
    assert labels_accuracy_f1(y, pred, 3)["macro_f1"] == pytest.approx(expected, abs=1e-12)


def test_every_metric_equals_scikit_learn_on_random_labels() -> None:
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support, top_k_accuracy_score

    from signlang.training.evaluation import classification_report

    rng = np.random.default_rng(0)
    for trial in range(20):
        n_classes = int(rng.integers(3, 8))
        n = int(rng.integers(1, 40))
        y = rng.integers(0, n_classes, n)
        proba = rng.dirichlet(np.ones(n_classes), n)
        pred = proba.argmax(1)
        r = classification_report(y, proba, tuple(f"c{i}" for i in range(n_classes)), top_k=2)
        assert r["accuracy"] == pytest.approx(accuracy_score(y, pred)), trial
        assert r["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0)), trial
        assert r["top2_accuracy"] == pytest.approx(top_k_accuracy_score(y, proba, k=2, labels=np.arange(n_classes))), trial
        p, rc, f, s = precision_recall_fscore_support(y, pred, labels=np.arange(n_classes), zero_division=0)
        for i in range(n_classes):
            got = r["per_class"][f"c{i}"]
            assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx((p[i], rc[i], f[i], s[i]))

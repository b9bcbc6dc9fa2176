"""Out-of-fold stacking: no in-fold prediction reaches the meta-learner; class alignment; accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from signlang.models.ensemble import StackingEnsemble, align_proba
from signlang.models.trees import XGBoostClassifier


class Memorizer(BaseEstimator, ClassifierMixin):
    """Returns one-hot for a row it was trained on and uniform (over its classes) for any other row."""

    def __init__(self, tag: int = 0) -> None:
        self.tag = tag

    @staticmethod
    def _keys(X: np.ndarray) -> list[bytes]:
        X = np.ascontiguousarray(X)
        return [row.tobytes() for row in X.reshape(len(X), -1)]

    def fit(self, X: np.ndarray, y: np.ndarray) -> "Memorizer":
        self.classes_ = np.unique(y)
        self.memory_ = dict(zip(self._keys(X), np.searchsorted(self.classes_, y)))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        out = np.full((len(X), len(self.classes_)), 1.0 / len(self.classes_))
        for i, key in enumerate(self._keys(X)):
            if key in self.memory_:
                out[i] = 0.0
                out[i, self.memory_[key]] = 1.0
        return out


def _data(n_per_class: int = 10, n_classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = rng.normal(size=(len(y), 4, 75, 3)).astype(np.float32)  # landmark-shaped, unique rows
    return X, y


def _meta() -> XGBoostClassifier:
    return XGBoostClassifier(n_estimators=5, n_jobs=1)


@pytest.mark.parametrize("given_folds", [True, False])
def test_oof_matrix_never_uses_in_fold_predictions(given_folds: bool) -> None:
    X, y = _data()
    folds = np.arange(len(y)) % 5 if given_folds else None
    ens = StackingEnsemble([("m1", Memorizer(1)), ("m2", Memorizer(2))], meta_estimator=_meta(), n_folds=5, random_state=3)
    ens.fit(X, y, folds=folds)
    assert ens.oof_proba_.shape == (len(y), 2 * 3)
    # Every OOF prediction came from a model that had not seen the clip: uniform everywhere.
    np.testing.assert_allclose(ens.oof_proba_, 1.0 / 3)
    if given_folds:
        np.testing.assert_array_equal(ens.folds_, folds)
    else:  # stratified: every fold holds every class twice
        assert sorted(np.unique(ens.folds_).tolist()) == [0, 1, 2, 3, 4]
        counts = np.array([[np.sum((ens.folds_ == k) & (y == c)) for c in range(3)] for k in range(5)])
        assert np.all(counts == 2)
    # The final bases were refitted on all clips: they recognise every training clip.
    by_model = ens.predict_proba_by_model(X)
    assert set(by_model) == {"m1", "m2"}
    for proba in by_model.values():
        np.testing.assert_array_equal(proba.argmax(1), y)
        np.testing.assert_allclose(proba.max(1), 1.0)
    assert ens.meta_feature_names_[:3] == ["m1:0", "m1:1", "m1:2"]
    assert ens.predict_proba(X).shape == (len(y), 3)


def test_fold_missing_a_class_is_aligned_to_all_classes() -> None:
    X, y = _data(n_per_class=6)
    folds = np.where(y == 2, 0, np.arange(len(y)) % 3)  # class 2 lives only in fold 0
    ens = StackingEnsemble([("m", Memorizer())], meta_estimator=_meta()).fit(X, y, folds=folds)
    in_fold0 = folds == 0
    # Trained without class 2: uniform over {0, 1}, zero for class 2, still 3 columns.
    np.testing.assert_allclose(ens.oof_proba_[in_fold0], np.tile([0.5, 0.5, 0.0], (in_fold0.sum(), 1)))
    np.testing.assert_allclose(ens.oof_proba_[~in_fold0], 1.0 / 3)


def test_align_proba_reorders_and_rejects() -> None:
    p = np.array([[0.2, 0.8]])
    np.testing.assert_allclose(align_proba(p, np.array([1, 3]), np.arange(4), "x"), [[0, 0.2, 0, 0.8]])
    with pytest.raises(ValueError, match=r"labels \[7\]"):
        align_proba(p, np.array([1, 7]), np.arange(4), "x")
    with pytest.raises(ValueError, match="shape"):
        align_proba(p, np.array([1, 2, 3]), np.arange(4), "x")


def test_stacking_xgboost_bases_learn_and_validate_inputs() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    X = rng.normal(size=(len(y), 5)).astype(np.float32)
    X[:, 0] += 2.5 * y
    X[:, 1] -= 2.5 * y
    base = XGBoostClassifier(n_estimators=20, learning_rate=0.3, n_jobs=1)
    ens = StackingEnsemble([("a", base), ("b", base)], meta_estimator=XGBoostClassifier(n_estimators=30, learning_rate=0.3, n_jobs=1),
                           n_folds=3).fit(X, y)
    assert np.isfinite(ens.oof_proba_).all()
    assert (ens.predict(X) == y).mean() > 0.9
    with pytest.raises(ValueError, match="folds must have shape"):
        ens.fit(X, y, folds=np.zeros(3))
    with pytest.raises(ValueError, match="at least 2 distinct"):
        ens.fit(X, y, folds=np.zeros(len(y)))
    with pytest.raises(ValueError, match="unique"):
        StackingEnsemble([("a", base), ("a", base)]).fit(X, y)

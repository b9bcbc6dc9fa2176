"""Out-of-fold stacking: base estimators' probabilities -> a combiner (XGBoost, logistic or mean).

For each fold k every base estimator is cloned, fitted on the clips outside fold k and asked for
probabilities on fold k; the combiner ("meta-learner") is fitted on these out-of-fold (OOF)
probabilities, so it never sees a probability that a model produced for a clip it was trained
on. Finally every base estimator is refitted on all clips. A combiner that learns nothing (the
mean, :mod:`signlang.models.combiners`) skips the folds: only the final fits run. All estimators take the same ``X`` (normalised landmarks
``(N, T, 75, 3)``), so folds are plain row selections.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from signlang.models.featurize import pooled_features
from signlang.models.combine import combined, place_columns, stack_input
from signlang.models.trees import XGBoostClassifier, encode_labels


ENSEMBLE = "ensemble"
"""The stacked ensemble's name: in reports beside its base models' names, and ``--model ensemble``."""


def align_proba(proba: np.ndarray, est_classes: np.ndarray, classes: np.ndarray, name: str) -> np.ndarray:
    """Reorder/extend ``proba (N, c)`` over ``est_classes`` to ``(N, C)`` over ``classes`` (absent -> 0)."""
    proba = np.asarray(proba, dtype=np.float32)
    est_classes = np.asarray(est_classes)
    if proba.ndim != 2 or proba.shape[1] != len(est_classes):
        raise ValueError(f"{name}: predict_proba gave shape {proba.shape} for {len(est_classes)} classes")
    if len(est_classes) == len(classes) and np.array_equal(est_classes, classes):
        return proba
    return place_columns(proba, encode_labels(est_classes, classes, f"{name}: classes_"), len(classes))


def _with_classes(est: Any, classes: np.ndarray) -> Any:
    """Fix the vocabulary of an estimator that accepts a ``classes`` parameter."""
    if "classes" in est.get_params(deep=False):
        est.set_params(classes=classes)
    return est


class StackingEnsemble(BaseEstimator, ClassifierMixin):
    """OOF stacking of ``base_estimators`` under an XGBoost ``meta_estimator``.

    ``passthrough_pooled`` appends the pooled landmark features (``feature_blocks``) to the
    meta-learner's input. Fitted attributes: ``classes_``, ``estimators_`` (name, base fitted on
    all X), ``meta_``, ``oof_proba_`` ``(N, n_bases * C)``, ``folds_`` ``(N,)``,
    ``meta_feature_names_`` (the meta-learner's inputs in order), ``temperature_`` (1.0 until
    :meth:`calibrate` fits one on held-out clips; applied to the combiner's output), ``open_set_``
    (the bundle's open-set rule as stored, :class:`signlang.models.openset.OpenSetRule`; None = none).
    """

    def __init__(
        self,
        base_estimators: list[tuple[str, Any]],
        meta_estimator: Any = None,
        n_folds: int = 5,
        passthrough_pooled: bool = False,
        feature_blocks: tuple[str, ...] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.base_estimators = base_estimators
        self.meta_estimator = meta_estimator
        self.n_folds = n_folds
        self.passthrough_pooled = passthrough_pooled
        self.feature_blocks = feature_blocks
        self.random_state = random_state

    # --- helpers -------------------------------------------------------------------------------
    def _check_bases(self) -> list[tuple[str, Any]]:
        bases = list(self.base_estimators)
        if not bases:
            raise ValueError("StackingEnsemble: base_estimators is empty")
        names = [n for n, _ in bases]
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"StackingEnsemble: base estimator names must be unique non-empty strings, got {names}")
        for n, est in bases:
            if not hasattr(est, "fit") or not hasattr(est, "predict_proba"):
                raise TypeError(f"StackingEnsemble: base estimator {n!r} needs fit and predict_proba")
        return bases

    def make_folds(self, y: np.ndarray) -> np.ndarray:
        """Stratified K-fold ids ``(N,)`` int64 in ``0..n_folds-1`` (shuffled with ``random_state``)."""
        if self.n_folds < 2:
            raise ValueError(f"StackingEnsemble: n_folds must be >= 2, got {self.n_folds}")
        folds = np.empty(len(y), dtype=np.int64)
        skf = StratifiedKFold(n_splits=self.n_folds, shuffle=True, random_state=self.random_state)
        for k, (_, test) in enumerate(skf.split(np.zeros(len(y)), y)):
            folds[test] = k
        return folds

    def _meta_input(self, probas: Sequence[np.ndarray], X: Any) -> np.ndarray:
        pooled = pooled_features(X, self.feature_blocks, name="StackingEnsemble: X") if self.passthrough_pooled else None
        return stack_input(probas, pooled)

    def _feature_names(self, X: Any) -> list[str]:
        names = [f"{n}:{c}" for n, _ in self.base_estimators for c in self.classes_.tolist()]
        if self.passthrough_pooled:
            width = pooled_features(np.asarray(X)[:1], self.feature_blocks).shape[1]
            names += [f"pooled:{i}" for i in range(width)]
        return names

    # --- fitting -------------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: Any,
        folds: np.ndarray | None = None,
        *,
        on_fit: Callable[[str], None] | None = None,
        fit_here: Callable[[Any], bool] | None = None,
    ) -> "StackingEnsemble":
        """OOF-fit the meta-learner on ``X`` (N, ...) and ``y`` (N,); ``folds`` (N,) ints or stratified K-fold.

        ``on_fit(description)`` is called before each of the ``(K + 1) * n_bases + 1`` fits
        (e.g. ``"fold 2/5: bilstm"``), so a caller can show progress. ``fit_here(base) -> bool``
        (default: always) lets a process of a distributed run skip the base models another process
        fits (the networks train together on every rank, the rest on rank 0): a skipped base keeps NaN
        out-of-fold columns and an unfitted final estimator, and with any base skipped the meta-learner
        is not fitted either (``partial_`` is True: only the fitted bases are usable).
        """
        report = on_fit or (lambda _desc: None)
        here = fit_here or (lambda _est: True)
        bases = self._check_bases()
        X = np.asarray(X)
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise ValueError(f"StackingEnsemble: y must have shape ({X.shape[0]},) to match X, got {y.shape}")
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"StackingEnsemble: need at least 2 classes, got {self.classes_.tolist()}")
        if folds is None:
            folds = self.make_folds(y)
        folds = np.asarray(folds)
        if folds.shape != y.shape:
            raise ValueError(f"StackingEnsemble: folds must have shape {y.shape}, got {folds.shape}")
        fold_ids = np.unique(folds)
        if len(fold_ids) < 2:
            raise ValueError(f"StackingEnsemble: folds must hold at least 2 distinct fold ids, got {fold_ids.tolist()}")
        meta = self.meta_estimator if self.meta_estimator is not None else XGBoostClassifier()
        needs_oof = bool(getattr(meta, "needs_oof", True))
        if self.passthrough_pooled and not isinstance(meta, XGBoostClassifier):
            raise ValueError(f"StackingEnsemble: passthrough_pooled needs the XGBoost combiner, not {type(meta).__name__}")
        n_classes = len(self.classes_)
        oof = np.full((len(y), len(bases) * n_classes), np.nan if needs_oof else 0.0, dtype=np.float32)
        seconds = {name: 0.0 for name, _ in bases}
        for i, k in enumerate(fold_ids if needs_oof else []):
            test = folds == k
            train = ~test
            for b, (name, base) in enumerate(bases):
                if not here(base):
                    continue
                report(f"fold {i + 1}/{len(fold_ids)}: {name}")
                t0 = time.perf_counter()
                est = _with_classes(clone(base), self.classes_).fit(X[train], y[train])
                seconds[name] += time.perf_counter() - t0
                proba = align_proba(est.predict_proba(X[test]), est.classes_, self.classes_, f"base {name!r} (fold {k})")
                oof[test, b * n_classes:(b + 1) * n_classes] = proba
        self.oof_proba_ = oof if needs_oof else None
        self.oof_y_ = y.copy()
        self.folds_ = folds.copy()
        self.partial_ = not all(here(base) for _, base in bases)
        if not self.partial_:
            report("meta-learner")
            t0 = time.perf_counter()
            self.meta_ = _with_classes(clone(meta), self.classes_).fit(self._meta_input([oof], X), y)
            seconds["meta"] = time.perf_counter() - t0
        self.estimators_ = []
        for name, base in bases:
            if not here(base):
                self.estimators_.append((name, _with_classes(clone(base), self.classes_)))
                continue
            report(f"all data: {name}")
            t0 = time.perf_counter()
            self.estimators_.append((name, _with_classes(clone(base), self.classes_).fit(X, y)))
            seconds[name] += time.perf_counter() - t0
        self.fit_seconds_ = seconds  # wall seconds per base model (all folds + the final fit) and meta
        self.meta_feature_names_ = self._feature_names(X)
        self.temperature_ = 1.0
        self.open_set_ = None
        return self

    def calibrate(self, X: Any, y: Any) -> dict[str, Any]:
        """Fit the temperature on held-out clips ``X`` (N, ...) / labels ``y`` (N,) that no model trained on;
        returns what it did (clips, temperature, NLL and ECE before and after)."""
        from signlang.models.calibration import TemperatureScaling

        check_is_fitted(self, "meta_")
        cols = encode_labels(y, self.classes_, "StackingEnsemble.calibrate: y")
        self.temperature_ = 1.0
        scaler = TemperatureScaling().fit(self.predict_proba(X), cols)
        self.temperature_ = scaler.temperature_
        return scaler.fit_report_

    def with_combiner(self, meta: Any) -> "StackingEnsemble":
        """A copy sharing the fitted base models, with ``meta`` (unfitted) fitted on the same OOF probabilities.

        Lets several combiners be compared on one set of base fits (the benchmark does this on a
        validation part). Needs ``oof_proba_`` unless ``meta`` needs no OOF (the mean).
        """
        check_is_fitted(self, "estimators_")
        needs_oof = bool(getattr(meta, "needs_oof", True))
        oof = getattr(self, "oof_proba_", None)
        if needs_oof and oof is None:
            raise ValueError("StackingEnsemble.with_combiner: this ensemble kept no out-of-fold probabilities "
                             "(it was fitted with a combiner that needs none); refit it with the XGBoost or logistic combiner")
        Z = oof if needs_oof else np.zeros((len(self.oof_y_), len(self.estimators_) * len(self.classes_)), np.float32)
        other = StackingEnsemble.from_fitted(
            self.estimators_, _with_classes(clone(meta), self.classes_).fit(Z, self.oof_y_), self.classes_,
            passthrough_pooled=False, feature_blocks=self.feature_blocks,
            meta_feature_names=[f"{n}:{c}" for n, _ in self.estimators_ for c in self.classes_.tolist()], n_folds=self.n_folds)
        other.oof_proba_, other.oof_y_, other.folds_ = oof, self.oof_y_, getattr(self, "folds_", None)
        return other  # a new combiner: its temperature starts at 1.0

    @classmethod
    def from_fitted(
        cls,
        estimators: list[tuple[str, Any]],
        meta: Any,
        classes: Sequence[Any] | np.ndarray,
        *,
        passthrough_pooled: bool = False,
        feature_blocks: tuple[str, ...] | None = None,
        meta_feature_names: list[str] | None = None,
        n_folds: int = 5,
        temperature: float = 1.0,
        open_set: dict[str, Any] | None = None,
    ) -> "StackingEnsemble":
        """Assemble an ensemble from already fitted bases and meta-learner (e.g. from a bundle)."""
        ens = cls(base_estimators=list(estimators), meta_estimator=meta, n_folds=n_folds,
                  passthrough_pooled=passthrough_pooled, feature_blocks=feature_blocks)
        ens.estimators_ = list(estimators)
        ens.meta_ = meta
        ens.classes_ = np.asarray(classes)
        ens.meta_feature_names_ = list(meta_feature_names) if meta_feature_names is not None else None
        ens.temperature_ = float(temperature)
        ens.open_set_ = None if open_set is None else dict(open_set)
        return ens

    # --- prediction ----------------------------------------------------------------------------
    def predict_proba_by_model(self, X: Any) -> dict[str, np.ndarray]:
        """Each fitted base estimator's probabilities ``(N, C)`` over ``classes_``, by name."""
        check_is_fitted(self, "estimators_")
        return {
            name: align_proba(est.predict_proba(X), est.classes_, self.classes_, f"base {name!r}")
            for name, est in self.estimators_
        }

    def predict_proba(self, X: Any) -> np.ndarray:
        """The meta-learner's probabilities ``(N, C)`` over ``classes_``, rescaled by ``temperature_`` (the
        combining step is :mod:`signlang.models.combine`'s, the one the predictor's plan runs)."""
        check_is_fitted(self, "meta_")
        by_model = self.predict_proba_by_model(X)
        meta = np.asarray(self.meta_.predict_proba(self._meta_input(list(by_model.values()), X)), dtype=np.float32)
        cols = encode_labels(np.asarray(self.meta_.classes_), self.classes_, "meta-learner: classes_")
        return combined(meta, cols, len(self.classes_), float(getattr(self, "temperature_", 1.0)))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class per clip ``(N,)``."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

"""XGBoost as sklearn-style estimators, saved and loaded through XGBoost's JSON model format.

:class:`XGBoostClassifier` fits plain tabular ``X (N, D)`` (NaN = missing, handled natively by
XGBoost) with the native ``xgboost.train`` API and ``multi:softprob``. Its probability columns are
always over ``classes_`` in a fixed order, even when some classes are absent from a training fold
(pass ``classes`` to fix the vocabulary). :class:`PooledXGBoostClassifier` takes normalised
landmarks ``(N, T, 75, 3)`` and fits on the pooled feature table of
:mod:`signlang.features.engineering`.

No pickle: :meth:`XGBoostClassifier.save_json` writes the booster's JSON with the estimator's
parameters and classes stored as booster attributes, so :meth:`~XGBoostClassifier.load_json`
rebuilds the estimator from that one file.

This file declares two model kinds: ``xgboost`` (tabular input: the stacking meta-learner, on the
combiner's input) and ``pooled_xgboost`` (a base model on pooled features); both are one XGBoost
JSON file in a bundle and ``onnxmltools.convert_xgboost`` in an ONNX export.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from signlang._io import atomic_write
from signlang.models.featurize import pooled_features
from signlang.models.registry import POOLED, PROBABILITIES, ModelKind, register_kind, register_model

XGB_OPSET = 15
"""The ONNX opset of converted boosters (onnxmltools' newest for XGBoost)."""

_ATTR_PARAMS = "signlang_params"
_ATTR_CLASSES = "signlang_classes"
_ATTR_CLASS = "signlang_estimator"
_ATTR_BEST = "signlang_best_iteration"


def encode_labels(y: np.ndarray, classes: np.ndarray, name: str = "y") -> np.ndarray:
    """Indices of ``y`` in ``classes`` ``(N,) -> (N,)`` int64; ``ValueError`` naming unknown labels."""
    y = np.asarray(y)
    idx = np.searchsorted(classes, y)
    idx = np.clip(idx, 0, len(classes) - 1)
    bad = classes[idx] != y
    if np.any(bad):
        raise ValueError(f"{name}: labels {np.unique(y[bad])[:10].tolist()} are not among the classes {classes[:10].tolist()}")
    return idx.astype(np.int64)


def resolve_classes(classes: Any, y: np.ndarray | None, name: str) -> np.ndarray:
    """The sorted class vocabulary: the ``classes`` parameter if given, else ``np.unique(y)``."""
    if classes is not None:
        arr = np.asarray(classes)
        if arr.ndim != 1 or len(arr) == 0:
            raise ValueError(f"{name}: classes must be a non-empty 1-D sequence, got shape {arr.shape}")
        if len(np.unique(arr)) != len(arr) or np.any(arr[1:] < arr[:-1]):
            raise ValueError(f"{name}: classes must be sorted and unique, got {arr[:10].tolist()}")
        return arr
    if y is None:
        raise ValueError(f"{name}: no classes given and no labels to infer them from")
    return np.unique(np.asarray(y))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


class XGBoostClassifier(BaseEstimator, ClassifierMixin):
    """Gradient-boosted trees for tabular ``X (N, D)`` with probabilities over a fixed class list.

    Defaults follow the seed project (max_depth 7, learning_rate 0.01, subsample 0.8,
    ``multi:softprob``). ``early_stopping_rounds`` applies when ``fit`` gets an ``eval_set``.
    ``feature_blocks`` is for subclasses that compute their own table from ``X`` (see
    :class:`PooledXGBoostClassifier`, which shares these parameters); a tabular ``X`` ignores it.
    """

    def __init__(
        self,
        n_estimators: int = 500,
        max_depth: int = 7,
        learning_rate: float = 0.01,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        objective: str = "multi:softprob",
        tree_method: str = "hist",
        max_bin: int = 256,
        n_jobs: int | None = None,
        seed: int = 0,
        classes: Any = None,
        early_stopping_rounds: int | None = None,
        feature_blocks: tuple[str, ...] | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.objective = objective
        self.tree_method = tree_method
        self.max_bin = max_bin
        self.n_jobs = n_jobs
        self.seed = seed
        self.classes = classes
        self.early_stopping_rounds = early_stopping_rounds
        self.feature_blocks = feature_blocks

    def check_params(self) -> None:
        """``ValueError`` naming the first hyper-parameter out of range (configs call it early)."""
        checks = [
            ("max_depth", self.max_depth > 0, "> 0"), ("learning_rate", self.learning_rate > 0, "> 0"),
            ("subsample", 0.0 < self.subsample <= 1.0, "in (0, 1]"),
            ("colsample_bytree", 0.0 < self.colsample_bytree <= 1.0, "in (0, 1]"),
            ("n_estimators", self.n_estimators > 0, "> 0"), ("max_bin", self.max_bin >= 2, ">= 2"),
            ("early_stopping_rounds", self.early_stopping_rounds is None or self.early_stopping_rounds > 0, "> 0 or null"),
            ("objective", self.objective == "multi:softprob", "'multi:softprob'"),
        ]
        for key, ok, what in checks:
            if not ok:
                raise ValueError(f"{key} must be {what}, got {getattr(self, key)!r}")

    # --- feature hook: subclasses turn their X into the tabular matrix -------------------------
    def _tabular(self, X: Any) -> np.ndarray:
        """``X -> (N, D)`` float32; here ``X`` already is tabular."""
        arr = np.asarray(X, dtype=np.float32)
        if arr.ndim != 2:
            raise ValueError(f"{type(self).__name__}: X must be 2-D (N, D), got shape {arr.shape}")
        if np.isinf(arr).any():
            raise ValueError(f"{type(self).__name__}: X contains infinite values (NaN is allowed as missing)")
        return arr

    def _booster_params(self, n_classes: int) -> dict[str, Any]:
        if self.objective not in ("multi:softprob",):
            raise ValueError(f"{type(self).__name__}: objective must be 'multi:softprob', got {self.objective!r}")
        params: dict[str, Any] = {
            "objective": self.objective,
            "num_class": n_classes,
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda,
            "tree_method": self.tree_method,
            "max_bin": self.max_bin,
            "seed": self.seed,
            "eval_metric": "mlogloss",
            # A fixed, uniform starting margin: with base-score estimation a class absent from a
            # training fold would get a degenerate intercept.
            "base_score": 1.0 / n_classes,
        }
        if self.n_jobs is not None:
            params["nthread"] = self.n_jobs
        return params

    def fit(self, X: Any, y: Any, *, eval_set: tuple[Any, Any] | None = None, sample_weight: Any = None) -> "XGBoostClassifier":
        """Fit on ``X`` and labels ``y``; ``eval_set=(X_val, y_val)`` enables early stopping."""
        name = type(self).__name__
        Z = self._tabular(X)
        y = np.asarray(y)
        if y.shape != (Z.shape[0],):
            raise ValueError(f"{name}: y must have shape ({Z.shape[0]},) to match X, got {y.shape}")
        self.classes_ = resolve_classes(self.classes, y, name)
        if len(self.classes_) < 2:
            raise ValueError(f"{name}: need at least 2 classes, got {self.classes_.tolist()}")
        labels = encode_labels(y, self.classes_, f"{name}: y")
        dtrain = xgb.DMatrix(Z, label=labels, weight=None if sample_weight is None else np.asarray(sample_weight))
        evals = [(dtrain, "train")]
        if eval_set is not None:
            Xv, yv = eval_set
            evals.append((xgb.DMatrix(self._tabular(Xv), label=encode_labels(np.asarray(yv), self.classes_, f"{name}: eval y")), "valid"))
        use_es = eval_set is not None and self.early_stopping_rounds is not None
        self.booster_ = xgb.train(
            self._booster_params(len(self.classes_)), dtrain, num_boost_round=int(self.n_estimators), evals=evals,
            early_stopping_rounds=self.early_stopping_rounds if use_es else None, verbose_eval=False,
        )
        self.best_iteration_ = int(self.booster_.best_iteration) if use_es else int(self.n_estimators) - 1
        self.n_features_in_ = int(Z.shape[1])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(N, C)`` float32 over ``classes_`` (each row sums to 1)."""
        check_is_fitted(self, "booster_")
        Z = self._tabular(X)
        if Z.shape[1] != self.n_features_in_:
            raise ValueError(f"{type(self).__name__}: X has {Z.shape[1]} features, the model was fitted on {self.n_features_in_}")
        proba = self.booster_.predict(xgb.DMatrix(Z), iteration_range=(0, self.best_iteration_ + 1))
        return np.asarray(proba, dtype=np.float32).reshape(Z.shape[0], len(self.classes_))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class per row ``(N,)``."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    # --- persistence: XGBoost JSON, no pickle --------------------------------------------------
    def to_json_bytes(self) -> bytes:
        """The fitted booster as XGBoost JSON with params, classes and best iteration as attributes."""
        check_is_fitted(self, "booster_")
        params = {k: _jsonable(v) for k, v in self.get_params(deep=False).items()}
        self.booster_.set_attr(**{
            _ATTR_PARAMS: json.dumps(params),
            _ATTR_CLASSES: json.dumps(_jsonable(self.classes_)),
            _ATTR_CLASS: type(self).__name__,
            _ATTR_BEST: str(self.best_iteration_),
        })
        return bytes(self.booster_.save_raw(raw_format="json"))

    def save_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the model to ``path`` (XGBoost JSON), atomically."""
        path = Path(path)
        with atomic_write(path, "wb") as fh:
            fh.write(self.to_json_bytes())
        return path

    @classmethod
    def from_json_bytes(cls, raw: bytes, *, source: str = "<bytes>") -> "XGBoostClassifier":
        """Rebuild an estimator from :meth:`to_json_bytes` output; ``source`` names it in errors."""
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(raw))
        except xgb.core.XGBoostError as exc:
            raise ValueError(f"{source}: not a valid XGBoost JSON model ({str(exc).splitlines()[0]})") from None
        attrs = booster.attributes()
        missing = [a for a in (_ATTR_PARAMS, _ATTR_CLASSES, _ATTR_BEST) if a not in attrs]
        if missing:
            raise ValueError(f"{source}: XGBoost model lacks the signlang attributes {missing}; was it written by save_json?")
        params = json.loads(attrs[_ATTR_PARAMS])
        stored = attrs.get(_ATTR_CLASS, cls.__name__)
        if stored != cls.__name__:
            raise ValueError(f"{source}: holds a {stored}, not a {cls.__name__}")
        valid = cls._get_param_names()
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ValueError(f"{source}: unknown {cls.__name__} parameters {unknown}")
        if isinstance(params.get("feature_blocks"), list):
            params["feature_blocks"] = tuple(params["feature_blocks"])
        est = cls(**params)
        est.booster_ = booster
        est.classes_ = np.asarray(json.loads(attrs[_ATTR_CLASSES]))
        est.best_iteration_ = int(attrs[_ATTR_BEST])
        est.n_features_in_ = int(booster.num_features())
        return est

    @classmethod
    def load_json(cls, path: str | os.PathLike[str]) -> "XGBoostClassifier":
        """Load a model written by :meth:`save_json`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"XGBoost model file not found: {path}")
        return cls.from_json_bytes(path.read_bytes(), source=str(path))


@register_model("xgboost", supplied=("seed", "classes", "feature_blocks", "n_jobs"))
class PooledXGBoostClassifier(XGBoostClassifier):
    """XGBoost on pooled landmark features: ``X (N, T, 75, 3)`` -> ``pool_features`` ``(N, 6F)``.

    ``feature_blocks`` selects the feature blocks of :func:`signlang.features.engineering.frame_features`
    (None = all).
    """

    def _tabular(self, X: Any) -> np.ndarray:
        return pooled_features(X, self.feature_blocks, name=f"{type(self).__name__}: X")


# --- the "xgboost" and "pooled_xgboost" model kinds ---------------------------------------------
def booster_proba(est: XGBoostClassifier, table: np.ndarray) -> np.ndarray:
    """``(N, D)`` float32 table -> ``(N, len(est.classes_))`` float32 probabilities (no feature recomputation)."""
    proba = est.booster_.predict(xgb.DMatrix(table), iteration_range=(0, est.best_iteration_ + 1))
    return np.asarray(proba, dtype=np.float32).reshape(table.shape[0], len(est.classes_))


def xgboost_to_onnx(est: XGBoostClassifier, n_features: int) -> bytes:
    """Serialized ONNX of an :class:`XGBoostClassifier` (input ``input`` (N, D), output ``probabilities``)."""
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = est.booster_[: est.best_iteration_ + 1]
    onx = convert_xgboost(booster, initial_types=[("input", FloatTensorType([None, n_features]))], target_opset=XGB_OPSET)
    return onx.SerializeToString()


def _fit_with_eval_set(est: XGBoostClassifier, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> XGBoostClassifier:
    return est.fit(X, y, eval_set=None if X_val is None else (X_val, y_val))


def _xgb_kind(kind_name: str, cls: type[XGBoostClassifier], inputs: str, plan_name: str) -> ModelKind:
    def save(est: XGBoostClassifier, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        fname = f"{name}.json"
        entry = {"name": name, "kind": kind_name, "file": fname, "classes": _jsonable(np.asarray(est.classes_)),
                 "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in est.get_params(deep=False).items()
                            if k != "classes"}}
        return entry, {fname: est.to_json_bytes()}

    def load(entry: dict[str, Any], files: dict[str, bytes], where: str) -> XGBoostClassifier:
        return cls.from_json_bytes(files[entry["file"]], source=f"{where}/{entry['file']}")

    return ModelKind(kind_name, cls, inputs, save=save, load=load, run=booster_proba, to_onnx=xgboost_to_onnx,
                     fit=_fit_with_eval_set, plan_name=plan_name)


register_kind(_xgb_kind("xgboost", XGBoostClassifier, PROBABILITIES, "xgboost"))
register_kind(_xgb_kind("pooled_xgboost", PooledXGBoostClassifier, POOLED, "xgboost_pooled"))

"""Linear combiners of base models' probabilities: the plain mean and a logistic regression.

A stacking ensemble turns its base models' probabilities ``Z (N, n_bases * C)`` (base after base,
each over the same C classes) into one answer. Besides the XGBoost meta-learner
(:class:`signlang.models.trees.XGBoostClassifier`), two linear combiners share one form::

    probabilities = softmax(Z @ weights + bias)     (logistic)
    probabilities = Z @ weights                      (mean: weights = identity / n_bases)

so the bundle stores two small arrays as JSON (no pickle), the ONNX export is one MatMul (+ Add +
Softmax), and the explainer reads each base model's share off the weights. The :data:`COMBINERS`
registry holds the choices of the config key ``ensemble.combiner`` (name -> factory). This file
declares the ``linear_combiner`` model kind (bundle JSON, runner, ONNX graph :func:`linear_to_onnx`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from signlang._registry import Registry
from signlang.models.combine import softmax
from signlang.models.registry import PROBABILITIES, ModelKind, register_kind
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

LINEAR_METHODS: tuple[str, ...] = ("mean", "logistic")


class LinearCombiner(BaseEstimator, ClassifierMixin):
    """``method="mean"``: the average of the base models' probabilities (nothing learned);
    ``method="logistic"``: a multinomial logistic regression (L2, strength ``C``) on them.

    ``fit(Z (N, n_in), y (N,))`` with ``n_in`` a multiple of the number of classes. Fitted:
    ``classes_``, ``weights_ (n_in, C)``, ``bias_ (C,)``, ``softmax_`` (bool). ``needs_oof`` tells
    the stacking ensemble whether out-of-fold probabilities are needed to fit it (the mean needs none).
    """

    def __init__(self, method: str = "mean", C: float = 1.0, max_iter: int = 2000,
                 classes: Sequence[Any] | np.ndarray | None = None, seed: int = 0) -> None:
        self.method = method
        self.C = C
        self.max_iter = max_iter
        self.classes = classes
        self.seed = seed

    @property
    def needs_oof(self) -> bool:
        return self.method != "mean"

    def fit(self, Z: Any, y: Any) -> "LinearCombiner":
        if self.method not in LINEAR_METHODS:
            raise ValueError(f"LinearCombiner: method must be one of {LINEAR_METHODS}, got {self.method!r}")
        Z = np.asarray(Z, dtype=np.float64)
        y = np.asarray(y)
        classes = np.unique(y) if self.classes is None else np.asarray(self.classes)
        n_classes = len(classes)
        if Z.ndim != 2 or Z.shape[1] % n_classes:
            raise ValueError(f"LinearCombiner: input must be (N, n_bases * {n_classes}) probabilities, got {Z.shape}")
        self.classes_ = classes
        if self.method == "mean":
            n_bases = Z.shape[1] // n_classes
            self.weights_ = np.tile(np.eye(n_classes), (n_bases, 1)) / n_bases
            self.bias_ = np.zeros(n_classes)
            self.softmax_ = False
            return self
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed).fit(Z, y)
        cols = np.searchsorted(classes, lr.classes_)
        coef, intercept = lr.coef_, lr.intercept_
        if len(lr.classes_) == 2:  # sklearn keeps one row for two classes: softmax([-z/2, z/2]) = sigmoid(z)
            coef = np.stack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        self.weights_ = np.zeros((Z.shape[1], n_classes))
        self.bias_ = np.full(n_classes, -30.0)  # a class absent from y is never predicted
        self.weights_[:, cols] = coef.T
        self.bias_[cols] = intercept
        self.softmax_ = True
        return self

    def predict_proba(self, Z: Any) -> np.ndarray:
        """``(N, n_in) -> (N, C)`` float32."""
        check_is_fitted(self, "weights_")
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] != self.weights_.shape[0]:
            raise ValueError(f"LinearCombiner: expected input (N, {self.weights_.shape[0]}), got {Z.shape}")
        out = Z @ self.weights_ + self.bias_
        return softmax(out) if self.softmax_ else out.astype(np.float32)

    def predict(self, Z: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(Z), axis=1)]

    def base_shares(self, feature_names: Sequence[str], names: Sequence[str]) -> dict[str, float]:
        """Each base model's share of the absolute weight on its ``"name:class"`` columns (sums to 1)."""
        check_is_fitted(self, "weights_")
        totals = dict.fromkeys(names, 0.0)
        for row, col in zip(np.abs(self.weights_).sum(axis=1), feature_names):
            base = str(col).split(":", 1)[0]
            if base in totals:
                totals[base] += float(row)
        total = sum(totals.values())
        return {n: v / total for n, v in totals.items()} if total > 0 else {n: 1.0 / len(names) for n in names}

    # --- serialisation (JSON, no pickle) -----------------------------------------------------------
    def to_json_bytes(self) -> bytes:
        check_is_fitted(self, "weights_")
        classes = [c.item() if isinstance(c, np.generic) else c for c in np.asarray(self.classes_).tolist()]
        return json.dumps({
            "method": self.method, "C": self.C, "classes": classes, "softmax": bool(self.softmax_),
            "weights": np.asarray(self.weights_).tolist(), "bias": np.asarray(self.bias_).tolist(),
        }).encode("utf-8")

    @classmethod
    def from_json_bytes(cls, data: bytes, *, source: str = "combiner") -> "LinearCombiner":
        try:
            d = json.loads(data.decode("utf-8"))
            est = cls(method=str(d["method"]), C=float(d["C"]), classes=np.asarray(d["classes"]))
            est.classes_ = np.asarray(d["classes"])
            est.weights_ = np.asarray(d["weights"], dtype=np.float64)
            est.bias_ = np.asarray(d["bias"], dtype=np.float64)
            est.softmax_ = bool(d["softmax"])
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{source}: not a valid linear combiner ({type(exc).__name__}: {exc})") from None
        if est.weights_.ndim != 2 or est.weights_.shape[1] != len(est.classes_) or est.bias_.shape != (len(est.classes_),):
            raise ValueError(f"{source}: weights {est.weights_.shape} / bias {est.bias_.shape} do not match {len(est.classes_)} classes")
        return est


COMBINERS: Registry[Callable[[np.ndarray, int], Any]] = Registry("combiner")
"""``ensemble.combiner`` name -> ``factory(classes (C,), seed) -> unfitted combiner``; the config's
validation, the CLI and ``signlang benchmark accuracy --parts combiners`` read it."""


@COMBINERS.register("xgboost")
def xgboost_meta_learner(classes: np.ndarray, seed: int) -> Any:
    """The XGBoost meta-learner (shallow trees on the out-of-fold probabilities)."""
    from signlang.models.trees import XGBoostClassifier

    return XGBoostClassifier(n_estimators=150, max_depth=3, learning_rate=0.1, subsample=0.8, colsample_bytree=0.8,
                             seed=seed, classes=classes)


@COMBINERS.register("logistic")
def logistic_combiner(classes: np.ndarray, seed: int) -> LinearCombiner:
    return LinearCombiner(method="logistic", classes=classes, seed=seed)


@COMBINERS.register("mean")
def mean_combiner(classes: np.ndarray, seed: int) -> LinearCombiner:
    return LinearCombiner(method="mean", classes=classes, seed=seed)


def make_combiner(name: str, classes: Sequence[Any] | np.ndarray, seed: int = 0) -> Any:
    """An unfitted combiner by its ``ensemble.combiner`` name (an ``UnknownNameError``, a
    ``ValueError`` listing the names, otherwise)."""
    return COMBINERS.get(name)(np.asarray(classes), seed)


# --- the "linear_combiner" model kind -------------------------------------------------------------
def linear_to_onnx(est: LinearCombiner, n_features: int | None = None) -> bytes:
    """Serialized ONNX of a :class:`LinearCombiner`: ``[Softmax](input (N, n_in) @ W + b)`` -> ``probabilities``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.asarray(est.weights_, dtype=np.float32), "weights")
    bias = numpy_helper.from_array(np.asarray(est.bias_, dtype=np.float32), "bias")
    nodes = [helper.make_node("MatMul", ["input", "weights"], ["scores"]),
             helper.make_node("Add", ["scores", "bias"], ["logits" if est.softmax_ else "probabilities"])]
    if est.softmax_:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    n_in, n_out = est.weights_.shape
    graph = helper.make_graph(
        nodes, f"{est.method}_combiner",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_in])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_out])],
        initializer=[weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="signlang")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _save_linear(est: LinearCombiner, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    fname = f"{name}.json"
    classes = [c.item() if isinstance(c, np.generic) else c for c in np.asarray(est.classes_).tolist()]
    return {"name": name, "kind": "linear_combiner", "method": est.method, "file": fname, "classes": classes}, {fname: est.to_json_bytes()}


def _load_linear(entry: dict[str, Any], files: dict[str, bytes], where: str) -> LinearCombiner:
    return LinearCombiner.from_json_bytes(files[entry["file"]], source=f"{where}/{entry['file']}")


def _run_linear(est: LinearCombiner, Z: np.ndarray) -> np.ndarray:
    return np.asarray(est.predict_proba(Z), dtype=np.float32)


register_kind(ModelKind("linear_combiner", LinearCombiner, PROBABILITIES, save=_save_linear, load=_load_linear,
                        run=_run_linear, to_onnx=linear_to_onnx, plan_name="linear"))

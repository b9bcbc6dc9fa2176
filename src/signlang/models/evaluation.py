"""Classification metrics shared by training, evaluation and benchmarks (numpy and scikit-learn; no I/O).

Everything starts from class probabilities ``proba (N, C)`` (rows sum to 1, columns in the
bundle's class order) and integer labels ``y (N,)``, so every model — base networks, XGBoost, the
stacking ensemble and the benchmark baselines — is scored by the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _check(y_true: np.ndarray, proba: np.ndarray, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"proba: expected shape (N, C), got {p.shape}")
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"proba has {p.shape[0]} rows but y_true has {y.shape[0]} labels")
    if n_classes is not None and p.shape[1] != n_classes:
        raise ValueError(f"proba has {p.shape[1]} columns but there are {n_classes} classes")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"y_true: labels must lie in 0..{p.shape[1] - 1}, got {y.min()}..{y.max()}")
    if not np.all(np.isfinite(p)):
        raise ValueError("proba: contains NaN or infinite values")
    return y, p


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C, C)`` int64 counts: rows = true class, columns = predicted class (scikit-learn's)."""
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"y_true {y.shape} and y_pred {p.shape} differ in length")
    return sk_confusion_matrix(y, p, labels=np.arange(n_classes)).astype(np.int64)


def per_class_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support ``(C,)`` per class (scikit-learn's, 0 where undefined)."""
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(n_classes), zero_division=0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """``sklearn.metrics.f1_score(average="macro")``: the mean F1 over the classes in ``y_true`` or
    ``y_pred`` (a class predicted but never true counts, with F1 0); NaN for no clips."""
    from sklearn.metrics import f1_score

    if np.asarray(y_true).size == 0:
        return float("nan")
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def top_k_accuracy(y_true: np.ndarray, proba: np.ndarray, k: int = 5) -> float:
    """Fraction of rows whose true class is among the ``k`` most probable ones."""
    y, p = _check(y_true, proba)
    if y.size == 0:
        return float("nan")
    k = min(k, p.shape[1])
    topk = np.argpartition(-p, kth=k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(topk == y[:, None], axis=1)))


def classification_report(
    y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str], *, top_k: int = 5
) -> dict[str, Any]:
    """Accuracy, macro-F1 (scikit-learn's definition, :func:`macro_f1`), top-k accuracy, per-class
    scores, the expected calibration error of the top-1 probability (15 bins) and the confusion
    matrix, as a JSON-ready dict."""
    from signlang.models.calibration import expected_calibration_error

    y, p = _check(y_true, proba, len(classes))
    pred = p.argmax(axis=1)
    cm = confusion_matrix(y, pred, len(classes))
    scores = per_class_scores(y, pred, len(classes))
    return {
        "n": int(y.size),
        "accuracy": float(np.mean(pred == y)) if y.size else float("nan"),
        "macro_f1": macro_f1(y, pred),
        f"top{top_k}_accuracy": top_k_accuracy(y, p, top_k),
        "ece": expected_calibration_error(y, p) if y.size else float("nan"),
        "per_class": {
            str(c): {
                "precision": float(scores["precision"][i]),
                "recall": float(scores["recall"][i]),
                "f1": float(scores["f1"][i]),
                "support": int(scores["support"][i]),
            }
            for i, c in enumerate(classes)
        },
        "confusion_matrix": cm.tolist(),
    }


SELECTIVE_THRESHOLDS: tuple[float, ...] = (0.5, 0.7, 0.9)
"""Top-1 probabilities at which answers are reported as confident (0.5 is a bundle's default ``min_confidence``)."""


def selective_accuracy(y_true: np.ndarray, proba: np.ndarray,
                       thresholds: Sequence[float] = SELECTIVE_THRESHOLDS) -> list[dict[str, float]]:
    """What a low-confidence flag buys: per threshold ``t``, the share of clips answered with top-1
    probability >= t (``coverage``), the accuracy on those (``accuracy_answered``) and the share of
    the wrong answers that fall below t, i.e. that the model flags as unsure (``wrong_flagged``)."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(proba)
    conf, right = p.max(axis=1), p.argmax(axis=1) == y
    rows = []
    for t in thresholds:
        answered = conf >= t
        rows.append({"threshold": float(t), "coverage": float(answered.mean()) if y.size else float("nan"),
                     "accuracy_answered": float(right[answered].mean()) if answered.any() else float("nan"),
                     "wrong_flagged": float((~answered[~right]).mean()) if (~right).any() else float("nan")})
    return rows


def labels_accuracy_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy and macro-F1 from hard predictions (for baselines that give no probabilities)."""
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if y.shape != pred.shape:
        raise ValueError(f"y_true {y.shape} and y_pred {pred.shape} differ in length")
    return {"accuracy": float(np.mean(pred == y)) if y.size else float("nan"), "macro_f1": macro_f1(y, pred)}

"""PyTorch-eager inference backend: the fitted :class:`~signlang.models.ensemble.StackingEnsemble`
run on precomputed features (networks in torch, trees in native XGBoost).

:func:`plan_for` describes an ensemble as an :class:`~signlang.inference.plan.EnsemblePlan`
(base-model kinds come from the :data:`PLAN_KINDS` registry, looked up along an estimator's
class hierarchy, so a new estimator type is one registration, not another branch).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xgboost as xgb

from signlang._registry import Registry
from signlang.inference.plan import (
    BLOCKS_ALL, BasePlan, EnsemblePlan, Features, blocks_key, final_proba, meta_input, place_columns, softmax,
)
from signlang.models.base import NeuralSequenceModel
from signlang.models.trees import PooledXGBoostClassifier, XGBoostClassifier, encode_labels

@dataclass(frozen=True)
class PlanKind:
    """How one kind of base model runs: ``estimator`` (the class, and its subclasses, that runs as
    this kind) and ``run(est, feats, base) -> probs (N, len(est.classes_))``."""

    estimator: type
    run: Callable[[Any, Features, BasePlan], np.ndarray]


PLAN_KINDS: Registry[PlanKind] = Registry("plan kind")
"""Plan kind -> :class:`PlanKind` (filled below, after the runners are defined)."""


def kind_of(est: Any, name: str) -> str:
    by_class = {k.estimator: kind for kind, k in PLAN_KINDS.items()}
    for cls in type(est).__mro__:
        if cls in by_class:
            return by_class[cls]
    raise ValueError(f"base model {name!r}: estimator type {type(est).__name__} has no inference kind; known: {sorted(k.estimator.__name__ for k in PLAN_KINDS.values())}")


def plan_for(model: Any, class_names: Sequence[str]) -> EnsemblePlan:
    """The :class:`EnsemblePlan` of a fitted stacking ensemble or single estimator.

    ``model.classes_`` are integer indices into ``class_names`` (the bundle's convention).
    """
    classes = np.asarray(model.classes_)
    if not np.issubdtype(classes.dtype, np.integer) or classes.min() < 0 or classes.max() >= len(class_names):
        raise ValueError(f"the model's classes_ must be integer indices into the {len(class_names)} class names, got {classes[:10].tolist()}")
    stacking = hasattr(model, "estimators_") and hasattr(model, "meta_")
    members = list(model.estimators_) if stacking else [(str(getattr(model, "arch", None) or type(model).__name__.lower()), model)]
    bases = []
    for name, est in members:
        cols = encode_labels(np.asarray(est.classes_), classes, f"base {name!r}: classes_")
        bases.append(BasePlan(name=name, kind=kind_of(est, name), blocks=blocks_key(est.feature_blocks), columns=tuple(int(c) for c in cols)))
    meta_cols = encode_labels(np.asarray(model.meta_.classes_), classes, "meta-learner: classes_") if stacking else np.arange(len(classes))
    return EnsemblePlan(
        classes=tuple(str(c) for c in class_names),
        bases=tuple(bases),
        meta_columns=tuple(int(c) for c in meta_cols),
        n_ensemble=len(classes),
        output_columns=tuple(int(c) for c in classes),
        has_meta=stacking,
        passthrough_pooled=bool(getattr(model, "passthrough_pooled", False)) if stacking else False,
        passthrough_blocks=blocks_key(getattr(model, "feature_blocks", None)) if stacking else BLOCKS_ALL,
        temperature=float(getattr(model, "temperature_", 1.0)) if stacking else 1.0,
        open_set=getattr(model, "open_set_", None) if stacking else None,
    )


def _run_network(est: NeuralSequenceModel, feats: Features, base: BasePlan) -> np.ndarray:
    x, mask = feats.frame[base.blocks]
    module = est.module_.eval()
    with torch.inference_mode():
        logits = module(torch.from_numpy(x), torch.from_numpy(mask)).float().numpy()
    return softmax(logits)


def _xgb_proba(est: XGBoostClassifier, table: np.ndarray) -> np.ndarray:
    proba = est.booster_.predict(xgb.DMatrix(table), iteration_range=(0, est.best_iteration_ + 1))
    return np.asarray(proba, dtype=np.float32).reshape(table.shape[0], len(est.classes_))


def _run_pooled_xgb(est: PooledXGBoostClassifier, feats: Features, base: BasePlan) -> np.ndarray:
    return _xgb_proba(est, feats.pooled[base.blocks])


PLAN_KINDS.register("network", PlanKind(NeuralSequenceModel, _run_network))
PLAN_KINDS.register("xgboost_pooled", PlanKind(PooledXGBoostClassifier, _run_pooled_xgb))


class TorchBackend:
    """Runs a fitted model on :class:`Features`.

    ``run(feats) -> (probs (N, len(classes)), {base name: (N, n_ensemble)})``.
    """

    name = "torch"

    def __init__(self, model: Any, class_names: Sequence[str], plan: EnsemblePlan | None = None) -> None:
        self.model = model
        self.plan = plan or plan_for(model, class_names)
        self._estimators = dict(model.estimators_) if self.plan.has_meta else {self.plan.bases[0].name: model}

    def run(self, feats: Features) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        n = self.plan.n_ensemble
        by_model: dict[str, np.ndarray] = {}
        self.last_ms: dict[str, float] = {}
        """Milliseconds each base model took in the last :meth:`run` (``evaluate`` reports them)."""
        for b in self.plan.bases:
            t0 = time.perf_counter()
            by_model[b.name] = place_columns(PLAN_KINDS.get(b.kind).run(self._estimators[b.name], feats, b), b.columns, n)
            self.last_ms[b.name] = (time.perf_counter() - t0) * 1e3
        meta = None
        if self.plan.has_meta:
            z = meta_input(self.plan, by_model, feats)
            meta_ = self.model.meta_
            meta = _xgb_proba(meta_, z) if isinstance(meta_, XGBoostClassifier) else np.asarray(meta_.predict_proba(z), np.float32)
        return final_proba(self.plan, meta, by_model), by_model

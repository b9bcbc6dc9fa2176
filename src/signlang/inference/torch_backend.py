"""PyTorch-eager inference backend: the fitted :class:`~signlang.models.ensemble.StackingEnsemble`
run on precomputed features (each model by its kind's runner: networks in torch, trees in native XGBoost).

:func:`plan_for` describes an ensemble as an :class:`~signlang.inference.plan.EnsemblePlan`; every
base model and the meta-learner run through their model kind
(:data:`signlang.models.registry.MODEL_KINDS`, looked up along the estimator's class hierarchy), so
a new estimator type is one registration in its own file, not another branch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from signlang.inference.plan import (
    BLOCKS_ALL, BasePlan, EnsemblePlan, Features, base_inputs, blocks_key, run_plan,
)
from signlang.models.registry import POOLED, SEQUENCE, kind_for
from signlang.models.trees import encode_labels


def kind_of(est: Any, name: str) -> str:
    """The plan name of base model ``name``'s kind; ``ValueError`` unless it reads per-frame or pooled features."""
    try:
        kind = kind_for(est, f"base model {name!r}")
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    if kind.inputs not in (SEQUENCE, POOLED):
        raise ValueError(f"base model {name!r}: model kind {kind.name!r} reads {kind.inputs}, not landmark features; it cannot be a base model")
    return kind.plan_name


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
        kind = kind_of(est, name)
        bases.append(BasePlan(name=name, kind=kind, blocks=blocks_key(est.feature_blocks), columns=tuple(int(c) for c in cols),
                              inputs=kind_for(est).inputs))
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


class TorchBackend:
    """Runs a fitted model on :class:`Features`.

    ``run(feats) -> (probs (N, len(classes)), {base name: (N, n_ensemble)})``.
    """

    name = "torch"

    def __init__(self, model: Any, class_names: Sequence[str], plan: EnsemblePlan | None = None) -> None:
        self.model = model
        self.plan = plan or plan_for(model, class_names)
        self._estimators = dict(model.estimators_) if self.plan.has_meta else {self.plan.bases[0].name: model}

    def run_base(self, base: BasePlan, feats: Features) -> np.ndarray:
        """One base model's probabilities ``(N, len(est.classes_))`` over its own classes, by its kind's runner."""
        est = self._estimators[base.name]
        return np.asarray(kind_for(est, f"base model {base.name!r}").run(est, base_inputs(feats, base)), dtype=np.float32)

    def run(self, feats: Features) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(probs (N, len(classes)), {base name: (N, n_ensemble)})``; ``last_ms``: each base model's milliseconds."""
        meta_ = getattr(self.model, "meta_", None)
        run_meta = (lambda z: kind_for(meta_, "meta-learner").run(meta_, z)) if self.plan.has_meta else None
        probs, by_model, self.last_ms = run_plan(self.plan, feats, lambda b: self.run_base(b, feats), run_meta)
        return probs, by_model

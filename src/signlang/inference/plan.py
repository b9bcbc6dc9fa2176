"""The ensemble as a plain, JSON-able plan shared by every inference backend (numpy only, no torch).

A :class:`EnsemblePlan` says which base models there are, what kind each is (a model kind of
:data:`signlang.models.registry.MODEL_KINDS`, by its plan name) and which inputs it reads
(``sequence``: per-frame features + mask, ``pooled``: the pooled table), which feature blocks,
and how the meta-learner's input is assembled. Both backends (PyTorch eager and ONNX Runtime)
compute the features once per request with :func:`compute_features` and then run the same plan,
so their results can only differ by the models' arithmetic, never by the plumbing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from signlang.models.combine import combined, place_columns, softmax, stack_input  # noqa: F401 - numpy only (the ONNX path needs no sklearn)

BLOCKS_ALL = "*"  # key of the feature table with every block (feature_blocks=None)


def blocks_key(blocks: Sequence[str] | None) -> str:
    """A hashable, JSON-able key for a feature-block selection (``None`` = all blocks)."""
    return BLOCKS_ALL if blocks is None else ",".join(blocks)


def blocks_from_key(key: str) -> tuple[str, ...] | None:
    return None if key == BLOCKS_ALL else tuple(k for k in key.split(",") if k)


SEQUENCE, POOLED = "sequence", "pooled"  # the values of models.registry.KIND_INPUTS a base model reads (numpy only here)
_LEGACY_INPUTS = {"network": SEQUENCE, "xgboost_pooled": POOLED}  # exports written before BasePlan.inputs


@dataclass(frozen=True)
class BasePlan:
    """One base model: ``kind`` (a model kind's plan name), its ``inputs`` (``sequence`` | ``pooled``),
    its feature blocks and the columns of the ensemble's classes that its probability columns map to."""

    name: str
    kind: str
    blocks: str
    columns: tuple[int, ...]
    inputs: str = SEQUENCE

    def __post_init__(self) -> None:
        if self.inputs not in (SEQUENCE, POOLED):
            raise ValueError(f"base model {self.name!r}: inputs must be {SEQUENCE!r} or {POOLED!r}, got {self.inputs!r}")


@dataclass(frozen=True)
class EnsemblePlan:
    """Classes, base models and the meta-learner's input layout of a stacking ensemble.

    Two class spaces: the ensemble's own ``n_ensemble`` classes (the columns of every base model's
    probabilities and of the meta-learner's input) and the bundle's ``classes`` (names, the output);
    ``output_columns[j]`` is the output column of ensemble class ``j``. ``has_meta=False`` is a
    single-model bundle whose one base model's probabilities are the answer. ``temperature``
    rescales the meta-learner's output (:func:`signlang.models.temperature.apply_temperature`).
    ``open_set`` is the bundle's open-set rule as stored (:meth:`signlang.models.openset.OpenSetRule.to_json`,
    None: the model never answers unknown); it travels here, as the temperature does, so that both
    backends hand the same rule to the decision policy.
    """

    classes: tuple[str, ...]
    bases: tuple[BasePlan, ...]
    meta_columns: tuple[int, ...]
    n_ensemble: int
    output_columns: tuple[int, ...]
    has_meta: bool = True
    passthrough_pooled: bool = False
    passthrough_blocks: str = BLOCKS_ALL
    temperature: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)
    open_set: dict[str, Any] | None = None

    @property
    def frame_keys(self) -> set[str]:
        """Feature tables the networks need."""
        return {b.blocks for b in self.bases if b.inputs == SEQUENCE}

    @property
    def pooled_keys(self) -> set[str]:
        """Pooled tables the trees (and the passthrough) need."""
        keys = {b.blocks for b in self.bases if b.inputs == POOLED}
        if self.passthrough_pooled:
            keys.add(self.passthrough_blocks)
        return keys

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["bases"] = [asdict(b) for b in self.bases]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], *, source: str = "plan") -> "EnsemblePlan":
        try:
            return cls(
                classes=tuple(str(c) for c in d["classes"]),
                bases=tuple(BasePlan(str(b["name"]), str(b["kind"]), str(b["blocks"]), tuple(int(c) for c in b["columns"]),
                                     str(b.get("inputs") or _LEGACY_INPUTS.get(str(b["kind"]), ""))) for b in d["bases"]),
                meta_columns=tuple(int(c) for c in d["meta_columns"]),
                n_ensemble=int(d["n_ensemble"]),
                output_columns=tuple(int(c) for c in d["output_columns"]),
                has_meta=bool(d.get("has_meta", True)),
                passthrough_pooled=bool(d.get("passthrough_pooled", False)),
                passthrough_blocks=str(d.get("passthrough_blocks", BLOCKS_ALL)),
                temperature=float(d.get("temperature", 1.0)),
                extra=dict(d.get("extra", {})),
                open_set=None if d.get("open_set") is None else dict(d["open_set"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: malformed ensemble plan ({type(exc).__name__}: {exc})") from None


@dataclass
class Features:
    """Per-request features: frame tables ``(N, T, F)`` + masks ``(N, T)`` and pooled ``(N, P)`` by block key."""

    frame: dict[str, tuple[np.ndarray, np.ndarray]]
    pooled: dict[str, np.ndarray]


def compute_features(X: np.ndarray, plan: EnsemblePlan) -> Features:
    """Every feature table ``plan`` needs from normalised landmarks ``X (N, T, 75, 3)``, each once."""
    from signlang.models.featurize import frame_table
    from signlang.features.engineering import pool_features

    frame: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    pooled: dict[str, np.ndarray] = {}
    for key in sorted(plan.frame_keys | plan.pooled_keys):
        feats, mask = frame_table(X, blocks_from_key(key), name="landmarks")
        frame[key] = (np.ascontiguousarray(feats, dtype=np.float32), np.ascontiguousarray(mask, dtype=bool))
        if key in plan.pooled_keys:
            pooled[key] = np.ascontiguousarray(pool_features(feats, mask), dtype=np.float32)
    return Features(frame=frame, pooled=pooled)


def base_inputs(feats: Features, base: BasePlan) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
    """What ``base`` reads: ``(x (N, T, F), mask (N, T))`` for a sequence model, the pooled table ``(N, P)`` otherwise."""
    return feats.frame[base.blocks] if base.inputs == SEQUENCE else feats.pooled[base.blocks]


def final_proba(plan: EnsemblePlan, meta_proba: np.ndarray | None, by_model: dict[str, np.ndarray]) -> np.ndarray:
    """The answer ``(N, len(plan.classes))``: meta-learner (rescaled by the plan's temperature) or the single
    model, mapped to the output classes."""
    if plan.has_meta:
        assert meta_proba is not None
        ens = combined(meta_proba, plan.meta_columns, plan.n_ensemble, plan.temperature)
    else:
        ens = by_model[plan.bases[0].name]
    return place_columns(ens, plan.output_columns, len(plan.classes))


def meta_input(plan: EnsemblePlan, by_model: dict[str, np.ndarray], feats: Features) -> np.ndarray:
    """The meta-learner's input: base probabilities in plan order (+ pooled passthrough)."""
    return stack_input([by_model[b.name] for b in plan.bases], feats.pooled[plan.passthrough_blocks] if plan.passthrough_pooled else None)


def run_plan(plan: EnsemblePlan, feats: Features, run_base: Callable[[BasePlan], np.ndarray],
             run_meta: Callable[[np.ndarray], np.ndarray] | None) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float]]:
    """The ensemble on computed features, whatever runs the models: ``run_base(base) -> (N, len(base.columns))``
    for each base model, ``run_meta(z) -> (N, len(plan.meta_columns))`` for the meta-learner (when the plan
    has one). Returns ``(probs (N, len(classes)), {base name: (N, n_ensemble)}, {base name: ms})``."""
    n = plan.n_ensemble
    by_model: dict[str, np.ndarray] = {}
    ms: dict[str, float] = {}
    for b in plan.bases:
        t0 = time.perf_counter()
        by_model[b.name] = place_columns(np.asarray(run_base(b), dtype=np.float32), b.columns, n)
        ms[b.name] = (time.perf_counter() - t0) * 1e3
    meta = None
    if plan.has_meta:
        assert run_meta is not None, "the plan has a meta-learner but no runner was given for it"
        meta = np.asarray(run_meta(meta_input(plan, by_model, feats)), dtype=np.float32)
    return final_proba(plan, meta, by_model), by_model, ms

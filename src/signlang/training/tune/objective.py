"""The objective of a search: the fit/validation parts, one trial runner per model (a registry), and
:class:`Objective` (sample -> config -> train -> validation macro-F1, pruned per epoch)."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from signlang._registry import Registry
from signlang.datasets.clip import ClipSet
from signlang.models.registry import MODELS
from signlang.training.config import TrainConfig, merge_overrides, normalize_config
from signlang.training.tune.space import SearchSpace

PathLike = str | os.PathLike[str]

# ----------------------------------------------------------------------------------------------
# data: fit / validation parts, normalised once per normalisation setting


@dataclass
class TuneData:
    """The clips and the parts a search may use: ``fit_idx`` trains, ``val_idx`` scores."""

    clips: ClipSet
    fit_idx: np.ndarray
    val_idx: np.ndarray
    split: str
    seed: int
    n_test_held_out: int
    source: dict[str, Any]


def prepare_data(data: PathLike | ClipSet, split: str, seed: int, cells: PathLike | None = "auto") -> TuneData:
    """Split off the test part (never used) and carve the validation part from the training part.

    ``cells``: the label audit (:func:`signlang.training.pipeline.load_data`; ``source["audit"]`` says what it excluded).

    Validation clips of classes absent from the fit part are dropped (a model cannot predict
    them, and they would only add noise to the macro-F1).
    """
    from signlang.datasets.splits import split_indices, validation_indices
    from signlang.training.pipeline import load_data

    clips, source = load_data(data, cells)
    train_idx, test_idx = split_indices(clips, split, seed=seed)
    fit_idx, val_idx = validation_indices(clips, train_idx, split, seed)
    if len(np.unique(clips.y[fit_idx])) < 2:
        raise ValueError(f"split {split!r}: the fit part has fewer than 2 classes")
    val_idx = val_idx[np.isin(clips.y[val_idx], clips.y[fit_idx])]
    if len(val_idx) == 0:
        raise ValueError(f"split {split!r}: the validation part carved from the training part is empty")
    return TuneData(clips, np.asarray(fit_idx), np.asarray(val_idx), split, int(seed), int(len(test_idx)), source)


# ----------------------------------------------------------------------------------------------
# trial runners: one per model (a registry), each returns the validation macro-F1

@dataclass
class TrialInputs:
    """What a runner gets: the trial's config and the normalised fit/validation parts."""

    model: str
    cfg: TrainConfig
    X_fit: np.ndarray
    y_fit: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    classes: tuple[str, ...]
    seed: int


TrialRunner = Callable[[Any, TrialInputs, Any], float]
TRIAL_RUNNERS: Registry[TrialRunner] = Registry("trial runner")
"""``runner(trial, inputs, tracker) -> validation macro-F1`` by model name; ``"network"`` runs
every registered network that has no runner of its own (per-epoch pruning), ``"estimator"`` every
other clip classifier (fitted by its model kind's ``fit``)."""
register_trial_runner = TRIAL_RUNNERS.register
NETWORK_RUNNER = "network"
ESTIMATOR_RUNNER = "estimator"


def trial_runner_for(model: str) -> TrialRunner:
    """The runner of ``model``: its own, else the network runner for a network, else the estimator runner."""
    spec = MODELS.get(model)
    if spec.name in TRIAL_RUNNERS:
        return TRIAL_RUNNERS.get(spec.name)
    if spec.task != "clip":
        raise ValueError(f"model {spec.name!r} is a frame tagger, not a clip classifier; register a runner with register_trial_runner({spec.name!r})")
    return TRIAL_RUNNERS.get(NETWORK_RUNNER if spec.is_network else ESTIMATOR_RUNNER)


class PruningCallback:
    """``on_epoch_end`` for :func:`train_network`: reports the epoch's validation macro-F1 to the
    trial and raises ``optuna.TrialPruned`` when the pruner says so."""

    def __init__(self, trial: Any, metric: str = "val_macro_f1") -> None:
        self.trial = trial
        self.metric = metric

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool:
        import optuna

        value = float(metrics[self.metric])
        if not math.isfinite(value):
            return False
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_at_epoch", int(epoch))
            raise optuna.TrialPruned(f"epoch {epoch}: {self.metric} {value:.4f} below the pruner's threshold")
        return False


@register_trial_runner(NETWORK_RUNNER)
def _run_network(trial: Any, inp: TrialInputs, tracker: Any) -> float:
    """Train one network with per-epoch pruning; the value is its best epoch's validation macro-F1."""
    import optuna

    from signlang.training.pipeline import build_base_model

    est = build_base_model(inp.model, inp.cfg, len(inp.classes), inp.seed)
    try:
        est.fit(inp.X_fit, inp.y_fit, inp.X_val, inp.y_val, callbacks=[PruningCallback(trial)], tracker=tracker)
    except FloatingPointError as exc:  # a diverging learning rate: a bad trial, stopped early
        trial.set_user_attr("diverged", str(exc))
        raise optuna.TrialPruned(f"diverged: {exc}") from None
    result = est.train_result_
    trial.set_user_attr("best_epoch", int(result.best_epoch))
    trial.set_user_attr("epochs_run", int(result.epochs_run))
    return float(result.best_score)


@register_trial_runner(ESTIMATOR_RUNNER)
def _run_estimator(trial: Any, inp: TrialInputs, tracker: Any) -> float:
    """Fit any other model by its model kind's fit signature (XGBoost: early stopping on the validation
    part) and report the validation macro-F1 once."""
    from signlang.models.evaluation import classification_report
    from signlang.models.registry import kind_for
    from signlang.training.pipeline import build_base_model

    est = build_base_model(inp.model, inp.cfg, len(inp.classes), inp.seed)
    kind_for(est, f"model {inp.model!r}").fit(est, inp.X_fit, inp.y_fit, inp.X_val, inp.y_val)
    rep = classification_report(inp.y_val, est.predict_proba(inp.X_val), inp.classes)
    step = 0
    if getattr(est, "best_iteration_", None) is not None:  # a boosted model: the rounds it kept
        step = int(est.best_iteration_) + 1
        trial.set_user_attr("boosting_rounds", step)
    trial.report(float(rep["macro_f1"]), step)
    return float(rep["macro_f1"])


# ----------------------------------------------------------------------------------------------
# the objective


@dataclass
class TrackingSpec:
    """Where trials are logged (None = not logged); ``parent_run_id`` nests them under the search's run."""

    tracking_uri: str
    experiment: str
    out_dir: str
    parent_run_id: str | None = None


class Objective:
    """``objective(trial) -> validation macro-F1`` for one model; caches the normalised data per
    normalisation setting so that trials which do not tune ``data.*`` normalise only once."""

    def __init__(self, data: TuneData, base: TrainConfig, space: SearchSpace, model: str,
                 tracking: TrackingSpec | None = None) -> None:
        trial_runner_for(model)  # an unknown model or one without a runner fails here, before any trial
        self.data, self.base, self.space, self.model, self.tracking = data, base, space, model, tracking
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _normalised(self, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
        from signlang.features.normalize import normalize_clips

        ncfg = normalize_config(cfg)
        key = json.dumps(ncfg.to_dict(), sort_keys=True)
        if key not in self._cache:
            lm = self.data.clips.landmarks
            self._cache[key] = (normalize_clips([lm[i] for i in self.data.fit_idx], ncfg),
                                normalize_clips([lm[i] for i in self.data.val_idx], ncfg))
        return self._cache[key]

    def _tracker(self, trial: Any, params: dict[str, Any]) -> Any:
        from signlang.training.tracking import NullTracker

        if self.tracking is None:
            return NullTracker()
        from signlang.training.tracking import MLflowTracker

        t = MLflowTracker(self.tracking.tracking_uri, self.tracking.experiment, out_dir=self.tracking.out_dir)
        t.start(run_name=f"{trial.study.study_name}-trial-{trial.number}")
        tags = {"optuna.study": trial.study.study_name, "optuna.trial": str(trial.number), "model": self.model}
        if self.tracking.parent_run_id:
            tags["mlflow.parentRunId"] = self.tracking.parent_run_id
        t.set_tags(tags)
        t.log_params({**params, "model": self.model, "split": self.data.split, "seed": self.data.seed})
        return t

    def __call__(self, trial: Any) -> float:
        params = self.space.suggest(trial)
        try:
            return self._run(trial, params)
        except (ValueError, FloatingPointError, RuntimeError) as exc:  # the trial fails; the reason is kept
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:1000])
            raise

    def _run(self, trial: Any, params: dict[str, Any]) -> float:
        import optuna

        cfg = merge_overrides(self.base, params)  # ValueError (an invalid combination): the trial fails
        X_fit, X_val = self._normalised(cfg)
        clips = self.data.clips
        inputs = TrialInputs(self.model, cfg, X_fit, clips.y[self.data.fit_idx], X_val, clips.y[self.data.val_idx],
                             tuple(clips.classes), self.data.seed)
        tracker = self._tracker(trial, params)
        t0 = time.perf_counter()
        state = "FAILED"
        try:
            value = trial_runner_for(self.model)(trial, inputs, tracker)
            tracker.log_metrics({"objective_val_macro_f1": value})
            tracker.set_tags({"optuna.state": "COMPLETE"})
            state = "FINISHED"
            return value
        except optuna.TrialPruned:
            tracker.set_tags({"optuna.state": "PRUNED"})
            state = "KILLED"
            raise
        finally:
            trial.set_user_attr("fit_seconds", round(time.perf_counter() - t0, 3))
            tracker.end(state)

"""Hyper-parameter search with Optuna behind ``signlang tune``.

:func:`run_tune`::

    load -> split (test part held out, never touched) -> carve a validation part from the training
    part with the same protocol -> Optuna study in sqlite (``DIR/study.db``, resumed when it
    exists) -> trials: sample the search space -> config -> train one base model -> validation
    macro-F1 (reported per epoch to a median / Hyperband pruner) -> best.yaml, report, plots

The search space (:func:`load_space`, ``configs/space.yaml``) is keyed by dotted config keys and
validated like a config: an unknown key or a malformed entry is a ``ValueError`` naming the key.
``n_trials`` is the study's *total* of finished trials (COMPLETE + PRUNED): running the same
search again after a kill runs only the missing ones, and a trial that a killed process left
RUNNING is marked FAIL and done again. ``jobs > 1`` runs trials in that many spawned processes
against the same storage, the remaining trials split between them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from signlang._io import atomic_write, write_json
from signlang._registry import Registry
from signlang.models.registry import MODELS
from signlang.datasets.clip import ClipSet
from signlang.training.config import (
    CONFIG_DIR,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    flatten_config,
    merge_overrides,
    normalize_config,
    read_yaml,
)

PathLike = str | os.PathLike[str]

DEFAULT_SPACE = CONFIG_DIR / "space.yaml"
"""The shipped search space (the seed project's ranges)."""
SHIPPED_SPACES = {"seed": DEFAULT_SPACE, "cpu": CONFIG_DIR / "space_cpu.yaml"}
"""Search spaces by name: ``seed`` (GPU-size networks) and ``cpu`` (small networks, pairs with cpu.yaml)."""
STUDY_DB = "study.db"
BEST_CONFIG = "best.yaml"
REPORT = "tune_report.json"
HISTORY_PNG = "history.png"
IMPORTANCE_PNG = "importances.png"
MAX_ROUNDS = 3
"""Optimisation rounds per call: later rounds only redo trials that failed in earlier ones."""
MAX_CONSECUTIVE_FAILURES = 3
"""A process stops after this many failed trials in a row; the call then reports the reason."""



def model_sections(model: str) -> tuple[str, ...]:
    """The config sections a model's trials search: its own section, ``optim`` for a network
    (it trains with it), and ``data``; ``ValueError`` for a model the registry does not know."""
    spec = MODELS.get(model)
    return (spec.name, "optim", "data") if spec.is_network else (spec.name, "data")


# ----------------------------------------------------------------------------------------------
# search space


@dataclass(frozen=True)
class ParamSpec:
    """One searched config key: ``categorical`` (``choices``) or ``float``/``int`` (``low..high``)."""

    key: str
    type: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    def suggest(self, trial: Any) -> Any:
        """Ask an Optuna trial for this key's value (the trial's parameter name is the dotted key)."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a point of this key's range (for enqueued trials)."""
        if self.type == "categorical":
            return any(type(value) is type(c) and value == c for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and not isinstance(value, int):
            return False
        return float(self.low) <= float(value) <= float(self.high)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        if self.type == "categorical":
            return {"type": self.type, "choices": list(self.choices)}
        d: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            d["step"] = self.step
        return d


@dataclass(frozen=True)
class SearchSpace:
    """The searched keys, in file order."""

    params: tuple[ParamSpec, ...]

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def for_model(self, model: str) -> "SearchSpace":
        """The keys that ``model``'s trials search (see :func:`model_sections`); ``ValueError`` if none.

        When the space names no key of the model's own section, the tunable space declared in
        its registration (``register_model(..., space=...)``) is searched as well.
        """
        sections = model_sections(model)
        spec = MODELS.get(model)
        kept = tuple(p for p in self.params if p.key.split(".")[0] in sections)
        if spec.space and not any(p.key.split(".")[0] == spec.name for p in kept):
            own = space_from_dict({f"{spec.name}.{k}": dict(v) for k, v in spec.space.items()}, f"model {spec.name!r} registration")
            kept = own.params + kept
        if not kept:
            raise ValueError(f"the search space has no key for model {model!r} (searched sections: {', '.join(sections)}; "
                             f"space keys: {', '.join(self.keys) or 'none'})")
        return SearchSpace(kept)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """``{dotted key: value}`` sampled by ``trial``."""
        return {p.key: p.suggest(trial) for p in self.params}

    def to_dict(self) -> dict[str, Any]:
        return {p.key: p.to_dict() for p in self.params}


_TYPES = ("categorical", "float", "int")
_ENTRY_KEYS = {"categorical": {"type", "choices"}, "float": {"type", "low", "high", "log", "step"},
               "int": {"type", "low", "high", "log", "step"}}


def _number(value: Any, key: str, what: str, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise ValueError(f"search-space key {key!r}: {what} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"search-space key {key!r}: {what} must be finite, got {value!r}")
    return int(value) if integer else float(value)


def _check_values_fit_config(key: str, values: Sequence[Any]) -> None:
    """Each value must be valid for ``key`` in a config (type and range), else a ValueError naming it."""
    base = TrainConfig()
    for v in values:
        try:
            merge_overrides(base, {key: v})
        except ValueError as exc:
            raise ValueError(f"search-space key {key!r}: value {v!r} is not valid for the config ({exc})") from None


def _parse_entry(key: str, entry: Any, leaves: set[str]) -> ParamSpec:
    if key not in leaves:
        import difflib

        close = difflib.get_close_matches(key, sorted(leaves), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"search-space key {key!r} is not a config key{hint}")
    if not isinstance(entry, dict):
        raise ValueError(f"search-space key {key!r}: expected a mapping like {{type: float, low: ..., high: ...}}, got {entry!r}")
    kind = entry.get("type")
    if kind not in _TYPES:
        raise ValueError(f"search-space key {key!r}: 'type' must be one of {', '.join(_TYPES)}, got {kind!r}")
    unknown = sorted(set(entry) - _ENTRY_KEYS[kind])
    if unknown:
        raise ValueError(f"search-space key {key!r}: unknown field(s) {unknown} for type {kind} (allowed: {sorted(_ENTRY_KEYS[kind])})")
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"search-space key {key!r}: 'choices' must be a non-empty list, got {choices!r}")
        if any(not (c is None or isinstance(c, (bool, int, float, str))) for c in choices):
            raise ValueError(f"search-space key {key!r}: choices must be numbers, strings, booleans or null, got {choices!r}")
        _check_values_fit_config(key, choices)
        return ParamSpec(key, kind, choices=tuple(choices))
    integer = kind == "int"
    for need in ("low", "high"):
        if need not in entry:
            raise ValueError(f"search-space key {key!r}: type {kind} needs '{need}'")
    low = _number(entry["low"], key, "'low'", integer)
    high = _number(entry["high"], key, "'high'", integer)
    if not low < high:
        raise ValueError(f"search-space key {key!r}: 'low' must be below 'high', got low={low!r} high={high!r}")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"search-space key {key!r}: 'log' must be true or false, got {log!r}")
    if log and low <= 0:
        raise ValueError(f"search-space key {key!r}: a log scale needs low > 0, got low={low!r}")
    step = entry.get("step")
    if step is not None:
        step = _number(step, key, "'step'", integer)
        if step <= 0:
            raise ValueError(f"search-space key {key!r}: 'step' must be > 0, got {step!r}")
        if log:
            raise ValueError(f"search-space key {key!r}: 'step' and 'log: true' cannot be combined")
    _check_values_fit_config(key, [low, high])
    return ParamSpec(key, kind, low=low, high=high, log=log, step=step)


def space_from_dict(d: Any, source: str = "search space") -> SearchSpace:
    """Validate a mapping ``{dotted key: entry}`` into a :class:`SearchSpace`; errors name ``source`` and the key."""
    if not isinstance(d, dict) or not d:
        raise ValueError(f"{source}: expected a non-empty mapping of config keys to search entries, got {type(d).__name__}")
    leaves = set(flatten_config(TrainConfig()))
    try:
        return SearchSpace(tuple(_parse_entry(str(k), v, leaves) for k, v in d.items()))
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def default_space_name(cuda: bool | None = None) -> str:
    """The shipped space that suits the hardware, as :func:`~signlang.training.config.default_config`
    picks the training config: ``seed`` (configs/space.yaml) with CUDA, ``cpu`` otherwise."""
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    return "seed" if cuda else "cpu"


def load_space(path: PathLike | None = None) -> SearchSpace:
    """Read and validate a search-space YAML, or a shipped one by name (``seed``, ``cpu``);
    default: the shipped space for this hardware (:func:`default_space_name`)."""
    if path is None:
        path = default_space_name()
    if not Path(path).is_file() and str(path) in SHIPPED_SPACES:
        path = SHIPPED_SPACES[str(path)]
    p = Path(path)
    return space_from_dict(read_yaml(p, "search space"), str(p))


# ----------------------------------------------------------------------------------------------
# samplers and pruners (registries)

PrunerFactory = Callable[[int, int, int], Any]
PRUNERS: Registry[PrunerFactory] = Registry("pruner")
"""``factory(startup_trials, warmup_epochs, max_epochs) -> optuna pruner`` by name."""
register_pruner = PRUNERS.register


@register_pruner("median")
def _median(startup: int, warmup: int, max_epochs: int) -> Any:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)


@register_pruner("hyperband")
def _hyperband(startup: int, warmup: int, max_epochs: int) -> Any:
    import optuna

    return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup), max_resource=max(max_epochs, max(1, warmup) + 1),
                                          reduction_factor=3)


@register_pruner("none")
def _no_pruner(startup: int, warmup: int, max_epochs: int) -> Any:
    import optuna

    return optuna.pruners.NopPruner()


def make_pruner(name: str, startup_trials: int = 2, warmup_epochs: int = 1, max_epochs: int = 30) -> Any:
    """The pruner ``name`` (median | hyperband | none); ``ValueError`` listing the known ones."""
    factory = PRUNERS.get(name)
    if startup_trials < 0 or warmup_epochs < 0:
        raise ValueError(f"pruner: startup trials and warm-up epochs must be >= 0, got {startup_trials}, {warmup_epochs}")
    return factory(startup_trials, warmup_epochs, max_epochs)


def make_sampler(seed: int, n_trials: int) -> Any:
    """A seeded TPE sampler; its random start-up phase is a third of the search (2..10 trials)."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, n_trials // 3)))


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


def prepare_data(data: PathLike | ClipSet, split: str, seed: int) -> TuneData:
    """Split off the test part (never used) and carve the validation part from the training part.

    Validation clips of classes absent from the fit part are dropped (a model cannot predict
    them, and they would only add noise to the macro-F1).
    """
    from signlang.datasets.splits import split_indices, validation_indices
    from signlang.training.pipeline import load_data

    clips, source = load_data(data)
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
every registered network that has no runner of its own."""
register_trial_runner = TRIAL_RUNNERS.register
NETWORK_RUNNER = "network"


def trial_runner_for(model: str) -> TrialRunner:
    """The runner of ``model``: its own, else the network runner for a network."""
    spec = MODELS.get(model)
    if spec.name in TRIAL_RUNNERS:
        return TRIAL_RUNNERS.get(spec.name)
    if spec.is_network:
        return TRIAL_RUNNERS.get(NETWORK_RUNNER)
    raise ValueError(f"model {spec.name!r} has no trial runner; register one with register_trial_runner({spec.name!r})")


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


@register_trial_runner("xgboost")
def _run_xgboost(trial: Any, inp: TrialInputs, tracker: Any) -> float:
    """Fit XGBoost (early stopping on the validation part) and report the final macro-F1 once."""
    from signlang.training.evaluation import classification_report
    from signlang.training.pipeline import build_base_model

    est = build_base_model("xgboost", inp.cfg, len(inp.classes), inp.seed)
    est.fit(inp.X_fit, inp.y_fit, eval_set=(inp.X_val, inp.y_val))
    rep = classification_report(inp.y_val, est.predict_proba(inp.X_val), inp.classes)
    rounds = int(est.best_iteration_) + 1
    trial.set_user_attr("boosting_rounds", rounds)
    trial.report(float(rep["macro_f1"]), rounds)
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


# ----------------------------------------------------------------------------------------------
# study helpers


def default_storage(out_dir: PathLike) -> str:
    """``sqlite:///<out_dir>/study.db`` (absolute)."""
    return f"sqlite:///{(Path(out_dir) / STUDY_DB).resolve()}"


def _storage(url: str) -> Any:
    """An RDB storage; sqlite gets a long lock timeout so parallel processes wait instead of failing."""
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    return optuna.storages.RDBStorage(url, **kwargs)


def count_finished(study: Any) -> int:
    """Trials that count towards ``n_trials``: COMPLETE + PRUNED."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def fail_stale_trials(study: Any, reason: str = "left RUNNING by an interrupted search") -> list[int]:
    """Mark trials left RUNNING (by a killed process) as FAIL; returns their numbers.

    Run it only when no other process is optimising the same study.
    """
    from optuna.trial import TrialState

    numbers = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "fail_reason", reason)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        numbers.append(t.number)
    return numbers


def _best_trial(study: Any) -> Any | None:
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def _silence_optuna() -> None:
    import logging
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed trials are summarised by the caller, not traced
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


# ----------------------------------------------------------------------------------------------
# one optimising process


@dataclass
class WorkerJob:
    """Everything one optimising process needs (picklable, for spawned workers)."""

    data: TuneData
    base: dict[str, Any]
    space: dict[str, Any]
    model: str
    storage: str
    study_name: str
    n_trials: int
    timeout: float | None
    sampler_seed: int
    sampler_trials: int
    pruner: tuple[str, int, int, int]
    tracking: TrackingSpec | None
    threads: int


def _optimize(job: WorkerJob, callbacks: Sequence[Callable[[Any, Any], None]] = ()) -> None:
    """Run up to ``job.n_trials`` trials of the study in this process."""
    import optuna

    _silence_optuna()
    study = optuna.load_study(study_name=job.study_name, storage=_storage(job.storage),
                              sampler=make_sampler(job.sampler_seed, job.sampler_trials), pruner=make_pruner(*job.pruner))
    objective = Objective(job.data, config_from_dict(job.base), space_from_dict(job.space), job.model, job.tracking)
    study.optimize(objective, n_trials=job.n_trials, timeout=job.timeout, catch=(ValueError, FloatingPointError, RuntimeError),
                   callbacks=[*callbacks, _StopOnFailures(MAX_CONSECUTIVE_FAILURES)], gc_after_trial=True)


class _StopOnFailures:
    """Stop this process's optimisation after ``limit`` failed trials in a row (a broken config
    fails every trial the same way; no point in repeating it)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.run = limit, 0

    def __call__(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        self.run = self.run + 1 if trial.state == TrialState.FAIL else 0
        if self.run >= self.limit:
            study.stop()


def _worker_main(job: WorkerJob) -> None:
    """Entry point of a spawned worker: limit threads, then optimise; Ctrl-C ends it quietly."""
    import torch

    torch.set_num_threads(max(1, job.threads))
    try:
        _optimize(job)
    except KeyboardInterrupt:
        pass


# ----------------------------------------------------------------------------------------------
# the search


@dataclass
class TuneResult:
    """What a search did and wrote."""

    study_name: str
    storage: str
    n_trials: int
    states: dict[str, int]
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    best_config: str | None
    report: str
    plots: dict[str, str]
    plot_notes: list[str]
    trials_run_now: int
    stale_failed: list[int]
    interrupted: bool
    elapsed_s: float
    fail_reasons: dict[str, int] = field(default_factory=dict)
    top_trials: list[dict[str, Any]] = field(default_factory=list)


def _trial_rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        dur = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        last = max(t.intermediate_values) if t.intermediate_values else None
        rows.append({
            "number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params),
            "last_reported": None if last is None else {"step": last, "value": t.intermediate_values[last]},
            "duration_s": dur, "user_attrs": dict(t.user_attrs),
        })
    return rows


def _enqueue(study: Any, space: SearchSpace, trials: Sequence[Mapping[str, Any]]) -> None:
    specs = {p.key: p for p in space.params}
    for i, params in enumerate(trials):
        for k, v in params.items():
            if k not in specs:
                raise ValueError(f"enqueued trial {i}: key {k!r} is not in the search space ({', '.join(specs)})")
            if not specs[k].contains(v):
                raise ValueError(f"enqueued trial {i}: value {v!r} of {k!r} is outside the search space {specs[k].to_dict()}")
        study.enqueue_trial(dict(params), skip_if_exists=True)


def _base_point(base: TrainConfig, space: SearchSpace) -> dict[str, Any]:
    """The base config's values of the searched keys that lie inside the space."""
    flat = flatten_config(base)
    return {p.key: flat[p.key] for p in space.params if p.contains(flat[p.key])}


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=min(initial, total), disable=not enabled, desc="tune", unit="trial")


def run_tune(
    data: PathLike | ClipSet,
    out_dir: PathLike,
    base: TrainConfig,
    *,
    space: SearchSpace | None = None,
    model: str = "transformer",
    n_trials: int = 20,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    jobs: int = 1,
    split: str = "blocked:0.2",
    seed: int | None = None,
    pruner: str = "median",
    pruner_startup_trials: int = 2,
    pruner_warmup_epochs: int = 1,
    track: bool = True,
    tracking_uri: str | None = None,
    enqueue: Sequence[Mapping[str, Any]] = (),
    enqueue_base: bool = True,
    progress: bool = True,
) -> TuneResult:
    """Search hyper-parameters of ``model`` and write ``best.yaml``, ``tune_report.json`` and plots to ``out_dir``.

    The study lives in ``storage`` (default ``sqlite:///out_dir/study.db``) under ``study_name``
    (default ``signlang-<model>``) and is continued when it exists: ``n_trials`` is the total of
    COMPLETE + PRUNED trials, so only the missing ones run. ``timeout`` (seconds) bounds this call.
    ``enqueue`` lists fixed parameter sets tried first; ``enqueue_base`` tries the base config's
    values (those inside the space) first in a new study. Ctrl-C stops cleanly: the running trials
    are marked FAIL and the outputs are written from the trials that finished.
    """
    import optuna

    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    make_pruner(pruner, pruner_startup_trials, pruner_warmup_epochs, base.optim.epochs)  # validate early
    _silence_optuna()
    t_start = time.perf_counter()
    seed = base.seed if seed is None else int(seed)
    base = merge_overrides(base, {"seed": seed}) if seed != base.seed else base
    space = (space or load_space()).for_model(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    storage_url = storage or default_storage(out)
    name = study_name or f"signlang-{model}"
    if base.augment:  # a broken augmentation spec would fail every trial: say so before searching
        from signlang.features.augment import build_augmentation

        try:
            build_augmentation(base.augment)
        except ValueError as exc:
            raise ValueError(f"base config key 'augment': {exc}") from None
    tune_data = prepare_data(data, split, seed)

    study = optuna.create_study(study_name=name, storage=_storage(storage_url), direction="maximize", load_if_exists=True)
    fixed = {"model": model, "split": split, "seed": seed}
    for k, v in fixed.items():
        old = study.user_attrs.get(k)
        if old is not None and old != v:
            raise ValueError(f"study {name!r} in {storage_url} was run with {k}={old!r}, not {v!r}; "
                             f"use another --out/--storage or --study-name")
        study.set_user_attr(k, v)
    stale = fail_stale_trials(study)
    if not study.get_trials(deepcopy=False):
        queued = list(enqueue)
        point = _base_point(base, space) if enqueue_base else {}
        if point and point not in queued:
            queued.append(point)
        _enqueue(study, space, queued)
    elif enqueue:
        _enqueue(study, space, enqueue)

    tracking, parent = _start_tracking(base, out, tracking_uri, name, model, n_trials, space, track)
    done_before = count_finished(study)
    bar = _progress(n_trials, done_before, progress)
    interrupted = False
    threads = max(1, (os.cpu_count() or 1) // jobs)
    try:
        for round_ in range(MAX_ROUNDS):
            missing = n_trials - count_finished(study)
            left = None if timeout is None else timeout - (time.perf_counter() - t_start)
            if missing <= 0 or (left is not None and left <= 0):
                break
            n_before = len(study.get_trials(deepcopy=False))
            n_before_finished = count_finished(study)
            jobs_now = min(jobs, missing)
            shares = [missing // jobs_now + (1 if i < missing % jobs_now else 0) for i in range(jobs_now)]
            worker_jobs = [
                WorkerJob(tune_data, config_to_dict(base), space.to_dict(), model, storage_url, name, share, left,
                          sampler_seed=int(np.random.SeedSequence([seed, n_before, i]).generate_state(1)[0]),
                          sampler_trials=n_trials, pruner=(pruner, pruner_startup_trials, pruner_warmup_epochs, base.optim.epochs),
                          tracking=tracking, threads=threads)
                for i, share in enumerate(shares)
            ]
            if jobs_now == 1:
                _optimize(worker_jobs[0], callbacks=[_bar_callback(bar)])
            else:
                _run_parallel(worker_jobs, study, bar)
            if count_finished(study) == n_before_finished:
                break  # nothing finished: the time is up, or every trial failed (see fail_reasons)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    if interrupted:
        fail_stale_trials(study, "interrupted (Ctrl-C)")
    result = _finish(study, base, space, out, storage_url, n_trials, done_before, stale, interrupted,
                     time.perf_counter() - t_start, tune_data, model)
    if parent is not None:
        _end_tracking(parent, result, out)
    return result


def _bar_callback(bar: Any) -> Callable[[Any, Any], None]:
    """An Optuna callback that advances the bar on finished trials and shows the best value so far."""
    from optuna.trial import TrialState

    def cb(study: Any, trial: Any) -> None:
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            bar.update(1)
        best = _best_trial(study)
        if best is not None:
            bar.set_postfix(best=f"{best.value:.4f}", trial=best.number)

    return cb


def _run_parallel(worker_jobs: list[WorkerJob], study: Any, bar: Any) -> None:
    """Run the jobs in spawned processes, polling the storage for the progress bar."""
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(j,), daemon=False) for j in worker_jobs]
    for p in procs:
        p.start()
    try:
        shown = count_finished(study)
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            now = count_finished(study)
            if now > shown:
                bar.update(now - shown)
                shown = now
                best = _best_trial(study)
                if best is not None:
                    bar.set_postfix(best=f"{best.value:.4f}", trial=best.number)
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=10)  # the workers got the same SIGINT and stop after their trial is marked
            if p.is_alive():
                p.terminate()
                p.join()
        raise


def _start_tracking(base: TrainConfig, out: Path, tracking_uri: str | None, name: str, model: str, n_trials: int,
                    space: SearchSpace, track: bool) -> tuple[TrackingSpec | None, Any]:
    """Open the search's parent MLflow run (trials are nested under it); (None, None) when off or unavailable."""
    if not track:
        return None, None
    from signlang.training.tracking import MLflowTracker

    try:
        import mlflow  # noqa: F401
    except ImportError:
        return None, None
    mdir = out / "mlflow"
    parent = MLflowTracker(tracking_uri or base.tracking.tracking_uri, base.tracking.experiment, out_dir=mdir)
    parent.start(run_name=f"{name}-search")
    parent.set_tags({"optuna.study": name, "model": model, "kind": "tune"})
    parent.log_params({"n_trials": n_trials, "space": json.dumps(space.to_dict())})
    return TrackingSpec(parent.tracking_uri, base.tracking.experiment, str(mdir), parent.run_id), parent


def _end_tracking(parent: Any, result: TuneResult, out: Path) -> None:
    if result.best_value is not None:
        parent.log_metrics({"best_val_macro_f1": result.best_value})
    for p in [result.best_config, result.report, *result.plots.values()]:
        if p is not None and Path(p).is_file():
            parent.log_artifact(p, "tune")
    parent.end("KILLED" if result.interrupted else "FINISHED")


def _finish(study: Any, base: TrainConfig, space: SearchSpace, out: Path, storage_url: str, n_trials: int,
            done_before: int, stale: list[int], interrupted: bool, elapsed: float, data: TuneData, model: str) -> TuneResult:
    """Write best.yaml, the plots and tune_report.json from the study as it is."""
    rows = _trial_rows(study)
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    reasons: dict[str, int] = {}
    for r in rows:
        if r["state"] == "FAIL":
            why = str(r["user_attrs"].get("fail_reason", "unknown"))
            reasons[why] = reasons.get(why, 0) + 1
    best = _best_trial(study)
    best_path: str | None = None
    if best is not None:
        cfg = merge_overrides(base, dict(best.params))
        best_path = str(out / BEST_CONFIG)
        write_best_config(cfg, best_path, header=[
            f"signlang tune: best of {states.get('COMPLETE', 0)} complete trial(s) of study {study.study_name!r} ({storage_url})",
            f"model {model}, split {data.split}, seed {data.seed}: trial {best.number}, validation macro-F1 {best.value:.4f}",
            "tuned: " + ", ".join(f"{k}={v!r}" for k, v in best.params.items()),
        ])
    plots, notes = write_plots(study, out)
    complete = sorted((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: (-r["value"], r["number"]))
    result = TuneResult(
        study_name=study.study_name, storage=storage_url, n_trials=n_trials, states=states,
        best_value=None if best is None else float(best.value), best_params={} if best is None else dict(best.params),
        best_trial=None if best is None else best.number, best_config=best_path, report=str(out / REPORT),
        plots=plots, plot_notes=notes, trials_run_now=count_finished(study) - done_before, stale_failed=stale,
        interrupted=interrupted, elapsed_s=elapsed, top_trials=complete[:10], fail_reasons=reasons,
    )
    report = {
        "kind": "tune", **{k: v for k, v in dataclasses.asdict(result).items() if k != "top_trials"},
        "model": model, "space": space.to_dict(), "base_config": config_to_dict(base),
        "split": {"spec": data.split, "seed": data.seed, "n_fit": int(len(data.fit_idx)),
                  "n_validation": int(len(data.val_idx)), "n_test_held_out": data.n_test_held_out, "data": data.source},
        "objective": "validation macro-F1 (best epoch for networks)",
        "trials": rows,
    }
    write_json(out / REPORT, json.loads(json.dumps(report, default=str)))
    return result


def write_best_config(cfg: TrainConfig, path: PathLike, header: Sequence[str] = ()) -> None:
    """Write ``cfg`` as YAML (loadable by ``load_config``) with ``#`` header lines, atomically."""
    with atomic_write(path, "w") as fh:
        for line in header:
            fh.write(f"# {line}\n")
        yaml.safe_dump(config_to_dict(cfg), fh, sort_keys=False)


# ----------------------------------------------------------------------------------------------
# plots


def write_plots(study: Any, out: Path) -> tuple[dict[str, str], list[str]]:
    """``history.png`` (every finished trial, the best so far) and ``importances.png`` (Optuna's
    default importance evaluator; needs >= 2 complete trials and a varying parameter). Returns (paths, notes on skips)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    plots: dict[str, str] = {}
    notes: list[str] = []
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    if complete or pruned:
        fig, ax = plt.subplots(figsize=(7, 4))
        if complete:
            ax.scatter([t.number for t in complete], [t.value for t in complete], label="complete", color="tab:blue", zorder=3)
            order = sorted(complete, key=lambda t: t.number)
            ax.step([t.number for t in order], np.maximum.accumulate([t.value for t in order]), where="post",
                    color="tab:red", label="best so far")
        if pruned:
            ax.scatter([t.number for t in pruned], [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
                       marker="x", color="tab:gray", label="pruned (last report)", zorder=3)
        ax.set_xlabel("trial")
        ax.set_ylabel("validation macro-F1")
        ax.set_title(f"optimisation history: {study.study_name}")
        ax.legend(loc="best", framealpha=0.8)
        fig.tight_layout()
        plots["history"] = _save_fig(fig, out / HISTORY_PNG)
    else:
        notes.append("history: no finished trial yet")
    if len(complete) < 2:
        notes.append(f"importances: need >= 2 complete trials, have {len(complete)}")
    else:
        import optuna

        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "importances will be equal" on tiny studies
                imp = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError) as exc:
            imp = {}
            notes.append(f"importances: {exc}")
        if imp:
            names = list(imp)[::-1]
            fig, ax = plt.subplots(figsize=(7, 0.5 * len(names) + 1.5))
            ax.barh(names, [imp[n] for n in names], color="tab:blue")
            ax.set_xlabel("importance (Optuna's default evaluator)")
            ax.set_title(f"parameter importances ({len(complete)} complete trials)")
            fig.tight_layout()
            plots["importances"] = _save_fig(fig, out / IMPORTANCE_PNG)
        elif not any(n.startswith("importances") for n in notes):
            notes.append("importances: no parameter varied between complete trials")
    return plots, notes


def _save_fig(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return str(path)

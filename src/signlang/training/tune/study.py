"""The Optuna study of a search, through Optuna's public API only: sampler and pruners (registries),
storage, stale trials, and one optimising process (also the entry point of spawned workers)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signlang._registry import Registry
from signlang.training.config import config_from_dict
from signlang.training.tune.objective import Objective, TrackingSpec, TuneData
from signlang.training.tune.space import space_from_dict

PathLike = str | os.PathLike[str]

STUDY_DB = "study.db"
STALE_REASON = "fail_reason:trial:"
"""Study user-attribute prefix: why a trial that a killed process left RUNNING was failed."""
MAX_CONSECUTIVE_FAILURES = 3
"""A process stops after this many failed trials in a row; the call then reports the reason."""

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
# study helpers


def default_storage(out_dir: PathLike) -> str:
    """``sqlite:///<out_dir>/study.db`` (absolute)."""
    return f"sqlite:///{(Path(out_dir) / STUDY_DB).resolve()}"


def open_storage(url: str) -> Any:
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
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        study.set_user_attr(f"{STALE_REASON}{t.number}", reason)  # a finished trial's attributes are read-only
        numbers.append(t.number)
    return numbers


def fail_reason(study: Any, number: int, user_attrs: Mapping[str, Any]) -> str:
    """Why trial ``number`` failed: its own ``fail_reason``, else the one recorded when it was found stale."""
    return str(user_attrs.get("fail_reason") or study.user_attrs.get(f"{STALE_REASON}{number}", "unknown"))


def best_trial(study: Any) -> Any | None:
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def silence_optuna() -> None:
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


def optimize(job: WorkerJob, callbacks: Sequence[Callable[[Any, Any], None]] = ()) -> None:
    """Run up to ``job.n_trials`` trials of the study in this process."""
    import optuna

    silence_optuna()
    study = optuna.load_study(study_name=job.study_name, storage=open_storage(job.storage),
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


def worker_main(job: WorkerJob) -> None:
    """Entry point of a spawned worker: limit threads, then optimise; Ctrl-C ends it quietly."""
    import torch

    torch.set_num_threads(max(1, job.threads))
    try:
        optimize(job)
    except KeyboardInterrupt:
        pass

"""``run_tune``: the search behind ``signlang tune`` (see :mod:`signlang.training.tune`)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signlang.datasets.clip import ClipSet
from signlang.training.config import TrainConfig, config_to_dict, flatten_config, merge_overrides
from signlang.training.tune.objective import TrackingSpec, prepare_data
from signlang.training.tune.report import TuneResult, finish
from signlang.training.tune.space import SearchSpace, load_space
from signlang.training.tune.study import (
    WorkerJob, best_trial, optimize, silence_optuna, open_storage, worker_main, count_finished, default_storage,
    fail_stale_trials, make_pruner,
)

PathLike = str | os.PathLike[str]

MAX_ROUNDS = 3
"""Optimisation rounds per call: later rounds only redo trials that failed in earlier ones."""

# ----------------------------------------------------------------------------------------------
# the search


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
    cells: PathLike | None = "auto",
) -> TuneResult:
    """Search hyper-parameters of ``model`` and write ``best.yaml``, ``tune_report.json`` and plots to ``out_dir``.

    The study lives in ``storage`` (default ``sqlite:///out_dir/study.db``) under ``study_name``
    (default ``signlang-<model>``) and is continued when it exists: ``n_trials`` is the total of
    COMPLETE + PRUNED trials, so only the missing ones run. ``timeout`` (seconds) bounds this call.
    ``enqueue`` lists fixed parameter sets tried first; ``enqueue_base`` tries the base config's
    values (those inside the space) first in a new study. Ctrl-C stops cleanly: the running trials
    are marked FAIL and the outputs are written from the trials that finished. ``cells``: the label
    audit (``"auto"``: the one beside the data; ``"all"``: none; or a file); what it excluded is in the report.
    """
    import optuna

    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    make_pruner(pruner, pruner_startup_trials, pruner_warmup_epochs, base.optim.epochs)  # validate early
    silence_optuna()
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
    tune_data = prepare_data(data, split, seed, cells)

    study = optuna.create_study(study_name=name, storage=open_storage(storage_url), direction="maximize", load_if_exists=True)
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
                optimize(worker_jobs[0], callbacks=[_bar_callback(bar)])
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
    result = finish(study, base, space, out, storage_url, n_trials, done_before, stale, interrupted,
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
        best = best_trial(study)
        if best is not None:
            bar.set_postfix(best=f"{best.value:.4f}", trial=best.number)

    return cb


def _run_parallel(worker_jobs: list[WorkerJob], study: Any, bar: Any) -> None:
    """Run the jobs in spawned processes, polling the storage for the progress bar."""
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=worker_main, args=(j,), daemon=False) for j in worker_jobs]
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
                best = best_trial(study)
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

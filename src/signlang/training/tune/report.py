"""What a search writes: ``best.yaml`` (a loadable config), ``tune_report.json`` and the plots."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from signlang._io import atomic_write, write_json
from signlang.training.config import TrainConfig, config_to_dict, merge_overrides

from signlang.training.tune.objective import TuneData
from signlang.training.tune.space import SearchSpace
from signlang.training.tune.study import best_trial, count_finished, fail_reason

PathLike = str | os.PathLike[str]

BEST_CONFIG = "best.yaml"
REPORT = "tune_report.json"
HISTORY_PNG = "history.png"
IMPORTANCE_PNG = "importances.png"

# ----------------------------------------------------------------------------------------------
# the result


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
    audit: dict[str, Any] | None = None
    """What the label audit excluded (:func:`signlang.datasets.audit.audit_mask`), None without one."""


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


def finish(study: Any, base: TrainConfig, space: SearchSpace, out: Path, storage_url: str, n_trials: int,
            done_before: int, stale: list[int], interrupted: bool, elapsed: float, data: TuneData, model: str) -> TuneResult:
    """Write best.yaml, the plots and tune_report.json from the study as it is."""
    rows = _trial_rows(study)
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    reasons: dict[str, int] = {}
    for r in rows:
        if r["state"] == "FAIL":
            why = fail_reason(study, r["number"], r["user_attrs"])
            reasons[why] = reasons.get(why, 0) + 1
    best = best_trial(study)
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
        audit=data.source.get("audit"),
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

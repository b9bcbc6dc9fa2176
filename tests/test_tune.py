"""signlang tune: the search space is validated, bad trials are pruned, best.yaml is a loadable
config, a killed search continues its trial count, Ctrl-C ends cleanly, trials go to MLflow."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from signlang.datasets.clip import ClipSet
from signlang.datasets.splits import split_indices, validation_indices
from signlang.datasets.synthetic import make_synthetic_dataset
from signlang.training.config import TrainConfig, config_to_dict, flatten_config, load_config, merge_overrides
from signlang.training.tune import (
    DEFAULT_SPACE,
    TRIAL_RUNNERS,
    count_finished,
    load_space,
    run_tune,
    space_from_dict,
)

optuna = pytest.importorskip("optuna")

SPLIT = "blocked:0.2"
TINY = {
    "device": "cpu", "seed": 3, "augment": [],
    "data.target_frames": 16,
    "transformer.d_model": 16, "transformer.n_heads": 2, "transformer.n_layers": 1, "transformer.dim_ff": 32,
    "transformer.max_len": 16, "transformer.dropout": 0.1,  # (the values the old section dataclasses defaulted to)
    "xgboost.n_estimators": 8, "xgboost.early_stopping_rounds": 4, "xgboost.learning_rate": 0.1, "xgboost.max_depth": 6,
    "optim.epochs": 3, "optim.batch_size": 8, "optim.patience": 5, "optim.warmup_frac": 0.0,
}
SPACE = {
    "optim.lr": {"type": "float", "low": 1e-9, "high": 1e-2, "log": True},
    "transformer.n_layers": {"type": "categorical", "choices": [1, 2]},
    "xgboost.max_depth": {"type": "int", "low": 2, "high": 4},
}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def clips() -> ClipSet:
    """3 easy synthetic signs, 4 signers x 3 repetitions: 36 short clips."""
    return make_synthetic_dataset(n_classes=3, n_signers=4, clips_per_signer=3, frames=(16, 24), seed=0)


@pytest.fixture(scope="module")
def base() -> TrainConfig:
    return merge_overrides(TrainConfig(), TINY)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, clips: ClipSet, base: TrainConfig) -> dict[str, Path]:
    """The synthetic data as .npz, the tiny base config and the test space as YAML (for the CLI)."""
    from signlang.datasets.loaders import save_npz
    from signlang.training.config import save_config

    d = tmp_path_factory.mktemp("tune_files")
    save_npz(clips, d / "tiny.npz")
    save_config(base, d / "base.yaml")
    (d / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return {"data": d / "tiny.npz", "config": d / "base.yaml", "space": d / "space.yaml"}


def _study(out: Path, model: str = "transformer") -> Any:
    return optuna.load_study(study_name=f"signlang-{model}", storage=f"sqlite:///{out / 'study.db'}")


# ----------------------------------------------------------------------------------------------
# search space


def test_shipped_space_has_the_seed_ranges() -> None:
    space = load_space("seed")
    specs = {p.key: p for p in space.params}
    assert specs["transformer.n_layers"].choices == (4, 6, 8)
    assert specs["bilstm.hidden"].choices == (128, 256)
    assert specs["optim.batch_size"].choices == (32, 64, 128)
    lr = specs["optim.lr"]
    assert (lr.type, lr.low, lr.high, lr.log) == ("float", 1e-5, 1e-3, True)
    assert {"xgboost.max_depth", "xgboost.learning_rate", "xgboost.subsample", "transformer.dropout"} <= set(specs)
    # each model searches only its own sections
    assert set(space.for_model("transformer").keys) == {"transformer.n_layers", "transformer.dropout", "optim.lr", "optim.batch_size"}
    assert all(k.startswith("xgboost.") for k in space.for_model("xgboost").keys)
    assert DEFAULT_SPACE.is_file()
    cpu = load_space("cpu")  # the shipped CPU-size space, by name
    assert {p.key: p for p in cpu.params}["transformer.n_layers"].choices == (1, 2, 3)
    assert set(cpu.keys) == set(space.keys)


@pytest.mark.parametrize(
    ("entry_key", "entry", "needle"),
    [
        ("optim.lrr", {"type": "float", "low": 1e-5, "high": 1e-3}, "did you mean 'optim.lr'"),
        ("optim", {"type": "float", "low": 1e-5, "high": 1e-3}, "not a config key"),
        ("optim.lr", {"type": "uniform", "low": 1e-5, "high": 1e-3}, "'type' must be one of"),
        ("optim.lr", {"type": "float", "low": 1e-5}, "needs 'high'"),
        ("optim.lr", {"type": "float", "low": 1e-3, "high": 1e-5}, "'low' must be below 'high'"),
        ("optim.lr", {"type": "float", "low": 0.0, "high": 1e-3, "log": True}, "log scale needs low > 0"),
        ("optim.lr", {"type": "float", "low": "small", "high": 1e-3}, "'low' must be a number"),
        ("optim.lr", {"type": "float", "low": 1e-5, "high": 1e-3, "lgo": True}, "unknown field(s) ['lgo']"),
        ("optim.batch_size", {"type": "categorical", "choices": []}, "'choices' must be a non-empty list"),
        ("optim.batch_size", {"type": "categorical", "choices": [32, "big"]}, "value 'big' is not valid"),
        ("transformer.dropout", {"type": "float", "low": 0.0, "high": 1.5}, "value 1.5 is not valid"),
        ("xgboost.max_depth", {"type": "int", "low": 2.5, "high": 8}, "'low' must be an integer"),
        ("optim.lr", [1e-5, 1e-3], "expected a mapping"),
    ],
)
def test_malformed_space_names_the_key(tmp_path: Path, entry_key: str, entry: Any, needle: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"optim.epochs": {"type": "int", "low": 1, "high": 5}, entry_key: entry}))
    with pytest.raises(ValueError) as err:
        load_space(path)
    msg = str(err.value)
    assert str(path) in msg and f"search-space key {entry_key!r}" in msg and needle in msg, msg


def test_space_without_keys_for_the_model_is_an_error() -> None:
    space = space_from_dict({"xgboost.max_depth": {"type": "int", "low": 2, "high": 4}})
    with pytest.raises(ValueError, match="no key for model 'transformer'"):
        space.for_model("transformer")
    with pytest.raises(ValueError, match="unknown model 'svm'"):
        space.for_model("svm")


def test_cli_rejects_a_malformed_space(tmp_path: Path, files: dict[str, Path]) -> None:
    from typer.testing import CliRunner

    from signlang.cli import app

    bad = tmp_path / "bad.yaml"
    bad.write_text("transformer.n_layer: {type: categorical, choices: [4, 6]}\n")
    res = CliRunner().invoke(app, ["tune", "--data", str(files["data"]), "--out", str(tmp_path / "o"),
                                   "--config", str(files["config"]), "--space", str(bad), "--no-track"])
    assert res.exit_code == 2
    assert "'transformer.n_layer'" in res.output and "did you mean 'transformer.n_layers'" in res.output
    assert not (tmp_path / "o").exists()  # nothing ran


# ----------------------------------------------------------------------------------------------
# the search


def test_search_prunes_a_bad_trial_and_writes_a_loadable_best_yaml(tmp_path: Path, clips: ClipSet, base: TrainConfig) -> None:
    """Trial 0 (a good lr) finishes and sets the median; trial 1 (lr 1e-9: the network stays at its
    initial guess) is below it at epoch 1, and the median pruner (1 start-up trial, no warm-up)
    stops it there."""
    space = space_from_dict(SPACE)
    good, bad = {"optim.lr": 5e-3, "transformer.n_layers": 1}, {"optim.lr": 1e-9, "transformer.n_layers": 1}
    res = run_tune(clips, tmp_path, base, space=space, n_trials=3, split=SPLIT, pruner_startup_trials=1,
                   pruner_warmup_epochs=0, enqueue=[good, bad], enqueue_base=False, track=False, progress=False)
    study = _study(tmp_path)
    trials = study.get_trials()
    assert [t.params for t in trials[:2]] == [good, bad]
    t0, t1 = trials[0], trials[1]
    assert t0.state.name == "COMPLETE" and sorted(t0.intermediate_values) == [1, 2, 3]
    assert t0.intermediate_values[1] > t1.intermediate_values[1]  # the premise of the pruning
    assert t1.state.name == "PRUNED" and list(t1.intermediate_values) == [1] and t1.user_attrs["pruned_at_epoch"] == 1
    assert count_finished(study) == 3 == res.trials_run_now
    assert res.states.get("PRUNED", 0) >= 1

    # the objective is the best epoch's validation macro-F1, and the best trial is the best complete one
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    best = max(complete, key=lambda t: t.value)
    assert res.best_value == pytest.approx(best.value) == pytest.approx(max(best.intermediate_values.values()))
    assert res.best_value > 1 / 3 + 0.2  # clearly above chance on three easy signs

    # best.yaml: the base config with the best values merged, loadable unchanged
    cfg = load_config(res.best_config)
    expected = flatten_config(merge_overrides(base, best.params))
    assert flatten_config(cfg) == expected
    assert cfg.optim.lr == pytest.approx(best.params["optim.lr"]) and cfg.transformer.d_model == base.transformer.d_model

    # plots and report; the validation part comes from the training part only (never the test part)
    for name in ("history", "importances"):
        assert Path(res.plots[name]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(Path(res.report).read_text())
    train_idx, test_idx = split_indices(clips, SPLIT, seed=base.seed)
    fit_idx, val_idx = validation_indices(clips, train_idx, SPLIT, base.seed)
    assert report["split"]["n_fit"] == len(fit_idx) and report["split"]["n_validation"] == len(val_idx)
    assert report["split"]["n_test_held_out"] == len(test_idx) > 0
    assert [t["number"] for t in report["trials"]] == [0, 1, 2]


def test_best_yaml_trains_with_signlang_train(tmp_path: Path, clips: ClipSet, base: TrainConfig, files: dict[str, Path]) -> None:
    from typer.testing import CliRunner

    from signlang.cli import app

    res = run_tune(files["data"], tmp_path / "tune", base, space=space_from_dict(SPACE), n_trials=1, split=SPLIT,
                   track=False, progress=False)
    assert load_config(res.best_config).optim.lr == base.optim.lr  # the base point is tried first
    out = CliRunner().invoke(app, ["train", "--data", str(files["data"]), "--out", str(tmp_path / "bundle"), "--config",
                                   res.best_config, "--model", "transformer", "--no-track", "--quiet"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "bundle" / "manifest.json").is_file()


def test_rerun_continues_the_study_and_redoes_a_stale_running_trial(tmp_path: Path, clips: ClipSet, base: TrainConfig) -> None:
    space = space_from_dict(SPACE)
    kw: dict[str, Any] = dict(space=space, model="xgboost", split=SPLIT, track=False, progress=False)
    first = run_tune(clips, tmp_path, base, n_trials=2, **kw)
    assert first.trials_run_now == 2
    study = _study(tmp_path, "xgboost")
    before = [(t.number, t.params, t.value) for t in study.get_trials()]
    stale = study.ask()  # what a killed process leaves behind: a RUNNING trial
    stale.suggest_int("xgboost.max_depth", 2, 4)
    second = run_tune(clips, tmp_path, base, n_trials=4, **kw)
    trials = _study(tmp_path, "xgboost").get_trials()
    assert second.stale_failed == [stale.number] and trials[stale.number].state.name == "FAIL"
    assert [(t.number, t.params, t.value) for t in trials[:2]] == before  # earlier trials kept
    assert second.trials_run_now == 2 and count_finished(_study(tmp_path, "xgboost")) == 4
    assert not [t for t in trials if t.state.name == "RUNNING"]
    # the xgboost objective is reported once, at its number of boosting rounds
    t = trials[0]
    assert list(t.intermediate_values) == [t.user_attrs["boosting_rounds"]]
    third = run_tune(clips, tmp_path, base, n_trials=4, **kw)  # nothing missing: nothing runs
    assert third.trials_run_now == 0 and third.best_value == second.best_value
    with pytest.raises(ValueError, match="was run with split='blocked:0.2'"):
        run_tune(clips, tmp_path, base, n_trials=5, **{**kw, "split": "random:0.2"})


def test_a_config_that_fails_every_trial_stops_early_with_the_reason(tmp_path: Path, clips: ClipSet, base: TrainConfig) -> None:
    space = space_from_dict({"data.target_frames": {"type": "categorical", "choices": [32, 48]}})  # > transformer.max_len 16
    res = run_tune(clips, tmp_path, base, space=space, n_trials=10, split=SPLIT, track=False, progress=False)
    assert res.states == {"FAIL": 3} and res.best_config is None and res.trials_run_now == 0
    ((reason, count),) = res.fail_reasons.items()
    assert count == 3 and "transformer.max_len" in reason
    unchecked = dataclasses.replace(base, augment=[{"name": "scale", "lo": 0.9}])  # built without config validation
    with pytest.raises(ValueError, match="base config key 'augment'.*'scale'.*'lo'"):
        run_tune(clips, tmp_path / "b", unchecked,
                 space=space_from_dict(SPACE), n_trials=1, split=SPLIT, track=False, progress=False)


def test_ctrl_c_ends_cleanly_with_the_study_saved(tmp_path: Path, clips: ClipSet, base: TrainConfig,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real = TRIAL_RUNNERS["estimator"]  # xgboost has no runner of its own: the one of every non-network model
    calls = {"n": 0}

    def interrupted_second(trial: Any, inputs: Any, tracker: Any) -> float:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(trial, inputs, tracker)

    monkeypatch.setitem(TRIAL_RUNNERS._entries, "xgboost", interrupted_second)
    res = run_tune(clips, tmp_path, base, space=space_from_dict(SPACE), model="xgboost", n_trials=5, split=SPLIT,
                   track=False, progress=False)
    assert res.interrupted and res.states == {"COMPLETE": 1, "FAIL": 1}
    assert load_config(res.best_config).xgboost.max_depth == res.best_params["xgboost.max_depth"]
    assert "importances: need >= 2 complete trials, have 1" in res.plot_notes and "importances" not in res.plots
    assert Path(res.plots["history"]).is_file()


def test_trials_are_logged_to_mlflow_under_the_search_run(tmp_path: Path, clips: ClipSet, base: TrainConfig) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    res = run_tune(clips, tmp_path, base, space=space_from_dict(SPACE), model="xgboost", n_trials=2, split=SPLIT,
                   track=True, progress=False)
    client = MlflowClient(tracking_uri=f"sqlite:///{(tmp_path / 'mlflow' / 'mlflow.db').resolve()}")
    exp = client.get_experiment_by_name(base.tracking.experiment)
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if r.data.tags.get("kind") == "tune"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parent) == 1 and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent[0].info.run_id}
    values = sorted(r.data.metrics["objective_val_macro_f1"] for r in children)
    assert values[-1] == pytest.approx(res.best_value)
    assert {r.data.params["xgboost.max_depth"] for r in children} <= {"2", "3", "4"}
    assert parent[0].data.metrics["best_val_macro_f1"] == pytest.approx(res.best_value)


# ----------------------------------------------------------------------------------------------
# kill and restart through the CLI, parallel processes


def _cli(files: dict[str, Path], out: Path, trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "signlang", "tune", "--data", str(files["data"]), "--out", str(out), "--config",
            str(files["config"]), "--space", str(files["space"]), "--trials", str(trials), "--no-track", "--quiet", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.mark.slow
def test_killed_cli_search_continues_its_trial_count(tmp_path: Path, files: dict[str, Path]) -> None:
    out, n = tmp_path / "search", 6
    proc = subprocess.Popen(_cli(files, out, n), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = out / "study.db"
    done = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if db.exists():
            try:
                done = count_finished(_study(out))
            except Exception:  # the study is being created
                continue
            if done >= 2:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the search ended before it could be killed"
    killed = _study(out).get_trials()
    kept = [(t.number, t.params, t.state.name) for t in killed if t.state.name in ("COMPLETE", "PRUNED")]
    assert 2 <= len(kept) < n
    running = [t.number for t in killed if t.state.name == "RUNNING"]

    rerun = subprocess.run(_cli(files, out, n), env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    trials = _study(out).get_trials()
    assert count_finished(_study(out)) == n
    assert [(t.number, t.params, t.state.name) for t in trials if t.number in {k[0] for k in kept}] == kept
    assert f"{n - len(kept)} trial(s) finished now" in rerun.stdout
    assert not [t for t in trials if t.state.name == "RUNNING"]
    if running:  # the trial the kill interrupted is failed and redone, not counted
        assert f"trials {running} were left running" in rerun.stdout
        assert all(trials[i].state.name == "FAIL" for i in running)
    assert load_config(out / "best.yaml").transformer.d_model == 16


@pytest.mark.slow
def test_parallel_jobs_share_the_study(tmp_path: Path, clips: ClipSet, base: TrainConfig) -> None:
    res = run_tune(clips, tmp_path, base, space=space_from_dict(SPACE), model="xgboost", n_trials=4, jobs=2, split=SPLIT,
                   track=False, progress=False)
    study = _study(tmp_path, "xgboost")
    assert count_finished(study) == 4 == res.trials_run_now
    assert len({t.number for t in study.get_trials()}) == len(study.get_trials())
    assert res.best_config is not None and load_config(res.best_config).xgboost.n_estimators == 8
    assert np.isfinite(res.best_value)
    assert config_to_dict(base)["seed"] == 3

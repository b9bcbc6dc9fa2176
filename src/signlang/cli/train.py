"""``signlang train``: fit a model bundle (the stacking ensemble by default) on a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from signlang.cli._common import fail, parse_overrides, pct, print_table, user_errors

MODEL_CHOICES = ("transformer", "bilstm", "xgboost", "ensemble")


def resolve_config(config: str | None, overrides: list[str] | None, seed: int | None) -> Any:
    """The TrainConfig from ``--config`` (a YAML path or a shipped name: cpu, train), ``--set`` and ``--seed``.

    Without ``--config`` the hardware decides (train.yaml on CUDA, cpu.yaml otherwise).
    """
    from signlang.training.config import default_config, load_config, merge_overrides, shipped_config_path

    if config is None:
        cfg = default_config()
    elif Path(config).is_file():
        cfg = load_config(config)
    elif Path(config).suffix in (".yaml", ".yml") or "/" in config:
        raise ValueError(f"--config {config}: no such file")
    else:
        cfg = load_config(shipped_config_path(config))
    values = parse_overrides(overrides)
    if seed is not None:
        values["seed"] = seed
    return merge_overrides(cfg, values) if values else cfg


def validation_rows(report: dict[str, Any]) -> list[list[str]]:
    return [[name, pct(s.get("accuracy")), pct(s.get("macro_f1")), pct(s.get("top5_accuracy"))]
            for name, s in report.get("validation_summary", {}).items()]


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @app.command("train")
    def train(
        data: Path = typer.Option(..., "--data", help="Dataset: a .npz (X, y, classes, ...) or a landmark store folder."),
        out: Path = typer.Option(..., "--out", help="Run folder: the model bundle is written here."),
        config: str | None = typer.Option(None, "--config", help="YAML config file, or a shipped one by name (cpu, train). Default: by hardware."),
        split: str | None = typer.Option(None, "--split", help="Hold out a test part to evaluate later: blocked:P | random:P | signer | include50:TRAIN,TEST. Default: none, the bundle trains on every clip."),
        model: str = typer.Option("ensemble", "--model", help="transformer | bilstm | xgboost | ensemble."),
        tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: sqlite in RUN_DIR/mlflow)."),
        no_track: bool = typer.Option(False, "--no-track", help="Do not log the run to MLflow."),
        seed: int | None = typer.Option(None, "--seed", help="Random seed (overrides the config's)."),
        set_: list[str] | None = typer.Option(None, "--set", help="Override a config key: --set optim.epochs=5 (repeatable)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace what RUN_DIR already holds."),
    ) -> None:
        """Train a model bundle: manifest.json, one safetensors per network, XGBoost JSON, report.json.

        By default the bundle trains on every clip of DATA (the model to deploy); validation for
        early stopping and the stacking folds are carved inside. To measure accuracy, train with
        --split (e.g. blocked:0.2) and run `signlang evaluate`, or evaluate on other data.
        """
        if model not in MODEL_CHOICES:
            fail(f"--model {model!r}: expected one of {', '.join(MODEL_CHOICES)}")
        with user_errors():
            cfg = resolve_config(config, set_, seed)
            from signlang.training.pipeline import train_bundle

            report = train_bundle(data, out, cfg, split=split, models=model, tracking_uri=tracking_uri,
                                  track=not no_track, progress=not quiet, overwrite=overwrite)
        sp = report["split"]
        if sp.get("final"):
            typer.echo(f"trained on all {sp['n_train']} clips of {data} (no test part held out: this is the model to deploy; "
                       "to measure accuracy, train with --split blocked:0.2 and run `signlang evaluate`, or evaluate on other data)")
            if report["validation"]:
                print_table(f"out-of-fold scores of the base models ({sp['n_folds']} folds, {sp['fold_protocol']})",
                            ["model", "accuracy", "macro-F1", "top-5"], validation_rows(report))
        else:
            typer.echo(f"trained on {sp['n_fit']} of {sp['n_train'] + sp['n_test_held_out']} clips: "
                       f"{sp['n_test_held_out']} held out as the test part of {sp['spec']} (score them with `signlang evaluate --model {out} --data {data}`), "
                       f"{sp['n_validation']} for validation")
            print_table(f"validation ({sp['spec']}, n={sp['n_validation']})",
                        ["model", "accuracy", "macro-F1", "top-5"], validation_rows(report))
        typer.echo(f"bundle: {out}  (trained in {report['timings']['fit_s']:.1f} s; total {report['timings']['total_s']:.1f} s)")
        tracking = report.get("tracking") or {}
        if tracking.get("run_id"):
            typer.echo(f"mlflow: run {tracking['run_id']} at {tracking['tracking_uri']}")
        elif tracking.get("skipped"):
            typer.echo(f"mlflow: not logged ({tracking['skipped']})")

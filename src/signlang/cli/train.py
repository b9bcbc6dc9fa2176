"""``signlang train``: fit a model bundle (the stacking ensemble by default) on a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from signlang.cli._common import ALL_CELLS_OPTION, AUDIT_OPTION, cells_choice, echo_audit, fail, parse_overrides, pct, print_table, user_errors

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


def check_model_name(model: str, allow_ensemble: bool) -> None:
    """``ValueError`` (naming ``--model``, the known names and the closest) unless ``model`` is registered."""
    from signlang.models.registry import MODELS
    from signlang.training.pipeline import ENSEMBLE

    if allow_ensemble and model == ENSEMBLE:
        return
    try:
        MODELS.canonical(model)
    except ValueError as exc:
        raise ValueError(f"--model: {exc}" + (f" (or {ENSEMBLE})" if allow_ensemble else "")) from None


def launch_workers(nproc: int, data: Path, out: Path, cfg: Any, *, split: str | None, model: str, tracking_uri: str | None,
                   no_track: bool, quiet: bool, overwrite: bool, cells: Any = "auto") -> None:
    """Start ``nproc`` local processes of this same command under torchrun, every one reading the resolved config
    (written to a temporary folder beside ``out``, removed afterwards)."""
    import shutil
    import tempfile

    from signlang.training.config import save_config
    from signlang.training.distributed import launch
    from signlang.training.pipeline import check_workdir

    check_workdir(out, overwrite)  # before any process starts
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".signlang-launch-", dir=out.parent))
    try:
        resolved = tmp / "config.yaml"
        save_config(cfg, resolved)
        argv = ["train", "--data", str(data), "--out", str(out), "--config", str(resolved), "--model", model,
                *(["--split", split] if split is not None else []), *(["--tracking-uri", tracking_uri] if tracking_uri else []),
                *(["--no-track"] if no_track else []), *(["--quiet"] if quiet else []), *(["--overwrite"] if overwrite else [])]
        argv += ["--all-cells"] if cells == "all" else [] if cells == "auto" else ["--audit", str(cells)]
        launch(nproc, argv)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report_lines(report: dict[str, Any], data: Path, out: Path) -> None:
    """What ``signlang train`` prints after a run (rank 0's report)."""
    sp = report["split"]
    echo_audit(sp.get("data"))
    if sp.get("final"):
        typer.echo(f"trained on all {sp['n_train']} clips of {data} (no test part held out: this is the model to deploy; "
                   "to measure accuracy, train with --split blocked:0.2 and run `signlang evaluate`, or evaluate on other data)")
        if report["validation"]:
            print_table(f"out-of-fold scores ({sp['n_folds']} folds, {sp['fold_protocol']})",
                        ["model", "accuracy", "macro-F1", "top-5"], validation_rows(report))
    else:
        typer.echo(f"trained on {sp['n_fit']} of {sp['n_train'] + sp['n_test_held_out']} clips: "
                   f"{sp['n_test_held_out']} held out as the test part of {sp['spec']} (score them with `signlang evaluate --model {out} --data {data}`), "
                   f"{sp['n_validation']} for validation")
        print_table(f"validation ({sp['spec']}, n={sp['n_validation']})",
                    ["model", "accuracy", "macro-F1", "top-5"], validation_rows(report))
    cal = report.get("calibration") or {}
    if cal.get("method") == "temperature":
        typer.echo(f"calibration: temperature {cal['temperature']:.3f} fitted on {cal['fitted_on']} ({cal['n_clips']} clips; "
                   f"there, ECE {cal['ece_before']:.3f} -> {cal['ece_after']:.3f})")
    elif report.get("stacked") and cal.get("why"):
        typer.echo(f"calibration: none ({cal['why']})")
    dist = report.get("distributed") or {}
    procs = f"; {dist['world_size']} processes ({dist['backend']})" if dist.get("world_size", 1) > 1 else ""
    typer.echo(f"bundle: {out}  (trained in {report['timings']['fit_s']:.1f} s; total {report['timings']['total_s']:.1f} s{procs})")
    tracking = report.get("tracking") or {}
    if tracking.get("run_id"):
        typer.echo(f"mlflow: run {tracking['run_id']} at {tracking['tracking_uri']}")
    elif tracking.get("skipped"):
        typer.echo(f"mlflow: not logged ({tracking['skipped']})")


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
        model: str = typer.Option("ensemble", "--model", help="A registered model (an unknown name lists them; signlang.models.registry) or ensemble."),
        tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: sqlite in RUN_DIR/mlflow)."),
        no_track: bool = typer.Option(False, "--no-track", help="Do not log the run to MLflow."),
        seed: int | None = typer.Option(None, "--seed", help="Random seed (overrides the config's)."),
        set_: list[str] | None = typer.Option(None, "--set", help="Override a config key: --set optim.epochs=5 (repeatable)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace what RUN_DIR already holds."),
        nproc: int = typer.Option(1, "--nproc", help="Train on N local processes (torchrun; the networks under DDP, gloo on CPU, NCCL on GPU): the same bundle in OUT. Several nodes: torchrun ... -m signlang train."),
        audit: Path | None = AUDIT_OPTION,
        all_cells: bool = ALL_CELLS_OPTION,
    ) -> None:
        """Train a model bundle: manifest.json, one safetensors per network, XGBoost JSON, report.json.

        By default the bundle trains on every clip of DATA (the model to deploy); validation for
        early stopping and the stacking folds are carved inside. To measure accuracy, train with
        --split (e.g. blocked:0.2) and run `signlang evaluate`, or evaluate on other data.
        With --nproc N the same bundle trains on N processes (torchrun on this same command; the
        networks under DDP, the other models on rank 0, which alone writes).
        """
        if nproc < 1:
            fail(f"--nproc must be >= 1, got {nproc}")
        with user_errors():
            check_model_name(model, allow_ensemble=True)
            cfg = resolve_config(config, set_, seed)
            cells = cells_choice(audit, all_cells)
            if nproc > 1:
                launch_workers(nproc, data, out, cfg, split=split, model=model, tracking_uri=tracking_uri, no_track=no_track,
                               quiet=quiet, overwrite=overwrite, cells=cells)
                return
            from signlang.training.pipeline import train_bundle

            report = train_bundle(data, out, cfg, split=split, models=model, tracking_uri=tracking_uri,
                                  track=not no_track, progress=not quiet, overwrite=overwrite, cells=cells)
        if "split" in report:  # rank 0 (or the one process) reports; the other ranks of a torchrun launch say nothing
            report_lines(report, data, out)

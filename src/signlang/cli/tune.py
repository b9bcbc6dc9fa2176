"""``signlang tune``: Optuna hyper-parameter search for one base model, resumable and pruned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from signlang.cli._common import ALL_CELLS_OPTION, AUDIT_OPTION, cells_choice, fail, print_table, user_errors

def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def top_rows(result: Any, limit: int) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the top complete trials (best first) for the terminal table."""
    keys = sorted({k for r in result.top_trials for k in r["params"]})
    rows = [[str(r["number"]), f"{r['value']:.4f}", *[_fmt(r["params"].get(k, "-")) for k in keys],
             "-" if r["duration_s"] is None else f"{r['duration_s']:.1f}"] for r in result.top_trials[:limit]]
    short = [k.rsplit(".", 1)[-1] for k in keys]
    heads = [s if short.count(s) == 1 else k for s, k in zip(short, keys)]  # 'lr', but 'transformer.dropout' if ambiguous
    return ["trial", "val macro-F1", *heads, "seconds"], rows


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @app.command("tune")
    def tune(
        data: Path = typer.Option(..., "--data", help="Dataset: a .npz (X, y, classes, ...) or a landmark store folder."),
        out: Path = typer.Option(..., "--out", help="Search folder: study.db, best.yaml, tune_report.json, plots."),
        config: str | None = typer.Option(None, "--config", help="Base YAML config, or a shipped one by name (cpu, train). Default: by hardware."),
        space: str | None = typer.Option(None, "--space", help="Search-space YAML, or a shipped one by name: seed (configs/space.yaml), cpu. Default: by hardware, as --config (seed with CUDA, cpu otherwise)."),
        trials: int = typer.Option(20, "--trials", help="Total finished trials (COMPLETE + PRUNED) of the study; a re-run adds only the missing ones."),
        timeout: float | None = typer.Option(None, "--timeout", help="Stop starting trials after this many seconds."),
        model: str = typer.Option("transformer", "--model", help="A registered model (an unknown name lists them; signlang.models.registry)."),
        storage: str | None = typer.Option(None, "--storage", help="Optuna storage URL (default: sqlite:///OUT/study.db)."),
        study_name: str | None = typer.Option(None, "--study-name", help="Study name (default: signlang-MODEL)."),
        jobs: int = typer.Option(1, "--jobs", help="Parallel processes running trials against the storage."),
        split: str = typer.Option("blocked:0.2", "--split", help="Held-out protocol; validation is carved from its training part the same way."),
        seed: int | None = typer.Option(None, "--seed", help="Seed of the split, the sampler and training (overrides the config's)."),
        pruner: str = typer.Option("median", "--pruner", help="median | hyperband | none (fed the per-epoch validation macro-F1)."),
        prune_startup: int = typer.Option(2, "--prune-startup", help="Trials that finish before the median pruner prunes."),
        prune_warmup: int = typer.Option(1, "--prune-warmup", help="Epochs of each trial before it may be pruned."),
        set_: list[str] | None = typer.Option(None, "--set", help="Override a base config key: --set optim.epochs=5 (repeatable)."),
        tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: sqlite in OUT/mlflow)."),
        no_track: bool = typer.Option(False, "--no-track", help="Do not log the trials to MLflow."),
        top: int = typer.Option(10, "--top", help="Rows of the top-trials table."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
        audit: Path | None = AUDIT_OPTION,
        all_cells: bool = ALL_CELLS_OPTION,
    ) -> None:
        """Search hyper-parameters with Optuna (TPE, pruning, sqlite storage); writes OUT/best.yaml for `signlang train --config`."""
        with user_errors():
            from signlang.cli.train import check_model_name

            check_model_name(model, allow_ensemble=False)
        if trials < 1:
            fail(f"--trials must be >= 1, got {trials}")
        if jobs < 1:
            fail(f"--jobs must be >= 1, got {jobs}")
        with user_errors():
            from signlang.cli.train import resolve_config
            from signlang.training.tune import load_space, run_tune

            cfg = resolve_config(config, set_, seed)
            from signlang.training.tune import default_space_name

            search_space = load_space(space)
            if space is None:
                typer.echo(f"search space: {default_space_name()} (chosen by the hardware; --space to change)")
            result = run_tune(data, out, cfg, space=search_space, model=model, n_trials=trials, timeout=timeout,
                              storage=storage, study_name=study_name, jobs=jobs, split=split, seed=seed,
                              pruner=pruner, pruner_startup_trials=prune_startup, pruner_warmup_epochs=prune_warmup,
                              track=not no_track, tracking_uri=tracking_uri, progress=not quiet, cells=cells_choice(audit, all_cells))
        if result.audit is not None:
            from signlang.datasets.audit import describe_audit

            typer.echo(describe_audit(result.audit))
        if result.interrupted:
            typer.echo("interrupted: the study is saved; run the same command again to continue", err=True)
        if result.stale_failed:
            typer.echo(f"trials {result.stale_failed} were left running by an earlier process: marked FAIL and redone")
        for reason, count in sorted(result.fail_reasons.items(), key=lambda kv: -kv[1]):
            typer.echo(f"{count} trial(s) failed: {reason}", err=True)
        columns, rows = top_rows(result, top)
        states = ", ".join(f"{k.lower()} {v}" for k, v in sorted(result.states.items()))
        print_table(f"top trials of {result.study_name} ({states})", columns, rows)
        if result.best_config:
            typer.echo(f"best: trial {result.best_trial}, validation macro-F1 {result.best_value:.4f} -> {result.best_config}")
        else:
            typer.echo("no complete trial yet: best.yaml not written")
        for note in result.plot_notes:
            typer.echo(f"plot skipped: {note}")
        typer.echo(f"study: {result.storage} ({result.trials_run_now} trial(s) finished now, {result.elapsed_s:.1f} s); "
                   f"report: {result.report}")

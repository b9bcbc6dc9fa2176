"""``signlang benchmark accuracy``: our models and the ensemble beside LR and MiniRocket baselines."""

from __future__ import annotations

from pathlib import Path

import typer

from signlang.cli._common import pct, print_table, user_errors

DEFAULT_DATA = Path("../shared/data/traduttore_asl_mediapipe/traduttore_asl_mediapipe.npz")


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @benchmark_app.command("accuracy")
    def accuracy(
        data: Path = typer.Option(DEFAULT_DATA, "--data", help="Dataset (.npz or landmark store); default: the traduttore ASL set."),
        split: str = typer.Option("blocked:0.2", "--split", help="Main protocol (blocked:P, random:P, signer, include50:...)."),
        optimistic_split: str = typer.Option("random:0.2", "--optimistic-split", help="Extra protocol reported as optimistic; 'none' to skip."),
        out: Path = typer.Option(Path("docs/benchmarks/accuracy.md"), "--out", help="Markdown table (a .json with every number is written beside it)."),
        config: str | None = typer.Option(None, "--config", help="YAML config or shipped name (default: by hardware)."),
        set_: list[str] | None = typer.Option(None, "--set", help="Config override key=value (repeatable)."),
        baselines: str = typer.Option("lr,minirocket", "--baselines", help="Comma-separated baselines (lr, minirocket) or 'none'."),
        single: bool = typer.Option(True, "--single/--no-single", help="Also train each base model alone."),
        seed: int | None = typer.Option(None, "--seed", help="Seed (overrides the config's)."),
        keep: Path | None = typer.Option(None, "--keep", help="Keep the trained bundles in this folder (e.g. for `benchmark latency`)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    ) -> None:
        """Accuracy, macro-F1, training time and inference ms/clip of baselines, each model and the ensemble."""
        from signlang.cli.train import resolve_config

        with user_errors():
            cfg = resolve_config(config, set_, seed)
            from signlang.training.benchmark import run_accuracy_benchmark, write_results

            names = () if baselines.strip().lower() == "none" else tuple(b.strip() for b in baselines.split(",") if b.strip())
            result = run_accuracy_benchmark(
                data, cfg, split=split, optimistic_split=None if optimistic_split.lower() == "none" else optimistic_split,
                baselines=names, single_models=single, keep_bundles=keep, progress=not quiet,
            )
            md, js = write_results(result, out)
        rows = [[r["model"], r["split"] + (" (optimistic)" if r.get("optimistic") else ""), pct(r["accuracy"]),
                 pct(r["macro_f1"]), "-" if r["train_s"] is None else f"{r['train_s']:.1f} s", f"{r['infer_ms_per_clip']:.3f}"]
                for r in result["rows"]]
        print_table(f"accuracy benchmark ({result['setup']['n_clips']} clips, {result['setup']['n_classes']} classes)",
                    ["model", "split", "accuracy", "macro-F1", "train", "ms/clip"], rows)
        typer.echo(f"wrote {md} and {js}")

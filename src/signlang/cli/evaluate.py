"""``signlang evaluate``: score a bundle on the held-out part of a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from signlang.cli._common import ALL_CELLS_OPTION, AUDIT_OPTION, MODEL_REQUIRED, cells_choice, echo_audit, model_dir, pct, print_table, user_errors


def summary_rows(report: dict[str, Any]) -> list[list[str]]:
    lat = report.get("inference_ms_per_clip", {})
    return [[name, pct(s.get("accuracy")), pct(s.get("macro_f1")), pct(s.get("top5_accuracy")),
             "-" if s.get("ece") is None else f"{s['ece']:.3f}", f"{lat[name]:.3f}" if name in lat else "-"]
            for name, s in report["summary"].items()]


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        model: str = MODEL_REQUIRED,
        data: Path = typer.Option(..., "--data", help="Dataset (.npz or landmark store)."),
        split: str | None = typer.Option(None, "--split", help="Test protocol; default: the one the bundle was trained with (every clip for a bundle trained without --split). 'all' = every clip."),
        out: Path = typer.Option(..., "--out", help="Folder for report.json and confusion_matrix.png."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
        allow_overlap: bool = typer.Option(False, "--allow-overlap", help="Score clips the bundle trained on too (refused by default)."),
        audit: Path | None = AUDIT_OPTION,
        all_cells: bool = ALL_CELLS_OPTION,
    ) -> None:
        """Accuracy, macro-F1, top-5 and per-class scores for every base model and the ensemble, scored through
        the predictor exactly as `signlang predict` answers (its rules for clips with nobody in them included)."""
        with user_errors():
            from signlang.inference.evaluate import evaluate_bundle

            report = evaluate_bundle(model_dir(model), data, split, out_dir=out, progress=not quiet, allow_overlap=allow_overlap,
                                     cells=cells_choice(audit, all_cells))
        sp = report["split"]
        echo_audit(report.get("data"))
        print_table(f"test part of {sp['spec']} (seed {sp['seed']}, n={sp['n_test']})",
                    ["model", "accuracy", "macro-F1", "top-5", "ECE", "ms/clip"], summary_rows(report))
        kinds = report.get("answers", {})
        typer.echo("answers: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in kinds.items()))
        for note in report.get("notes", []):
            typer.echo(f"note: {note}")
        typer.echo(f"wrote {out / 'report.json'} and {out / 'confusion_matrix.png'}")

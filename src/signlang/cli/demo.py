"""``signlang demo``: train, evaluate and predict end to end on synthetic signs (no data needed)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from signlang.cli._common import pct, print_table, user_errors


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Path | None = typer.Option(None, "--out", help="Folder for the synthetic data, the bundle and the reports "
                                        "(default: ~/.cache/signlang/demo, $XDG_CACHE_HOME/signlang/demo; an earlier demo there is replaced)."),
        seed: int = typer.Option(0, "--seed", help="Random seed of the synthetic data and the training."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    ) -> None:
        """Synthetic signs -> the whole ensemble (CPU, demo-sized) -> held-out signers -> one prediction."""
        # One thread per library: measured 52 s wall with OMP_NUM_THREADS=1 against 8 min with the
        # default (torch's and XGBoost's OpenMP pools spin against each other on 2 shared cores).
        if "OMP_NUM_THREADS" not in os.environ:
            os.environ["OMP_NUM_THREADS"] = "1"
            import torch

            torch.set_num_threads(1)
        typer.echo("signlang demo: SYNTHETIC signs (procedural bodies and hands) - the numbers show the code works, not real-world accuracy.")
        with user_errors():
            from signlang.demo import default_demo_dir, run_demo

            summary = run_demo(default_demo_dir() if out is None else out, seed=seed, progress=not quiet)
        sp = summary["split"]
        print_table(
            f"held-out synthetic signers {', '.join(summary['test_signers'])} (n={sp['n_test']}, {summary['n_classes']} classes)",
            ["model", "accuracy", "macro-F1", "top-5"],
            [[m, pct(s.get("accuracy")), pct(s.get("macro_f1")), pct(s.get("top5_accuracy"))] for m, s in summary["test"].items()],
        )
        p = summary["prediction"]
        best = ", ".join(f"{t['sign']} {100 * t['prob']:.1f}%" for t in p["top_k"])
        typer.echo(f"predict {p['clip_id']} (true: {p['true_sign']}): {best}")
        t = summary["timings"]
        typer.echo(f"done in {t['total_s']:.1f} s (training {t['train_s']:.1f} s). Files: {summary['files']['bundle']}, "
                   f"{summary['files']['report']}, {summary['files']['confusion_matrix']}")

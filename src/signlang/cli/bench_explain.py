"""``signlang benchmark explain``: faithfulness of the explanations (model randomisation, deletion).

Arguments only; the measurement is :mod:`signlang.bench.explain`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from signlang.cli._common import model_dir, user_errors


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @benchmark_app.command("explain")
    def bench_explain(
        model: str = typer.Option(..., "--model", help="Run folder (model bundle) trained on the training part of --split of --data, or a pretrained name."),
        data: Path | None = typer.Option(None, "--data", help="Dataset (.npz or store). Default: the shared traduttore_asl_mediapipe.npz."),
        split: str = typer.Option("blocked:0.2", "--split", help="Held-out protocol; clips are drawn from its test part."),
        n_clips: int = typer.Option(30, "--n-clips", min=2, help="How many test clips to draw at random (idle and hand-less clips included)."),
        fraction: float = typer.Option(0.2, "--fraction", min=0.01, max=0.99, help="Share of frames to hide (and occlusion window)."),
        random_draws: int = typer.Option(10, "--random-draws", min=1, help="Random frame sets per clip for the chance level."),
        frame_method: str = typer.Option("occlusion", "--frame-method", help="occlusion | gradcam+occlusion | combined | gradcam | ig"),
        seed: int = typer.Option(0, "--seed", help="Seed of the clip draw and of the random frame sets."),
        out: Path | None = typer.Option(None, "--out", help="Write OUT.md and OUT.json (e.g. runs/explain_bench/report)."),
    ) -> None:
        """Faithfulness of the explanations: model randomisation (Spearman) and deletion of top vs random frames."""
        from signlang.bench.common import write_report
        from signlang.bench.explain import run, render

        with user_errors():
            rec = run(model_dir(model), data, split=split, n_clips=n_clips, fraction=fraction, seed=seed,
                      random_draws=random_draws, frame_method=frame_method)
            text = render(rec)
            typer.echo(text)
            if out is not None:
                md, js = write_report(out, text, rec)
                typer.echo(f"wrote {md} and {js}")

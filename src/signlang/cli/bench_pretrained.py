"""``signlang benchmark pretrained``: rebuild the pretrained model shipped inside the package."""

from __future__ import annotations

from pathlib import Path

import typer

from signlang.cli._common import user_errors


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @benchmark_app.command("pretrained")
    def pretrained(
        out: Path = typer.Option(Path("src/signlang/pretrained"), "--out", help="Folder of the pretrained models (index.json + one folder per model)."),
        name: str = typer.Option("asl-cafe", "--name", help="Name of the model (its folder)."),
        config: str = typer.Option("cpu", "--config", help="Shipped config the model is trained with."),
        combiner: str | None = typer.Option(None, "--combiner", help="Override ensemble.combiner (default: the config's)."),
        models: str | None = typer.Option(None, "--models", help="Comma-separated base models, overriding ensemble.models."),
    ) -> None:
        """Train the joint model (traduttore + asl_crowd_3signs, every clip) from ../shared/data and pin it by sha256."""
        with user_errors():
            from signlang.bench.pretrained import build_pretrained

            r = build_pretrained(out, name=name, config=config, combiner=combiner,
                                 models=[m.strip() for m in models.split(",") if m.strip()] if models else None)
        typer.echo(f"wrote {out / name} ({r['bytes'] / 1e6:.2f} MB, {len(r['classes'])} signs, trained in {r['fit_s'] / 60:.1f} min)")

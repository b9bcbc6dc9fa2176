"""``signlang extract``: videos -> landmark store (its speed: ``signlang benchmark extract``, in ``bench/``)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer


class PoseFormat(str, Enum):
    npz = "npz"
    pose = "pose"


class Engine(str, Enum):
    local = "local"
    ray = "ray"


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    app.command("extract")(extract)


def extract(
    input_path: Path = typer.Argument(..., metavar="INPUT", help="A video or .pose file, or a folder walked recursively."),
    out: Path = typer.Argument(..., metavar="OUT", help="Landmark store folder (clips/, manifest.csv, errors.csv)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, help="Worker processes, or Ray actors (default: the CPU count)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Thin frames to this rate (never adds frames)."),
    max_side: int = typer.Option(640, "--max-side", min=0, help="Shrink frames whose longer side exceeds this (0 = never)."),
    split_csv: Optional[list[str]] = typer.Option(
        None, "--split-csv", help="INCLUDE-50 split CSV (name contains train/test, or train=PATH); repeatable."
    ),
    glosses: Optional[Path] = typer.Option(None, "--glosses", help="normalized_glosses.csv: folder name -> gloss."),
    fmt: PoseFormat = typer.Option(PoseFormat.npz, "--format", help="npz: store only; pose: also write OUT/pose/<clip_id>.pose."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
    engine: Engine = typer.Option(Engine.local, "--engine", help="local: a process pool here; ray: actors on a Ray cluster (pip install 'signlang[ray]')."),
    address: Optional[str] = typer.Option(
        None, "--address", help="With --engine ray: the cluster (auto, or HOST:PORT of the head); default: start Ray locally."
    ),
) -> None:
    """Extract MediaPipe Holistic landmarks (T, 75, 3) from videos into a resumable landmark store."""
    from signlang.landmarks.extract import extract_to_store
    from signlang.landmarks.store import ERRORS

    if address is not None and engine != Engine.ray:
        typer.echo("error: --address needs --engine ray", err=True)
        raise typer.Exit(2)
    try:
        runner = None
        if engine == Engine.ray:
            from signlang.landmarks.extract_ray import ray_runner

            runner = ray_runner(address)
        summary = extract_to_store(
            input_path, out, workers=workers, fps=fps, max_side=max_side, split_csvs=split_csv or (),
            glosses=glosses, formats=(fmt.value,), progress=progress, runner=runner,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(summary.line())
    if summary.failed:
        typer.echo(f"{summary.failed} input(s) could not be used; reasons in {out / ERRORS}", err=True)
    if summary.succeeded == 0:
        typer.echo(f"error: none of the {summary.failed} input(s) could be read; see {out / ERRORS}", err=True)
        raise typer.Exit(1)

"""``signlang benchmark spot`` and ``signlang benchmark live``: continuous recognition accuracy/latency
and real-time behaviour, printed as markdown (and written with --out)."""

from __future__ import annotations

from pathlib import Path

import typer

from signlang.cli._common import model_dir, user_errors


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @benchmark_app.command("spot")
    def bench_spot(
        model: str = typer.Option(..., "--model", help="Bundle trained on the blocked:0.2 training part of traduttore_asl_mediapipe."),
        streams: int = typer.Option(40, help="Test streams."),
        val_streams: int = typer.Option(20, help="Validation streams (window choice)."),
        out: Path | None = typer.Option(None, "--out", help="Write OUT.md and OUT.json."),
    ) -> None:
        """F1 at temporal IoU >= 0.5, WER vs fixed windows, latency and recognizer frames/s on sign streams."""
        from signlang.bench.common import write_report
        from signlang.bench.spot import run_spot_benchmark

        with user_errors():
            md, data = run_spot_benchmark(str(model_dir(model)), n_streams=streams, n_val_streams=val_streams)
        typer.echo(md)
        if out is not None:
            write_report(out, md, data)

    @benchmark_app.command("live")
    def bench_live(
        model: str = typer.Option(..., "--model", help="Model bundle, or a pretrained name."),
        seconds: float = typer.Option(60.0, help="Length of the stream."),
        server: bool = typer.Option(False, "--server", help="Also measure a real server's CPU per live user in both page modes."),
        out: Path | None = typer.Option(None, "--out", help="Write OUT.md and OUT.json."),
    ) -> None:
        """A real video at 30 FPS for a minute: fps processed, drops, lag over time; recognizer frames/s."""
        from signlang.bench.common import write_report
        from signlang.bench.live import run_live_benchmark, server_cpu_per_user

        path = str(model_dir(model))
        with user_errors():
            md, data = run_live_benchmark(path, seconds=seconds)
            if server:
                md_server, data["server_cpu_per_user"] = server_cpu_per_user(path)
                md += "\n\n" + md_server
        typer.echo(md)
        if out is not None:
            write_report(out, md, data)

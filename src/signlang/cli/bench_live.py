"""``signlang benchmark spot`` and ``signlang benchmark live``: continuous recognition accuracy/latency
and real-time behaviour, printed as markdown (and written with --out)."""

from __future__ import annotations

from pathlib import Path

import typer

from signlang.cli._common import model_dir, user_errors


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @benchmark_app.command("spot")
    def bench_spot(
        model: str | None = typer.Option(None, "--model", help="Bundle trained on the blocked:0.2 training part of traduttore_asl_mediapipe."),
        streams: int = typer.Option(40, help="Test streams (of each kind)."),
        val_streams: int = typer.Option(20, help="Validation streams (the gate's window choice)."),
        crowd_model: Path | None = typer.Option(None, "--crowd-model", help="Cross-signer bundle made with --train-crowd: also score streams of its held-out people."),
        train_crowd: Path | None = typer.Option(None, "--train-crowd", help="Train the cross-signer bundle here first (kept cells of asl_crowd_8signs, people held out by signer)."),
        config: str = typer.Option("cpu", "--config", help="Config of --train-crowd (a YAML file or a shipped name)."),
        crowd_model_name: str = typer.Option("xgboost", "--crowd-models", help="Model of --train-crowd (a registered name or ensemble)."),
        set_: list[str] = typer.Option([], "--set", help="Config override of --train-crowd, e.g. --set segmenter.enabled=true (repeatable)."),
        windows: str = typer.Option("0.33,0.4,0.5,0.67,0.8", "--windows", help="Gate windows (s) to choose from on the validation streams, comma-separated."),
        latency_streams: int = typer.Option(10, "--latency-streams", help="Test streams replayed frame by frame for the latency."),
        memory_minutes: float = typer.Option(0.0, "--memory-minutes", help="Also trace the recognizer's memory over this many minutes of stream."),
        out: Path | None = typer.Option(None, "--out", help="Write OUT.md and OUT.json."),
    ) -> None:
        """F1 at temporal IoU >= 0.5, WER, boundary error of the segmenter, the window gate and fixed windows; latency and frames/s."""
        from signlang.bench.common import write_report
        from signlang.bench.spot import run_spot_benchmark, train_crowd_bundle

        with user_errors():
            if train_crowd is not None:
                from signlang.cli.train import resolve_config
                from signlang.training.config import merge_overrides

                cfg = resolve_config(config, set_, None)
                if crowd_model_name != "ensemble":
                    cfg = merge_overrides(cfg, {"ensemble.models": [crowd_model_name]})
                train_crowd_bundle(str(train_crowd), cfg)
                typer.echo(f"cross-signer bundle written to {train_crowd}")
                crowd_model = crowd_model or train_crowd
            if model is None:
                return
            try:
                window_list = tuple(float(w) for w in windows.split(","))
            except ValueError:
                raise ValueError(f"--windows: expected seconds separated by commas, got {windows!r}") from None
            md, data = run_spot_benchmark(str(model_dir(model)), n_streams=streams, n_val_streams=val_streams, windows=window_list,
                                          latency_streams=latency_streams,
                                          crowd_model=None if crowd_model is None else str(crowd_model), memory_minutes=memory_minutes)
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

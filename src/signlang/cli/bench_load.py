"""``signlang benchmark load``: Locust load test of a real ``signlang serve`` (see signlang.bench.load)."""

from __future__ import annotations

from pathlib import Path

import typer

from signlang.cli._common import fail, model_dir, user_errors


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @benchmark_app.command("load")
    def load(
        model: str = typer.Option(..., "--model", help="Model served (bundle with onnx/, an ONNX export folder, or a pretrained name)."),
        scenario: list[str] = typer.Option(["json", "npy", "batch", "mixed"], "--scenario", help="json | npy | batch | mixed (repeatable)."),
        users: int = typer.Option(50, "--users", help="Concurrent landmark clients."),
        duration_s: int = typer.Option(60, "--duration", help="Seconds per scenario."),
        video_users: int = typer.Option(4, "--video-users", help="Clients uploading real videos (mixed scenario)."),
        batch: int = typer.Option(32, "--batch", help="Clips per .npy batch request (batch scenario)."),
        batch_users: int = typer.Option(8, "--batch-users", help="Clients posting batches (batch scenario)."),
        frames: int = typer.Option(64, "--frames", help="Frames per clip (real clips resampled)."),
        wait_ms: float = typer.Option(0.0, "--wait-ms", help="Mean think time between a client's requests (0 = closed loop)."),
        serve_arg: list[str] = typer.Option(["--backend", "onnx"], "--serve-arg", help="Argument passed to `signlang serve` (repeatable)."),
        doc: Path | None = typer.Option(None, "--doc", help="Write the section into this markdown file (e.g. docs/benchmarks.md)."),
        out: Path | None = typer.Option(None, "--out", help="Also write OUT.md and OUT.json."),
    ) -> None:
        """Requests/s, clips/s, p50/p95/p99 and status codes per scenario, plus a latency-over-time plot."""
        if users < 1 or duration_s < 1 or batch < 1:
            fail("--users, --duration and --batch must be >= 1")
        from signlang.bench.common import write_report
        from signlang.bench.load import markdown, replace_section, run_load

        plot_png = (doc.parent if doc else (out.parent if out else Path("."))) / "benchmarks" / "load_latency.png"
        with user_errors():
            report = run_load(model_dir(model), scenarios=tuple(scenario), users=users, duration_s=duration_s, video_users=video_users,
                              batch=batch, batch_users=batch_users, frames=frames, wait_ms=wait_ms, serve_args=list(serve_arg),
                              plot_png=plot_png)
        rel = str(plot_png.relative_to(doc.parent)) if doc else str(plot_png)
        text = markdown(report, rel)
        typer.echo(text)
        if doc is not None:
            replace_section(doc, "Service under load (Locust)", text)
            typer.echo(f"wrote the section into {doc} and {plot_png}")
        if out is not None:
            write_report(out, text, report)

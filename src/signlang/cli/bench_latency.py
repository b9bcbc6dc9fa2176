"""``signlang benchmark latency``: classifier latency (PyTorch vs ONNX Runtime), per-video
end-to-end time and the HTTP service's overhead, printed as markdown."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from signlang.cli._common import model_dir, user_errors


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @benchmark_app.command("latency")
    def latency(
        model: str = typer.Option(..., "--model", help="Run folder (model bundle) written by `signlang train`, or a pretrained name."),
        onnx: Path | None = typer.Option(None, "--onnx", help="Its ONNX export (default: <model>/onnx if made from it, else a fresh export)."),
        videos: Path | None = typer.Option(None, "--videos", help="Folder of videos for the end-to-end timing (default: ../shared/data/videos_real_signing if present)."),
        repeats: int = typer.Option(200, "--repeats", help="Timed calls per measurement (batch 32 uses repeats/8)."),
        budget_s: float = typer.Option(10.0, "--budget-s", help="Time budget per measurement."),
        out: Path | None = typer.Option(None, "--out", help="Also write the numbers as JSON here."),
        stages_only: bool = typer.Option(False, "--stages-only", help="Only the per-clip compute by stage (normalisation, feature table, pooling, models, the predictor call), batch 1 and 256, on real clips."),
        baseline_src: Path | None = typer.Option(None, "--baseline-src", help="With --stages-only: the src folder of an older checkout, timed too (in a subprocess) for a before/after table."),
        data: Path | None = typer.Option(None, "--data", help="traduttore_asl_mediapipe.npz for the stage timing (default: the shared data)."),
    ) -> None:
        """Batch-1 p50/p99 (1 thread) and batch-32 clips/s (2 threads) on 64-frame clips, per model and ensemble."""
        from signlang._io import write_json
        from signlang.bench.common import shared_data_dir

        if stages_only:
            from signlang.bench import stages

            npz = data or shared_data_dir() / "traduttore_asl_mediapipe" / "traduttore_asl_mediapipe.npz"
            with user_errors():
                if not npz.is_file():
                    raise FileNotFoundError(f"{npz}: real clips for the stage timing not found (pass --data)")
                if baseline_src is not None and not (baseline_src / "signlang").is_dir():
                    raise FileNotFoundError(f"{baseline_src}: not a src folder with a signlang package (--baseline-src)")
                kw = {"repeats": repeats, "budget_s": budget_s}
                report = (stages.compare(model, onnx, npz, baseline_src, **kw) if baseline_src is not None
                          else {"after": stages.stage_times(model, onnx, npz, **kw)})
            typer.echo(stages.markdown(report))
            if out is not None:
                write_json(out, report)
                typer.echo(f"wrote {out}")
            return
        from signlang.bench.latency import (
            LatencyReport,
            classifier_latency,
            list_videos,
            machine_info,
            markdown,
            service_cpu_overhead,
            service_overhead,
            video_latency,
        )
        from signlang.inference.predictor import Predictor

        model_path = model_dir(model)
        if videos is None:
            default = shared_data_dir() / "videos_real_signing"
            videos = default if default.is_dir() else None
        with user_errors():
            report = LatencyReport(machine=machine_info())
            with Predictor(model_path, backend="onnx", threads=1, onnx_dir=onnx) as predictor:
                report.rows = classifier_latency(model_path, Path(predictor.model_info["onnx_dir"]), repeats=repeats, budget_s=budget_s)
                report.service = service_overhead(predictor, repeats=repeats, budget_s=budget_s)
                report.service["cpu"] = service_cpu_overhead(Path(predictor.model_info["onnx_dir"]), predictor, requests=repeats)
                if videos is not None:
                    report.videos = video_latency(predictor, list_videos(videos))
        typer.echo(markdown(report))
        if out is not None:
            write_json(out, report.to_dict())
            typer.echo(f"wrote {out}")
        json.dumps(report.to_dict())  # fail loudly here if anything is not JSON-able

"""``signlang serve``: the HTTP service (FastAPI + uvicorn) around one loaded model."""

from __future__ import annotations

from pathlib import Path

import typer

from signlang.cli._common import MODEL_OPTION, fail, model_dir, user_errors


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    from signlang.serve.settings import DEFAULT_BACKEND, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_THREADS, DEFAULT_WORKERS, ServiceSettings

    d = ServiceSettings()  # every default below is the settings' own (one place)

    @app.command("serve")
    def serve(
        model: str | None = MODEL_OPTION,
        host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to listen on (loopback by default)."),
        port: int = typer.Option(DEFAULT_PORT, "--port", help="TCP port."),
        backend: str = typer.Option(DEFAULT_BACKEND, "--backend", help="onnx (ONNX Runtime) or torch (PyTorch eager)."),
        workers: int = typer.Option(DEFAULT_WORKERS, "--workers", help="Worker processes (uvicorn's process manager; a dead one is replaced; 0 = one per CPU core)."),
        max_upload_mb: float = typer.Option(d.max_upload_mb, "--max-upload-mb", help="Largest accepted request body / video upload."),
        max_concurrency: int = typer.Option(d.max_concurrency, "--max-concurrency", help="Batches classified at once per worker (0 = one per CPU core; 1 = bigger batches for single-clip clients)."),
        limit_concurrency: int = typer.Option(d.limit_concurrency, "--limit-concurrency", help="Open connections + requests per worker; past it 503 at once (0 = no limit)."),
        backlog: int = typer.Option(d.backlog, "--backlog", help="Connections the kernel queues before they are accepted."),
        keep_alive_s: float = typer.Option(d.keep_alive_s, "--keep-alive", help="Seconds an idle keep-alive connection stays open."),
        max_queue: int = typer.Option(d.max_queue, "--max-queue", help="Landmark clips waiting per worker; past it 503 + Retry-After."),
        queue_deadline_s: float = typer.Option(d.queue_deadline_s, "--queue-deadline", help="Seconds a clip may wait before it gets 503."),
        max_batch: int = typer.Option(d.max_batch, "--max-batch", help="Clips per model call (dynamic batching)."),
        batch_window_ms: float = typer.Option(d.batch_window_ms, "--batch-window-ms", help="Under load, how long a batch waits for more clips."),
        video_concurrency: int = typer.Option(d.max_video_concurrency, "--video-concurrency", help="Videos/explanations at once (0 = half the cores)."),
        max_video_seconds: float = typer.Option(d.max_video_seconds, "--max-video-seconds", help="Longest video (from its header)."),
        max_video_side: int = typer.Option(d.max_video_side, "--max-video-side", help="Largest frame width or height (from the header)."),
        max_video_frames: int = typer.Option(d.max_video_frames, "--max-video-frames", help="Most frames in a video (from the header)."),
        api_keys_file: Path | None = typer.Option(d.api_keys_file, "--api-keys-file", help="File of API keys, one a line (also $SIGNLANG_API_KEYS)."),
        cors_origin: list[str] = typer.Option(list(d.cors_origins), "--cors-origin", help="Origin allowed by CORS (repeatable)."),
        rate_limit: float = typer.Option(d.rate_limit_per_s, "--rate-limit", help="Requests/s per client (0 = off); past it 429."),
        threads: int = typer.Option(DEFAULT_THREADS, "--threads", help="Intra-op threads per model call."),
        min_confidence: float | None = typer.Option(d.min_confidence, "--min-confidence", min=0.0, max=1.0,
                                                    help="Answers below this top-1 probability say low_confidence (default: the bundle's, 0.5)."),
        live_max_connections: int = typer.Option(d.live.max_connections, "--live-max-connections", help="Open /ws/live connections at once."),
        live_max_frames_per_s: float = typer.Option(d.live.max_frames_per_s, "--live-max-fps", help="Frames/s per /ws/live connection (past it closed, 1008)."),
    ) -> None:
        """Serve POST /predict, /predict/landmarks, /explain, /admin/reload; GET /signs, /health, /ready, /metrics, /docs."""
        if backend not in ("onnx", "torch"):
            fail(f"--backend must be onnx or torch, got {backend!r}")
        model = model_dir(model)
        if max_upload_mb <= 0 or max_concurrency < 0 or not 0 < port < 65536 or workers < 0 or max_batch < 1 or max_queue < 1:
            fail("--max-upload-mb must be > 0, --max-concurrency/--workers >= 0, --max-batch/--max-queue >= 1 and --port in 1..65535")
        if limit_concurrency < 0 or backlog < 1 or keep_alive_s <= 0:
            fail("--limit-concurrency must be >= 0, --backlog >= 1 and --keep-alive > 0")
        if workers == 0:
            import os

            workers = max(1, os.cpu_count() or 1)
        if live_max_connections < 1 or live_max_frames_per_s <= 0:
            fail("--live-max-connections must be >= 1 and --live-max-fps > 0")
        from dataclasses import replace

        from signlang.inference.predictor import Predictor
        from signlang.serve.server import run

        settings = ServiceSettings(
            max_upload_mb=max_upload_mb, max_concurrency=max_concurrency, max_queue=max_queue, queue_deadline_s=queue_deadline_s,
            max_batch=max_batch, batch_window_ms=batch_window_ms, max_video_concurrency=video_concurrency,
            max_video_seconds=max_video_seconds, max_video_side=max_video_side, max_video_frames=max_video_frames,
            api_keys_file=str(api_keys_file) if api_keys_file else None, cors_origins=tuple(cors_origin),
            rate_limit_per_s=rate_limit, min_confidence=min_confidence, limit_concurrency=limit_concurrency, backlog=backlog,
            keep_alive_s=keep_alive_s,
            live=replace(d.live, max_connections=live_max_connections, max_frames_per_s=live_max_frames_per_s),
        )
        with user_errors():
            keys = settings.api_keys()
            predictor = Predictor(model, backend=backend, threads=threads,  # fails here, cleanly, on a bad model
                                  progress=lambda msg: typer.echo(msg, err=True))  # a bundle's first ONNX export, kept in RUN_DIR/onnx
        auth = f", {len(keys)} API key(s)" if keys else ", no API keys"
        typer.echo(f"serving {len(predictor.classes)} signs from {model} ({backend}, {workers} worker(s){auth}) "
                   f"on http://{host}:{port} (docs at /docs)")
        if workers > 1:
            predictor.close()
            predictor = None
        run(str(model), backend=backend, threads=threads, settings=settings, host=host, port=port, workers=workers,
            predictor=predictor)

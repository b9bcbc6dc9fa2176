"""``signlang serve``: the HTTP service (FastAPI + uvicorn) around one loaded model."""

from __future__ import annotations

from pathlib import Path

import typer

from signlang.cli._common import fail, user_errors


def register(app: typer.Typer, benchmark_app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        model: Path = typer.Option(..., "--model", help="Run folder (model bundle) or ONNX export folder."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
        port: int = typer.Option(8000, "--port", help="TCP port."),
        backend: str = typer.Option("onnx", "--backend", help="onnx (ONNX Runtime) or torch (PyTorch eager)."),
        max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", help="Largest accepted video upload."),
        max_concurrency: int = typer.Option(0, "--max-concurrency", help="Predictions at once; more get 503 (0 = one per CPU core)."),
        threads: int = typer.Option(1, "--threads", help="Intra-op threads per prediction."),
    ) -> None:
        """Serve POST /predict, POST /predict/landmarks, GET /signs, /health, /metrics and /docs."""
        if backend not in ("onnx", "torch"):
            fail(f"--backend must be onnx or torch, got {backend!r}")
        if max_upload_mb <= 0 or max_concurrency < 0 or not 0 < port < 65536:
            fail("--max-upload-mb must be > 0, --max-concurrency >= 0 and --port in 1..65535")
        import uvicorn

        from signlang.inference.predictor import Predictor
        from signlang.serve.app import ServiceSettings, create_app

        with user_errors():
            predictor = Predictor(model, backend=backend, threads=threads)
        settings = ServiceSettings(max_upload_mb=max_upload_mb, max_concurrency=max_concurrency)
        typer.echo(f"serving {len(predictor.classes)} signs from {model} ({backend}) on http://{host}:{port} (docs at /docs)")
        try:
            uvicorn.run(create_app(predictor, settings), host=host, port=port, log_level="info")
        finally:
            predictor.close()

"""Running the app with uvicorn: in the foreground (the CLI, one or several worker processes) or in
a background thread (tests, benchmarks)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI

from signlang.serve.settings import ENV_SETTINGS, ServiceSettings


def process_options(settings: ServiceSettings) -> dict[str, Any]:
    """uvicorn's connection handling from ``settings``: past ``limit_concurrency`` open connections or
    requests a worker answers 503 (never resets), the listen backlog, the keep-alive timeout; the
    event loop and HTTP parser are uvloop and httptools (the serve extra installs both; uvicorn's
    ``auto`` falls back to asyncio and h11 without them)."""
    return dict(limit_concurrency=settings.limit_concurrency or None, backlog=settings.backlog,
                timeout_keep_alive=max(1, int(round(settings.keep_alive_s))), loop="auto", http="auto")


def run(model: str, *, backend: str, threads: int, settings: ServiceSettings, host: str, port: int, workers: int = 1,
        log_level: str = "info", predictor: Any = None) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (graceful: in-flight requests finish, bounded).

    ``workers > 1``: uvicorn's process manager runs that many worker processes on one socket and
    replaces a worker that dies; each worker loads the model itself (``app_from_env``). SIGHUP to
    the manager restarts the workers one by one (each loads the model again); with one worker,
    SIGHUP reloads the model in place (``POST /admin/reload`` without a body does the same).
    ``predictor``: the model already loaded (one worker only; default: load ``model``).
    """
    from signlang.landmarks.extract import filter_native_logs

    filter_native_logs()  # MediaPipe's C++ log lines are not the service's log (workers inherit the filter)
    os.environ[ENV_SETTINGS] = json.dumps({"model": str(model), "backend": backend, "threads": threads,
                                           "settings": json.loads(settings.to_json())})
    from signlang.serve.security import log_config

    common: dict[str, Any] = dict(host=host, port=port, log_level=log_level, log_config=log_config(),
                                  timeout_graceful_shutdown=max(1, int(round(settings.shutdown_timeout_s))),
                                  **process_options(settings))
    if workers > 1:
        uvicorn.run("signlang.serve.app:app_from_env", factory=True, workers=workers, **common)
        return
    from signlang.inference.predictor import Predictor
    from signlang.serve.app import create_app

    predictor = predictor or Predictor(model, backend=backend, threads=threads)
    # uvicorn re-raises a captured SIGTERM after its graceful shutdown, which would end the
    # process with -15; after a clean shutdown (in-flight requests done) the exit status is 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.run(create_app(predictor, settings, loader=lambda path: Predictor(path, backend=backend, threads=threads)), **common)
    finally:
        predictor.close()


class BackgroundServer:
    """A real uvicorn server on ``host:port`` in a daemon thread; ``with`` starts and stops it.

    ``port=0`` picks a free port; :attr:`url` gives the address once started.
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, startup_timeout_s: float = 20.0) -> None:
        service = getattr(app.state, "service", None)  # the app's own settings, as `signlang serve` runs them
        options = process_options(service.settings) if service is not None else {}
        self.config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                                     timeout_graceful_shutdown=10, **options)
        self.server = uvicorn.Server(self.config)
        self.startup_timeout_s = startup_timeout_s
        self._thread = threading.Thread(target=self.server.run, name="signlang-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn stopped during start-up (port in use?)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"uvicorn did not start within {self.startup_timeout_s} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

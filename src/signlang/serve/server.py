"""Running the app with uvicorn: in the foreground (the CLI) or in a background thread (tests, benchmarks)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI


class BackgroundServer:
    """A real uvicorn server on ``host:port`` in a daemon thread; ``with`` starts and stops it.

    ``port=0`` picks a free port; :attr:`url` gives the address once started.
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, startup_timeout_s: float = 20.0) -> None:
        self.config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
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
        self._thread.join(timeout=10)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

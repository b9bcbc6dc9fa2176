"""Settings of one service: limits, batching, queueing, access control, the live socket's limits.

One frozen :class:`ServiceSettings` is shared by every route of an app (predict, explain, admin,
live); its defaults are the defaults of ``signlang serve`` (``cli/serve.py`` reads them from here).
It round-trips through JSON (:meth:`to_json` / :meth:`from_json`) so that ``signlang serve
--workers N`` hands the same settings to every worker process through one environment variable.
API keys are never put in that JSON: each worker reads them from ``SIGNLANG_API_KEYS`` (comma
separated) or from the file named by ``api_keys_file`` / ``SIGNLANG_API_KEYS_FILE`` (one key a line).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_SETTINGS = "SIGNLANG_SERVE_SETTINGS"  # JSON of ServiceSettings + model, for worker processes
ENV_API_KEYS = "SIGNLANG_API_KEYS"
ENV_API_KEYS_FILE = "SIGNLANG_API_KEYS_FILE"
# how the process is started (``signlang serve``, :func:`signlang.serve.server.run`), beside the app's settings
DEFAULT_HOST = "127.0.0.1"  # loopback unless asked
DEFAULT_PORT = 8000
DEFAULT_BACKEND = "onnx"
DEFAULT_WORKERS = 1
DEFAULT_THREADS = 1  # intra-op threads per model call


@dataclass(frozen=True)
class LiveLimits:
    """Limits of one app's WebSocket ``/ws/live`` (sent to clients in ``hello`` and ``/live/config``)."""

    max_connections: int = 16
    max_message_bytes: int = 256 * 1024
    max_frames_per_s: float = 90.0
    burst_frames: int = 180
    max_bad_frames: int = 50
    max_queue: int = 32  # landmark frames waiting for the recognizer; JPEG frames wait at most 1
    topk_every_s: float = 0.25
    jpeg_max_side: int = 640


@dataclass(frozen=True)
class ServiceSettings:
    """Limits of one app. ``0`` for a count means "derive from the CPU count"."""

    # uploads and video limits (checked from the container header, before decoding)
    max_upload_mb: float = 50.0
    max_video_seconds: float = 120.0
    max_video_side: int = 4096  # largest width or height of a frame
    max_video_frames: int = 7200
    max_video_concurrency: int = 0  # videos decoded at once (0 = half the CPU cores, at least 1)
    max_video_queue: int = 8  # videos waiting for a slot; more get 503
    video_deadline_s: float = 30.0  # a video still waiting for a slot after this gets 503
    upload_root: str | None = None  # parent of the per-request private folders (None = system temp)
    # landmark predictions: bounded queue + dynamic batching
    # batches classified at once per worker (0 = one per CPU core). One consumer makes bigger batches (the
    # model code holds the GIL; measured quiet: mean batch 25 with one, 8 with two, same answers/s), but
    # with .npy batch clients a request then waits for every batch before it and more of them pass the
    # queue deadline (503); see docs/serving.md.
    max_concurrency: int = 0
    max_queue: int = 512  # clips waiting; past this a request gets 503 at once
    queue_deadline_s: float = 2.0  # a clip still waiting after this gets 503
    batch_window_ms: float = 2.0  # how long a batch waits for more clips after the first
    max_batch: int = 32  # clips in one model call
    retry_after_s: int = 1
    # the process (uvicorn): every request ends with an HTTP status, never a reset connection
    limit_concurrency: int = 1024  # open connections + requests per worker; past it uvicorn answers 503 at once
    backlog: int = 2048  # connections the kernel holds before accept()
    keep_alive_s: float = 30.0  # an idle keep-alive connection is closed after this (uvicorn's 5 s races busy clients)
    # access
    api_keys_file: str | None = None
    cors_origins: tuple[str, ...] = ()
    rate_limit_per_s: float = 0.0  # per client (API key, else address); 0 = off
    rate_limit_burst: int = 0  # bucket size (0 = 2 s worth of rate_limit_per_s)
    allow_reload: bool = True  # POST /admin/reload (needs an API key when keys are set)
    shutdown_timeout_s: float = 20.0  # SIGTERM: how long in-flight requests may take to finish
    # answers
    min_confidence: float | None = None  # low_confidence below this top-1 probability (None = the bundle's, 0.5)
    # the live socket
    live: LiveLimits = field(default_factory=LiveLimits)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def concurrency(self) -> int:
        return self.max_concurrency if self.max_concurrency > 0 else max(1, os.cpu_count() or 1)

    @property
    def video_concurrency(self) -> int:
        return self.max_video_concurrency if self.max_video_concurrency > 0 else max(1, (os.cpu_count() or 1) // 2)

    @property
    def burst(self) -> int:
        return self.rate_limit_burst if self.rate_limit_burst > 0 else max(1, int(2 * self.rate_limit_per_s))

    def api_keys(self) -> frozenset[str]:
        """The accepted keys: ``SIGNLANG_API_KEYS`` plus the key file (empty = no auth)."""
        keys = {k.strip() for k in os.environ.get(ENV_API_KEYS, "").split(",") if k.strip()}
        path = self.api_keys_file or os.environ.get(ENV_API_KEYS_FILE)
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"API key file {path}: cannot be read ({exc.strerror or exc})") from None
            keys |= {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}
        return frozenset(keys)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ServiceSettings":
        d: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown service settings: {sorted(unknown)}")
        if "cors_origins" in d:
            d["cors_origins"] = tuple(d["cors_origins"])
        if "live" in d:
            unknown = set(d["live"]) - {f.name for f in fields(LiveLimits)}
            if unknown:
                raise ValueError(f"unknown live settings: {sorted(unknown)}")
            d["live"] = LiveLimits(**d["live"])
        return cls(**d)

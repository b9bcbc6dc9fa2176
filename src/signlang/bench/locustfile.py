"""Locust users of ``signlang benchmark load`` (run by Locust in its own process; see bench/load.py).

Reads ``SIGNLANG_LOAD_SPEC`` (JSON): ``{"bodies": folder, "records": csv path, "wait_ms": think time,
"users": [class names]}``. The folder holds ``clip_*.json`` / ``clip_*.npy`` (one clip each),
``clip_*.f32`` + ``clip_*.shape`` (the same clips as raw float32 and their shape), ``batch_*.npy`` (N clips
each) and ``video_*`` (real videos). Every request is recorded as
``time, name, status, ms, clips`` into the records CSV when Locust stops; a 429/503 is counted
as a deliberate refusal, not as a failure; status 0 is a request that ended without an HTTP
status (a dropped or refused connection, a client timeout).
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

from locust import FastHttpUser, between, constant, events, task

SPEC = json.loads(os.environ.get("SIGNLANG_LOAD_SPEC", "{}"))
_BODIES = Path(SPEC.get("bodies", "."))
_RECORDS: list[tuple[float, str, int, float, int]] = []
_WAIT = SPEC.get("wait_ms", 0) / 1000.0


def _load(pattern: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted(_BODIES.glob(pattern))]


def _wait():
    return constant(0) if _WAIT <= 0 else between(0.5 * _WAIT, 1.5 * _WAIT)


class _Recorded(FastHttpUser):
    abstract = True
    wait_time = _wait()
    network_timeout = 180.0  # a video waits up to 30 s for a slot, then MediaPipe runs; a timeout is a client error, not the server's
    name = "?"
    clips = 1
    bodies: list[bytes] = []
    i = 0

    def _post(self, path: str, **kwargs) -> None:
        t0 = time.perf_counter()
        with self.client.post(path, name=self.name, catch_response=True, **kwargs) as r:
            ms = (time.perf_counter() - t0) * 1e3
            _RECORDS.append((time.time(), self.name, int(r.status_code or 0), ms, self.clips))
            if r.status_code in (200, 429, 503):
                r.success()
            else:
                r.failure(f"status {r.status_code}")


class JsonClipUser(_Recorded):
    name = "landmarks json"

    def on_start(self) -> None:
        self.bodies = _load("clip_*.json")

    @task
    def predict(self) -> None:
        self.i += 1
        self._post("/predict/landmarks", data=self.bodies[self.i % len(self.bodies)], headers={"content-type": "application/json"})


class NpyClipUser(_Recorded):
    name = "landmarks npy"

    def on_start(self) -> None:
        self.bodies = _load("clip_*.npy")

    @task
    def predict(self) -> None:
        self.i += 1
        self._post("/predict/landmarks", data=self.bodies[self.i % len(self.bodies)], headers={"content-type": "application/x-npy"})


class RawClipUser(_Recorded):
    """One clip as raw float32 (``application/octet-stream``, the shape in ``?shape=``): no header to parse."""

    name = "landmarks raw"

    def on_start(self) -> None:
        self.bodies = [(b, s) for b, s in zip(_load("clip_*.f32"), _load("clip_*.shape"))]

    @task
    def predict(self) -> None:
        self.i += 1
        body, shape = self.bodies[self.i % len(self.bodies)]
        self._post(f"/predict/landmarks?shape={shape.decode()}", data=body, headers={"content-type": "application/octet-stream"})


class NpyBatchUser(_Recorded):
    name = "landmarks npy batch"
    clips = int(SPEC.get("batch", 32))

    def on_start(self) -> None:
        self.bodies = _load("batch_*.npy")

    @task
    def predict(self) -> None:
        self.i += 1
        self._post("/predict/landmarks", data=self.bodies[self.i % len(self.bodies)], headers={"content-type": "application/x-npy"})


class VideoUser(_Recorded):
    name = "video"
    fixed_count = int(SPEC.get("video_users", 0))

    def on_start(self) -> None:
        self.paths = sorted(_BODIES.glob("video_*"))

    @task
    def predict(self) -> None:
        self.i += 1
        path = self.paths[self.i % len(self.paths)]
        self._post("/predict", files={"video": (path.name, path.read_bytes(), "video/mp4")})


@events.quitting.add_listener
def _write_records(environment, **_kwargs) -> None:
    out = SPEC.get("records")
    if out:
        with open(out, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["time", "name", "status", "ms", "clips"])
            w.writerows(_RECORDS)

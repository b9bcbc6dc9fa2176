"""SIGHUP with `--workers 2`: uvicorn's manager restarts the workers one by one, each loads the model
folder again, and requests sent meanwhile all end with an HTTP status (no dropped connection).
A real `signlang serve` process on loopback; bounded in requests and time. Slow (two worker starts)."""

from __future__ import annotations

import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _model_id(url: str) -> str | None:
    try:
        r = httpx.get(f"{url}/health", timeout=5)
        return r.json()["model_id"] if r.status_code == 200 else None
    except httpx.TransportError:
        return None


def test_sighup_with_two_workers_reloads_without_dropping_requests(tiny_onnx: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_onnx, model)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "signlang", "serve", "--model", str(model), "--backend", "onnx",
                               "--workers", "2", "--port", str(port)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while _model_id(url) is None:
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        old_id = _model_id(url)

        clip = np.random.default_rng(0).uniform(0.2, 0.8, size=(32, 258)).astype(np.float32)
        buf = io.BytesIO()
        np.save(buf, clip, allow_pickle=False)
        body = buf.getvalue()
        statuses: list[int] = []
        dropped: list[str] = []
        stop = threading.Event()

        def load() -> None:  # one new connection per request, at most 400 requests or 90 s
            started = time.monotonic()
            while not stop.is_set() and len(statuses) + len(dropped) < 400 and time.monotonic() - started < 90:
                try:
                    r = httpx.post(f"{url}/predict/landmarks", content=body, headers={"content-type": "application/x-npy"}, timeout=30)
                    statuses.append(r.status_code)
                except httpx.TransportError as exc:
                    dropped.append(type(exc).__name__)
                time.sleep(0.02)

        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        time.sleep(1.0)
        manifest = json.loads((model / "manifest.json").read_text())  # a new model version in the same folder
        manifest["created"] = "reloaded-by-test"
        (model / "manifest.json").write_text(json.dumps(manifest))
        server.send_signal(signal.SIGHUP)

        new_seen, deadline = 0, time.monotonic() + 90
        while new_seen < 8:  # eight answers in a row from the new version: both workers restarted
            assert server.poll() is None, "the manager exited on SIGHUP"
            assert time.monotonic() < deadline, f"the workers did not reload within 90 s (still {_model_id(url)})"
            current = _model_id(url)
            new_seen = new_seen + 1 if current not in (None, old_id) else 0
            time.sleep(0.2)
        time.sleep(1.0)
        stop.set()
        worker.join(timeout=60)
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=60)

    assert statuses, out[-3000:]
    assert not dropped, f"{len(dropped)} requests ended without an HTTP status ({sorted(set(dropped))}); {len(statuses)} answered"
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert statuses.count(200) >= len(statuses) // 2

"""`signlang serve` with the shipped model starts in seconds: it loads the ONNX export shipped in the
package (never exports at start) and answers `/ready` within 5 s of the process starting.

Timing on a shared CI machine is noisy, so the start is tried up to three times and passes when one
start is within the bound; an export at start (about 44 s before the shipped model carried its
`onnx/` folder) fails every try."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

READY_WITHIN_S = 5.0
TRIES = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_once(tmp_path) -> tuple[float | None, str]:
    """Seconds from process start to the first `/ready` 200 (None past 30 s) and the server's output."""
    port = _free_port()
    started = time.monotonic()
    server = subprocess.Popen([sys.executable, "-m", "signlang", "serve", "--port", str(port)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready_after = None
    try:
        with httpx.Client(timeout=2) as client:
            while time.monotonic() - started < 30 and server.poll() is None:
                try:
                    if client.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                        ready_after = time.monotonic() - started
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    return ready_after, out


def test_serve_with_the_shipped_model_is_ready_within_seconds(tmp_path) -> None:
    times = []
    for _ in range(TRIES):
        ready_after, out = _start_once(tmp_path)
        assert ready_after is not None, f"the server never answered /ready 200 within 30 s:\n{out[-3000:]}"
        assert "export" not in out.lower(), f"the shipped model was exported at start:\n{out[-3000:]}"
        times.append(round(ready_after, 2))
        if ready_after <= READY_WITHIN_S:
            return
    pytest.fail(f"/ready answered after {times} s in {TRIES} starts (bound {READY_WITHIN_S} s)")

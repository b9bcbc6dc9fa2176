"""Faults against a real ``signlang serve`` process (uvicorn) on a free loopback port.

kill -9 of one of two workers under load, SIGTERM with requests in flight, SIGHUP reload.
Every loop is bounded in count and time; every process started here is stopped here.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from bundle_fixtures import tiny_clips
from signlang.landmarks.layout import to_258

NPY = {"content-type": "application/x-npy"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _npy(i: int = 0) -> bytes:
    buf = io.BytesIO()
    np.save(buf, to_258(tiny_clips().landmarks[i % 5]), allow_pickle=False)
    return buf.getvalue()


def _children(pid: int) -> set[int]:
    """The worker processes of uvicorn's manager ``pid`` (spawned children, not the resource tracker)."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                out.add(int(child))
    return out


@contextmanager
def serve(model: Path, *args: str, timeout_s: float = 90.0) -> Iterator[tuple[subprocess.Popen, str]]:
    """``signlang serve`` in a subprocess; yields (process, base url) once /health answers."""
    port = _free_port()
    cmd = [sys.executable, "-m", "signlang", "serve", "--model", str(model), "--backend", "onnx", "--port", str(port), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"signlang serve exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"signlang serve did not answer within {timeout_s} s")
            time.sleep(0.2)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _load(url: str, stop: threading.Event, results: list, clients: int = 4, max_s: float = 60.0) -> list[threading.Thread]:
    def run(i: int) -> None:
        body = _npy(i)
        deadline = time.monotonic() + max_s
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    r = c.post("/predict/landmarks", content=body, headers=NPY)
                    results.append((time.monotonic(), r.status_code))
                except httpx.TransportError as exc:
                    results.append((time.monotonic(), type(exc).__name__))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    return threads


def _wait_until(cond, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_kill_9_one_of_two_workers_under_load(tiny_onnx: Path) -> None:
    with serve(tiny_onnx, "--workers", "2") as (proc, url):
        assert _wait_until(lambda: len(_children(proc.pid)) >= 2, 60)
        workers = _children(proc.pid)
        stop, results = threading.Event(), []
        threads = _load(url, stop, results)
        assert _wait_until(lambda: len(results) >= 20, 60)
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        replaced = _wait_until(lambda: len(_children(proc.pid) - {victim}) >= 2, 60)
        assert _wait_until(lambda: sum(1 for t, s in results if t > killed_at + 1 and s == 200) >= 20, 60)
        stop.set()
        for t in threads:
            t.join(60)
        new_workers = _children(proc.pid)
    counts = Counter(s for _, s in results)
    failed = [s for _, s in results if s != 200]
    assert replaced and victim not in new_workers and len(new_workers) == 2, (workers, new_workers)
    assert len(failed) <= 4, counts  # at most the killed worker's in-flight requests (one per client)
    assert counts[200] >= 40, counts


@pytest.mark.slow
def test_sigterm_finishes_in_flight_requests_and_exits_0(tiny_onnx: Path) -> None:
    body = _npy(1)
    with serve(tiny_onnx) as (proc, url):
        answers: list = []
        started = threading.Barrier(4)

        def slow_client() -> None:
            def chunks():
                started.wait(30)
                for i in range(0, len(body), len(body) // 8 + 1):  # the body trickles in over ~2 s
                    yield body[i:i + len(body) // 8 + 1]
                    time.sleep(0.25)

            try:
                r = httpx.post(f"{url}/predict/landmarks", content=chunks(), headers=NPY, timeout=60)
                answers.append(r.status_code)
            except httpx.TransportError as exc:
                answers.append(type(exc).__name__)

        clients = [threading.Thread(target=slow_client) for _ in range(3)]
        for c in clients:
            c.start()
        started.wait(30)
        time.sleep(0.5)  # the three requests are in flight, their bodies half sent
        proc.send_signal(signal.SIGTERM)
        for c in clients:
            c.join(60)
        rc = proc.wait(60)
        output = proc.stdout.read() if proc.stdout else ""
    assert answers == [200, 200, 200], (answers, output[-2000:])
    assert rc == 0, output[-2000:]


@pytest.mark.slow
def test_sighup_reloads_the_model_in_place(tiny_onnx: Path) -> None:
    with serve(tiny_onnx) as (proc, url):
        stop, results = threading.Event(), []
        threads = _load(url, stop, results, clients=2)
        assert _wait_until(lambda: len(results) >= 10, 60)
        proc.send_signal(signal.SIGHUP)
        assert _wait_until(lambda: httpx.get(f"{url}/health", timeout=5).json()["reloads"] == 1, 60)
        n = len(results)
        assert _wait_until(lambda: len(results) >= n + 10, 60)
        stop.set()
        for t in threads:
            t.join(60)
    assert {s for _, s in results} == {200}, Counter(s for _, s in results)

"""A bounded load test against a real ``signlang serve`` process on 127.0.0.1 (the ONNX backend, as the
container runs it): concurrent clients on keep-alive connections and on new connections, with the
server's connection limit set below the client count, so that some requests must be refused.

Every request must end with an HTTP status (200, or 503 from the queue or the connection limit; never
a reset or refused connection), and under concurrency the batcher must put clips of several requests
into one model call (its ``signlang_batch_size`` histogram in ``/metrics`` has batches > 1).
"""

from __future__ import annotations

import http.client
import io
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from signlang.bench import load

CLIENTS = 24  # keep-alive clients
FRESH = 12  # clients opening a new connection per request
REQUESTS = 12  # requests per client
LIMIT = 20  # the server's --limit-concurrency: fewer than the clients, so some are refused (503)


def _bodies(traduttore_npz: Path) -> list[tuple[str, bytes, str]]:
    """Real clips (signs, not the idle class) as .npy, raw float32 and a .npy batch of 4."""
    data = np.load(traduttore_npz)
    signs = np.flatnonzero(data["classes"][data["y"]] != "-")[:8]
    clips = data["X"][signs].astype(np.float32)  # (8, 20, 258)
    out = []
    for clip in clips:
        buf = io.BytesIO()
        np.save(buf, clip, allow_pickle=False)
        out.append(("/predict/landmarks", buf.getvalue(), "application/x-npy"))
        out.append((f"/predict/landmarks?shape={clip.shape[0]},{clip.shape[1]}", clip.astype("<f4").tobytes(),
                    "application/octet-stream"))
    buf = io.BytesIO()
    np.save(buf, clips[:4], allow_pickle=False)
    out.append(("/predict/landmarks", buf.getvalue(), "application/x-npy"))
    return out


def test_concurrent_clients_all_get_a_status_and_are_batched(tiny_onnx: Path, traduttore_npz: Path) -> None:
    bodies = _bodies(traduttore_npz)
    outcomes: list[int | str] = []  # an HTTP status, or the exception of a request that got none
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS + FRESH)

    def client(i: int, url: str, keep_alive: bool) -> None:
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        start.wait()
        for j in range(REQUESTS):
            path, body, ctype = bodies[(i * REQUESTS + j) % len(bodies)]
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": ctype})
                r = conn.getresponse()
                r.read()
                got: int | str = r.status
                if r.status == 503 or not keep_alive:
                    conn.close()  # refused: come back on a new connection (http.client reconnects on the next request)
                    time.sleep(0.02 * (1 + i % 5))
            except (OSError, http.client.HTTPException) as exc:
                got = f"{type(exc).__name__}: {exc}"
                conn.close()
            with lock:
                outcomes.append(got)
        conn.close()

    args = ["--backend", "onnx", "--threads", "1", "--limit-concurrency", str(LIMIT), "--max-batch", "32"]
    with load.running_server(tiny_onnx, args, timeout_s=120) as url:
        before = load._scrape(url, tries=1)
        threads = [threading.Thread(target=client, args=(i, url, i < CLIENTS)) for i in range(CLIENTS + FRESH)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        elapsed = time.monotonic() - t0
        hist = load.batch_histogram(before, load._scrape(url, tries=1))
    counts = Counter(outcomes)
    assert len(outcomes) == (CLIENTS + FRESH) * REQUESTS, f"{len(outcomes)} outcomes in {elapsed:.1f} s"
    dropped = {k: v for k, v in counts.items() if isinstance(k, str)}
    assert not dropped, f"requests without an HTTP status: {dropped}"
    assert set(counts) <= {200, 503}, counts
    assert counts[200] >= len(outcomes) // 4 and counts[503] > 0, counts  # the limit answered 503, it did not reset
    # dynamic batching across requests: without it the mean would be (16 x 1 + 4) / 17 = 1.2 clips per model call
    assert hist["clips"] >= counts[200] and hist["mean"] is not None and hist["mean"] > 1.5, hist
    assert set(hist["sizes"]) - {"1", "3-4"}, hist  # some call held more clips than one request sends

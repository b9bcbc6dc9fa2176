"""``signlang benchmark load``: Locust (headless) against a real ``signlang serve`` on loopback.

Scenarios (each ``duration_s``, closed loop, no think time unless ``wait_ms``):

* ``json``  — ``users`` clients posting one real clip as JSON to ``/predict/landmarks``;
* ``npy``   — the same clips as ``.npy`` bodies;
* ``raw``   — the same clips as raw float32 bodies (``application/octet-stream``, ``?shape=``);
* ``batch`` — ``batch_users`` clients posting ``.npy`` batches of ``batch`` clips (throughput);
* ``mixed`` — ``users`` ``.npy`` clients plus ``video_users`` clients uploading real videos.

The clips are real recordings (traduttore_asl_mediapipe, resampled to ``frames`` frames by
nearest frame); the videos are videos_real_signing. Each request is recorded by the locustfile
(time, route, status, latency); the report gives requests/s, clips/s, p50/p95/p99, the count of
each status code, the dropped connections (requests that ended without an HTTP status), the
server's batch-size histogram (``signlang_batch_size`` from ``/metrics``, summed over workers) and
a plot of latency over time. ``url`` benchmarks a server that is already running instead (e.g.
two versions side by side in one run).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from signlang.bench.common import machine_info, machine_line, shared_data_path

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
SCENARIOS = ("json", "npy", "raw", "batch", "mixed")
_USERS = {"json": ["JsonClipUser"], "npy": ["NpyClipUser"], "raw": ["RawClipUser"], "batch": ["NpyBatchUser"],
          "mixed": ["NpyClipUser", "VideoUser"]}  # the locustfile's user classes per scenario
TARGETS = {"landmark_clips_per_s_npy_batch": 1000.0, "single_clip_p99_ms_50_users": 100.0, "single_clip_req_per_s_50_users": 300.0}
DELIBERATE = {429, 503}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare_bodies(folder: Path, *, frames: int, batch: int, n_clips: int = 64, seed: int = 0) -> dict[str, Any]:
    """Write real clips as JSON / .npy bodies, .npy batches and links to real videos into ``folder``."""
    data = np.load(shared_data_path("traduttore_asl_mediapipe", "traduttore_asl_mediapipe.npz"))
    X, y, classes = data["X"], data["y"], data["classes"]
    rng = np.random.default_rng(seed)
    signs = np.flatnonzero(classes[y] != "-")  # clips of real signs (not the idle class)
    pick = rng.choice(signs, size=n_clips, replace=False)
    idx = np.linspace(0, X.shape[1] - 1, frames).round().astype(int)  # nearest-frame resampling to `frames`
    clips = X[pick][:, idx].astype(np.float32)  # (n, frames, 258)
    for i, clip in enumerate(clips):
        (folder / f"clip_{i:03d}.json").write_text(json.dumps({"landmarks": clip.round(5).tolist()}))
        buf = io.BytesIO()
        np.save(buf, clip, allow_pickle=False)
        (folder / f"clip_{i:03d}.npy").write_bytes(buf.getvalue())
        (folder / f"clip_{i:03d}.f32").write_bytes(clip.astype("<f4").tobytes())
        (folder / f"clip_{i:03d}.shape").write_text(",".join(map(str, clip.shape)))
    for b in range(8):
        buf = io.BytesIO()
        np.save(buf, clips[rng.choice(len(clips), size=batch)], allow_pickle=False)
        (folder / f"batch_{b}.npy").write_bytes(buf.getvalue())
    videos = sorted(p for p in shared_data_path("videos_real_signing").iterdir() if p.suffix == ".mp4")
    for v in videos:
        shutil.copy(v, folder / f"video_{v.name}")
    return {"clips": n_clips, "frames": frames, "source": "traduttore_asl_mediapipe", "videos": [v.name for v in videos],
            "json_bytes": (folder / "clip_000.json").stat().st_size, "npy_bytes": (folder / "clip_000.npy").stat().st_size}


class Server(str):
    """The URL of a running ``signlang serve`` (a ``str``), with its process id as ``.pid``."""

    pid: int


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_server(model: Path, serve_args: list[str], timeout_s: float = 300.0) -> Iterator[Server]:
    """``signlang serve`` in a subprocess on a free loopback port; yields its URL; stops it (SIGTERM)."""
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "signlang", "serve", "--model", str(model), "--port", str(port), *serve_args]
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"signlang serve exited with {proc.returncode}:\n{log.read()[-3000:]}")
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"signlang serve did not become ready within {timeout_s} s")
            time.sleep(0.25)
        server = Server(url)
        server.pid = proc.pid
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


def _scrape(url: str, tries: int = 24, want: set[str] | None = None, max_tries: int = 400) -> dict[str, dict[str, float]]:
    """The ``signlang_batch_size`` histogram of each worker process: ``{worker: {le: cumulative count,
    "sum": clips}}``. Each scrape (a new connection) reaches one worker; they are told apart by
    ``signlang_worker_info{pid}`` (a server without it: ``process_start_time_seconds``). At least ``tries`` scrapes, and more (up to ``max_tries``) until
    every worker in ``want`` (those seen before) answered: an idle server tends to hand every new
    connection to the same worker."""
    import httpx

    per_worker: dict[str, dict[str, float]] = {}
    for i in range(max_tries):
        if i >= tries and (want is None or want <= set(per_worker)):
            break
        text = httpx.get(f"{url}/metrics", timeout=10).text
        start = (re.search(r'^signlang_worker_info\{pid="(\d+)"\} ', text, re.M)  # (older servers: the start time)
                 or re.search(r"^process_start_time_seconds ([0-9.e+]+)$", text, re.M))
        values = {le: float(v) for le, v in re.findall(r'^signlang_batch_size_bucket\{le="([^"]+)"\} ([0-9.e+]+)$', text, re.M)}
        m = re.search(r"^signlang_batch_size_sum ([0-9.e+]+)$", text, re.M)
        values["sum"] = float(m.group(1)) if m else 0.0
        per_worker[start.group(1) if start else "?"] = values
    return per_worker


def batch_histogram(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Model calls by batch size between two scrapes, summed over workers: ``{"calls", "clips", "mean",
    "sizes": {"1": n, "2": n, "3-4": n, ...}}`` (the histogram's buckets, not cumulative)."""
    counts: dict[float, float] = defaultdict(float)
    clips = 0.0
    for worker, a in after.items():
        b = before.get(worker, {})  # a worker absent before (new, or never reached) counts from zero
        clips += a.get("sum", 0.0) - b.get("sum", 0.0)
        for le, v in a.items():
            if le != "sum":
                counts[float(le)] += v - b.get(le, 0.0)
    sizes: dict[str, int] = {}
    prev_le, prev_n = 0.0, 0.0
    for le in sorted(counts):
        n = counts[le] - prev_n
        if n > 0:
            lo, hi = int(prev_le) + 1, le
            label = (str(lo) if lo == hi else f"{lo}-{int(hi)}") if hi != float("inf") else f">{int(prev_le)}"
            sizes[label] = int(round(n))
        prev_le, prev_n = le, counts[le]
    calls = counts.get(float("inf"), 0.0)
    if clips < 0 or any(n < 0 for n in counts.values()):  # two workers read as one (an older server whose start times tie)
        return {"calls": None, "clips": None, "mean": None, "sizes": {}}
    return {"calls": int(round(calls)), "clips": int(round(clips)), "mean": clips / calls if calls > 0 else None, "sizes": sizes}


def run_locust(url: str, bodies: Path, records: Path, *, user_classes: list[str], users: int, duration_s: int,
               batch: int, video_users: int, wait_ms: float) -> None:
    spec = {"bodies": str(bodies), "records": str(records), "batch": batch, "video_users": video_users, "wait_ms": wait_ms}
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r", str(users),
           "-t", f"{duration_s}s", "--host", url, "--only-summary", "--stop-timeout", "30", *user_classes]
    env = {**os.environ, "SIGNLANG_LOAD_SPEC": json.dumps(spec), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration_s + 120)
    if not records.is_file():
        raise RuntimeError(f"locust wrote no records (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def summarize(records: Path, duration_s: float) -> dict[str, Any]:
    """Per request name: count, req/s, clips/s, p50/p95/p99 ms (answered requests), status counts."""
    rows: dict[str, list[tuple[float, int, float, int]]] = defaultdict(list)
    with open(records, newline="") as fh:
        for r in csv.DictReader(fh):
            rows[r["name"]].append((float(r["time"]), int(r["status"]), float(r["ms"]), int(r["clips"])))
    out = {}
    for name, rs in rows.items():
        t = np.array([r[0] for r in rs])
        status = Counter(r[1] for r in rs)
        ok = np.array([r[2] for r in rs if r[1] == 200])
        clips_ok = sum(r[3] for r in rs if r[1] == 200)
        span = max(duration_s, float(t.max() - t.min()) if len(t) > 1 else duration_s)
        out[name] = {
            "requests": len(rs), "req_per_s": len(rs) / span, "ok_per_s": len(ok) / span, "clips_per_s": clips_ok / span,
            "p50_ms": float(np.percentile(ok, 50)) if len(ok) else None,
            "p95_ms": float(np.percentile(ok, 95)) if len(ok) else None,
            "p99_ms": float(np.percentile(ok, 99)) if len(ok) else None,
            "status": {str(k): v for k, v in sorted(status.items())},
            "errors": sum(v for k, v in status.items() if k != 200 and k not in DELIBERATE),
            "dropped": status.get(0, 0),  # ended without an HTTP status (reset/refused connection, client timeout)
        }
    return out


def latency_over_time(records: Path, bin_s: float = 2.0) -> dict[str, list[tuple[float, float, float]]]:
    """Per request name: (seconds since start, p50 ms, p99 ms) of answered requests in ``bin_s`` bins."""
    rows: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with open(records, newline="") as fh:
        for r in csv.DictReader(fh):
            if int(r["status"]) == 200:
                rows[r["name"]].append((float(r["time"]), float(r["ms"])))
    out = {}
    for name, rs in rows.items():
        a = np.array(rs)
        t = a[:, 0] - a[:, 0].min()
        bins = (t // bin_s).astype(int)
        out[name] = [(float(b * bin_s), float(np.percentile(a[bins == b, 1], 50)), float(np.percentile(a[bins == b, 1], 99)))
                     for b in np.unique(bins)]
    return out


def plot(series: dict[str, dict[str, list[tuple[float, float, float]]]], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.4), squeeze=False)
    for ax, (scenario, by_name) in zip(axes[0], series.items()):
        for name, pts in by_name.items():
            if not pts:
                continue
            t, p50, p99 = zip(*pts)
            line = ax.plot(t, p50, label=f"{name} p50")[0]
            ax.plot(t, p99, "--", color=line.get_color(), label=f"{name} p99")
        ax.set_title(scenario)
        ax.set_xlabel("seconds")
        ax.set_ylabel("latency ms")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def run_load(model: Path | None, *, scenarios: tuple[str, ...] = SCENARIOS, users: int = 50, duration_s: int = 60,
             video_users: int = 4, batch: int = 32, batch_users: int = 8, frames: int = 64, wait_ms: float = 0.0,
             serve_args: list[str] | None = None, plot_png: Path | None = None, url: str | None = None) -> dict[str, Any]:
    """Run the scenarios against one server (``signlang serve --model model`` started here, or the one at
    ``url``); return the report dict (and draw the plot)."""
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    if (model is None) == (url is None):
        raise ValueError("give either a model to serve or the url of a running server")
    serve_args = serve_args or []
    report: dict[str, Any] = {"machine": machine_info(), "model": str(model or url), "serve_args": serve_args if url is None else [],
                              "url": url, "users": users, "duration_s": duration_s, "video_users": video_users, "batch": batch,
                              "batch_users": batch_users, "wait_ms": wait_ms, "scenarios": {}}
    series: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="signlang-load-") as tmp:
        bodies = Path(tmp) / "bodies"
        bodies.mkdir()
        report["data"] = prepare_bodies(bodies, frames=frames, batch=batch)
        with (running_server(model, serve_args) if url is None else _given(url)) as server_url:
            for sc in scenarios:
                classes = _USERS[sc]
                n, vids = {"batch": (batch_users, 0), "mixed": (users + video_users, video_users)}.get(sc, (users, 0))
                records = Path(tmp) / f"{sc}.csv"
                before, load_before = _scrape(server_url), os.getloadavg()[0]
                run_locust(server_url, bodies, records, user_classes=classes, users=n, duration_s=duration_s, batch=batch,
                           video_users=vids, wait_ms=wait_ms)
                after = _scrape(server_url, want=set(before))
                hist = {**batch_histogram(before, after), "workers_seen": len(after)}
                report["scenarios"][sc] = {"users": n, "by_route": summarize(records, duration_s), "batches": hist,
                                           "mean_batch_size": hist["mean"], "load_1min": [load_before, os.getloadavg()[0]]}
                series[sc] = latency_over_time(records)
    report["latency_over_time"] = series
    if plot_png is not None:
        plot(series, plot_png)
    return report


@contextmanager
def _given(url: str) -> Iterator[str]:
    import httpx

    if httpx.get(f"{url.rstrip('/')}/ready", timeout=10).status_code != 200:
        raise RuntimeError(f"{url}/ready does not answer 200: the server is not ready")
    yield url.rstrip("/")


def markdown(report: dict[str, Any], plot_rel: str | None = None) -> str:
    """The section for docs/benchmarks.md."""
    target = f"`signlang serve {' '.join(report['serve_args'])}`" if not report.get("url") else f"the server at {report['url']}"
    lines = [f"`signlang benchmark load` — Locust {_locust_version()} headless, closed loop "
             f"({'no think time' if not report['wait_ms'] else str(report['wait_ms']) + ' ms think time'}), "
             f"{report['duration_s']} s per scenario, against {target} on loopback; "
             f"Locust runs on the same machine. Clips: {report['data']['clips']} real {report['data']['source']} clips "
             f"resampled to {report['data']['frames']} frames ({report['data']['json_bytes']} B JSON, {report['data']['npy_bytes']} B .npy); "
             f"videos: {len(report['data']['videos'])} real videos.", "", machine_line(report["machine"]), "",
             "| scenario | users | route | requests | req/s | clips/s | p50 ms | p95 ms | p99 ms | status codes | dropped | errors "
             "| mean batch | model calls by batch size | load (1 min) |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---|"]
    for sc, r in report["scenarios"].items():
        for name, s in r["by_route"].items():
            f = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
            codes = ", ".join(f"{k}: {v}" for k, v in s["status"].items())
            mb = "-" if r["mean_batch_size"] is None else f"{r['mean_batch_size']:.1f}"
            sizes = ", ".join(f"{k}: {v}" for k, v in r.get("batches", {}).get("sizes", {}).items()) or "-"
            ld = "-" if "load_1min" not in r else f"{r['load_1min'][0]:.1f} -> {r['load_1min'][1]:.1f}"
            lines.append(f"| {sc} | {r['users']} | {name} | {s['requests']} | {s['req_per_s']:.0f} | {s['clips_per_s']:.0f} | "
                         f"{f(s['p50_ms'])} | {f(s['p95_ms'])} | {f(s['p99_ms'])} | {codes} | {s.get('dropped', 0)} | {s['errors']} "
                         f"| {mb} | {sizes} | {ld} |")
    lines += ["", "Targets (issues 14 and 22):"]
    errors = sum(s["errors"] for r in report["scenarios"].values() for s in r["by_route"].values())
    dropped = sum(s.get("dropped", 0) for r in report["scenarios"].values() for s in r["by_route"].values())
    lines.append(f"- errors other than deliberate 429/503: {errors} ({'met' if errors == 0 else 'NOT met'})")
    lines.append(f"- dropped connections (no HTTP status): {dropped} (target 0: {'met' if dropped == 0 else 'NOT met'})")
    b = report["scenarios"].get("batch", {}).get("by_route", {}).get("landmarks npy batch")
    if b:
        t = TARGETS["landmark_clips_per_s_npy_batch"]
        lines.append(f"- landmark clips/s with .npy batches of {report['batch']}: {b['clips_per_s']:.0f} (target >= {t:g}: "
                     f"{'met' if b['clips_per_s'] >= t else 'NOT met'})")
    for sc, name in (("npy", "landmarks npy"), ("raw", "landmarks raw"), ("json", "landmarks json")):
        s = report["scenarios"].get(sc, {}).get("by_route", {}).get(name)
        if s:
            t = TARGETS["single_clip_req_per_s_50_users"]
            lines.append(f"- single-clip answers/s at {report['users']} users ({sc}): {s['ok_per_s']:.0f} (target >= {t:g}: "
                         f"{'met' if s['ok_per_s'] >= t else 'NOT met'})")
    for sc, name in (("npy", "landmarks npy"), ("raw", "landmarks raw"), ("json", "landmarks json")):
        s = report["scenarios"].get(sc, {}).get("by_route", {}).get(name)
        if s and s["p99_ms"] is not None:
            t = TARGETS["single_clip_p99_ms_50_users"]
            lines.append(f"- single-clip p99 at {report['users']} users ({sc}): {s['p99_ms']:.0f} ms (target <= {t:g} ms: "
                         f"{'met' if s['p99_ms'] <= t else 'NOT met'})")
    if plot_rel:
        lines += ["", f"![latency over time]({plot_rel})"]
    return "\n".join(lines) + "\n"


def _locust_version() -> str:
    try:
        from importlib.metadata import version

        return version("locust")
    except Exception:  # pragma: no cover
        return "?"


def replace_section(doc: Path, heading: str, body: str) -> None:
    """Put ``## heading`` + ``body`` into ``doc``: replace that section if present, else append it."""
    from signlang._io import atomic_write

    text = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    block = f"## {heading}\n\n{body.rstrip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.M | re.S)
    new = pattern.sub(lambda _: block + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    with atomic_write(doc, "w") as fh:
        fh.write(new)

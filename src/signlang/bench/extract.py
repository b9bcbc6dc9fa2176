"""Extraction benchmarks: the per-frame cost of the pipeline, and the engines side by side.

``signlang benchmark extract`` (the default, ``--engine local``):

* **raw**: one process, a plain loop per video: PyAV decode -> RGB ndarray -> ``Holistic.process``
  (a fresh graph per video, nothing converted or written).
* **pipeline, 1 worker**: :func:`extract_to_store` with one worker process into an empty store
  (decode, Holistic, landmark conversion, sha256, atomic npz writes, manifest, error report).
  Reported twice: wall time of the whole run (with the one-off pool start-up: forkserver, mediapipe
  import, model load) and the time spent inside the worker per clip (the per-frame cost that a
  large dataset sees once the start-up is amortised).
* **pipeline, 2 workers**: the same with two workers.

Per-frame times are wall time over frames processed. Targets: pipeline/raw <= 1.05 and
2 workers >= 1.8x faster than 1 on a quiet 2-core machine.

``signlang benchmark extract --engine ray``: the same workload (the videos copied ``copies``
times) through the local pool (1 and 2 workers) and a Ray cluster of 1 node and then 2 nodes
(one CPU each, started here with ``ray start`` on loopback addresses by :class:`LoopbackCluster`),
in one run; throughput in frames/s and as ratios to the 1-worker local pool.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from signlang.bench.common import machine_line, shared_data_dir
from signlang.landmarks.extract import extract_to_store, new_holistic
from signlang.landmarks.extract_ray import ray_runner
from signlang.landmarks.sources import find_videos

PIPELINE_OVER_RAW_TARGET = 1.05
TWO_WORKER_SPEEDUP_TARGET = 1.8


@dataclass(frozen=True)
class ExtractTimings:
    """Timings of one benchmark run (seconds and frame counts)."""

    n_videos: int
    raw_frames: int
    raw_seconds: float
    pipe_frames: int
    pipe1_seconds: float
    pipe1_busy_seconds: float
    pipe2_seconds: float
    max_side: int | None

    @property
    def raw_ms(self) -> float:
        return 1000 * self.raw_seconds / max(self.raw_frames, 1)

    @property
    def pipe1_ms(self) -> float:
        return 1000 * self.pipe1_seconds / max(self.pipe_frames, 1)

    @property
    def pipe1_busy_ms(self) -> float:
        return 1000 * self.pipe1_busy_seconds / max(self.pipe_frames, 1)

    @property
    def pipe2_ms(self) -> float:
        return 1000 * self.pipe2_seconds / max(self.pipe_frames, 1)

    @property
    def ratio(self) -> float:
        """Pipeline (1 worker, wall time incl. start-up) per-frame time over the raw loop's."""
        return self.pipe1_ms / self.raw_ms

    @property
    def busy_ratio(self) -> float:
        """Pipeline (1 worker, time inside the worker) per-frame time over the raw loop's."""
        return self.pipe1_busy_ms / self.raw_ms

    @property
    def speedup(self) -> float:
        """Wall time of 1 worker over 2 workers."""
        return self.pipe1_seconds / self.pipe2_seconds


def default_videos_dir() -> Path:
    """``videos_real_signing`` in the shared data folder (:func:`signlang.bench.common.shared_data_dir`)."""
    return shared_data_dir() / "videos_real_signing"


def raw_loop(videos: list[Path]) -> tuple[int, float]:
    """Bare Holistic over every frame of every video: ``(frames, seconds)``."""
    import av

    frames = 0
    start = time.perf_counter()
    for path in videos:
        holistic = new_holistic()
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                holistic.process(frame.to_ndarray(format="rgb24"))
                frames += 1
        holistic.close()
    return frames, time.perf_counter() - start


def pipeline_run(folder: Path, workers: int, max_side: int | None) -> tuple[int, float, float]:
    """One fresh ``extract_to_store`` run: ``(frames, wall seconds, seconds inside the workers)``."""
    with tempfile.TemporaryDirectory(prefix="signlang-bench-") as tmp:
        start = time.perf_counter()
        summary = extract_to_store(folder, Path(tmp) / "store", workers=workers, max_side=max_side, progress=False)
        seconds = time.perf_counter() - start
    if summary.failed:
        raise ValueError(f"{folder}: {summary.failed} video(s) failed during the benchmark: {summary.errors}")
    return summary.frames, seconds, summary.busy_seconds


def run_benchmark(folder: str | os.PathLike[str], *, max_side: int | None = None, repeats: int = 1) -> ExtractTimings:
    """Run raw, pipeline x1 and pipeline x2 (``repeats`` times each, fastest kept)."""
    root = Path(folder)
    videos = [p for p in find_videos(root) if p.suffix.lower() != ".pose"]
    if not videos:
        raise ValueError(f"{root}: no videos to benchmark")
    raw = min((raw_loop(videos) for _ in range(repeats)), key=lambda r: r[1])
    p1 = min((pipeline_run(root, 1, max_side) for _ in range(repeats)), key=lambda r: r[1])
    p2 = min((pipeline_run(root, 2, max_side) for _ in range(repeats)), key=lambda r: r[1])
    return ExtractTimings(len(videos), raw[0], raw[1], p1[0], p1[1], p1[2], p2[1], max_side)


def markdown_table(r: ExtractTimings) -> str:
    """The result as a markdown table with the targets."""
    side = r.max_side or "none"
    rows = [
        "| variant | frames | wall s | ms/frame | vs. target |",
        "|---|---:|---:|---:|---|",
        f"| raw Holistic loop (1 process) | {r.raw_frames} | {r.raw_seconds:.2f} | {r.raw_ms:.1f} | |",
        f"| extract, 1 worker (max-side {side}), wall | {r.pipe_frames} | {r.pipe1_seconds:.2f} | {r.pipe1_ms:.1f} |"
        f" pipeline/raw = {r.ratio:.3f} (target <= {PIPELINE_OVER_RAW_TARGET}) |",
        f"| extract, 1 worker (max-side {side}), in worker | {r.pipe_frames} | {r.pipe1_busy_seconds:.2f} |"
        f" {r.pipe1_busy_ms:.1f} | pipeline/raw = {r.busy_ratio:.3f} without pool start-up |",
        f"| extract, 2 workers (max-side {side}) | {r.pipe_frames} | {r.pipe2_seconds:.2f} | {r.pipe2_ms:.1f} |"
        f" speed-up = {r.speedup:.2f}x (target >= {TWO_WORKER_SPEEDUP_TARGET}x) |",
    ]
    return f"{r.n_videos} videos, {os.cpu_count()} CPUs\n\n" + "\n".join(rows)


# ---------------------------------------------------------------------------------------------
# engines: local pool vs a Ray cluster of 1 and 2 nodes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LoopbackCluster:
    """A real Ray cluster on this machine: ``ray start`` nodes on loopback addresses, one CPU each.

    The head listens on ``127.0.0.2``, node ``i`` on ``127.0.0.{2 + i}`` (Ray replaces ``127.0.0.1``
    itself by the machine's outward address, so other loopback addresses are used). The cluster has
    its own temp dir and its own auth token (``RAY_AUTH_MODE=token``); :meth:`driver_env` is what a
    driver needs to connect. Nodes are marked dead after about 3 s without heartbeat, so a killed
    node's work is noticed quickly. :meth:`stop` kills exactly the processes this cluster started
    (never ``ray stop``, which would end every Ray on the machine).
    """

    HEAD_IP = "127.0.0.2"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's unix sockets live here
        token = self.dir / "token"
        token.write_text(secrets.token_hex(32))
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
                    "RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
                    "RAY_health_check_failure_threshold": "3", "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_worker_niceness": "0"}  # Ray lowers its workers' priority by default: not in a comparison
        self.address = ""
        self.groups: list[int] = []  # process group of each node's `ray start` (head first)

    def _ray_start(self, args: list[str]) -> None:
        ray_cli = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())"]
        proc = subprocess.Popen([*ray_cli, "start", "--num-cpus=1", "--disable-usage-stats", *args], env=self.env,
                                start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.groups.append(proc.pid)
        try:
            out, _ = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError("ray start did not finish within 180 s") from None
        if proc.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{out[-3000:]}")

    def start_head(self) -> "LoopbackCluster":
        port = _free_port()
        self._ray_start(["--head", f"--port={port}", f"--node-ip-address={self.HEAD_IP}", f"--temp-dir={self.dir}",
                         "--include-dashboard=false", f"--dashboard-port={_free_port()}"])
        self.address = f"{self.HEAD_IP}:{port}"
        return self

    def add_node(self) -> int:
        """Start one more node (one CPU); returns its index (the head is 0)."""
        index = len(self.groups)
        self._ray_start([f"--address={self.address}", f"--node-ip-address=127.0.0.{2 + index}"])
        return index

    def node_processes(self, index: int) -> list:
        """The live processes of node ``index``: its process group and everything its raylet started."""
        import psutil

        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["pid"]):
            with contextlib.suppress(psutil.Error, OSError):  # a process may end while we look
                if os.getpgid(proc.pid) == self.groups[index]:
                    found[proc.pid] = proc
                    for child in proc.children(recursive=True):
                        found[child.pid] = child
        return list(found.values())

    def kill_node(self, index: int) -> int:
        """SIGKILL every process of node ``index`` (its raylet, workers, agents); returns how many."""
        procs = self.node_processes(index)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signal.SIGKILL)
        return len(procs)

    def driver_env(self) -> dict[str, str]:
        """Environment for a driver process (the cluster's auth token)."""
        return {k: self.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}

    @contextlib.contextmanager
    def as_driver(self) -> Iterator[None]:
        """Set :meth:`driver_env` in this process for the duration (ray.init reads it)."""
        old = {k: os.environ.get(k) for k in self.driver_env()}
        os.environ.update(self.driver_env())
        try:
            yield
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def stop(self) -> None:
        for index in reversed(range(len(self.groups))):
            self.kill_node(index)
        self.groups.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "LoopbackCluster":
        return self.start_head()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_workload(videos: Path, target: Path, copies: int) -> int:
    """Copy every video of ``videos`` ``copies`` times into ``target/copy<i>/``; returns the count."""
    files = [p for p in find_videos(videos) if p.suffix.lower() != ".pose"]
    if not files:
        raise ValueError(f"{videos}: no videos to benchmark")
    for i in range(copies):
        folder = target / f"copy{i}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy(f, folder / f.name)
    return len(files) * copies


@dataclass(frozen=True)
class EngineRun:
    """One engine's run over the whole workload."""

    engine: str
    workers: int
    videos: int
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _timed_run(name: str, workers: int, workload: Path, store: Path, **kwargs: object) -> EngineRun:
    start = time.perf_counter()
    summary = extract_to_store(workload, store, workers=workers, progress=False, **kwargs)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    if summary.failed or summary.skipped:
        raise ValueError(f"{name}: expected a fresh run of every video, got {summary.line()} {summary.errors[:3]}")
    return EngineRun(name, workers, summary.done, summary.frames, seconds)


def run_engine_benchmark(folder: str | os.PathLike[str], *, copies: int = 3, max_side: int | None = 640) -> list[EngineRun]:
    """Local pool (1, 2 workers), Ray 1 node, Ray 2 nodes on the same workload, in this order."""
    with tempfile.TemporaryDirectory(prefix="signlang-bench-") as tmp:
        workload = Path(tmp) / "videos"
        make_workload(Path(folder), workload, copies)
        runs = [_timed_run(f"local pool, {w} worker(s)", w, workload, Path(tmp) / f"local{w}", max_side=max_side) for w in (1, 2)]
        with LoopbackCluster() as cluster, cluster.as_driver():
            runner = ray_runner(cluster.address)
            runs.append(_timed_run("ray, 1 node", 1, workload, Path(tmp) / "ray1", runner=runner, max_side=max_side))
            cluster.add_node()
            runs.append(_timed_run("ray, 2 nodes", 2, workload, Path(tmp) / "ray2", runner=runner, max_side=max_side))
    return runs


def engine_table(runs: list[EngineRun], copies: int) -> str:
    """The engine runs as a markdown table, throughput relative to the first run (1-worker local pool)."""
    base = runs[0].fps
    rows = ["| engine | workers (1 CPU each) | videos | frames | wall s | frames/s | vs local pool, 1 worker |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    rows += [f"| {r.engine} | {r.workers} | {r.videos} | {r.frames} | {r.seconds:.1f} | {r.fps:.1f} | {r.fps / base:.2f}x |" for r in runs]
    head = f"{runs[0].videos} videos ({copies} copies of each real video), wall time including start-up. {machine_line()}"
    return head + "\n\n" + "\n".join(rows)

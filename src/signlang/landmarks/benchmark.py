"""Extraction benchmark: bare MediaPipe Holistic loop vs. the full ``extract`` path, and 2 workers vs. 1.

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
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from signlang.landmarks.extract import extract_to_store, new_holistic
from signlang.landmarks.sources import find_videos

PIPELINE_OVER_RAW_TARGET = 1.05
TWO_WORKER_SPEEDUP_TARGET = 1.8


@dataclass(frozen=True)
class BenchResult:
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
    """``../shared/data/videos_real_signing`` beside the repo (or under ``$SIGNLANG_SHARED_DATA``)."""
    base = os.environ.get("SIGNLANG_SHARED_DATA")
    root = Path(base) if base else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return root / "videos_real_signing"


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


def run_benchmark(folder: str | os.PathLike[str], *, max_side: int | None = None, repeats: int = 1) -> BenchResult:
    """Run raw, pipeline x1 and pipeline x2 (``repeats`` times each, fastest kept)."""
    root = Path(folder)
    videos = [p for p in find_videos(root) if p.suffix.lower() != ".pose"]
    if not videos:
        raise ValueError(f"{root}: no videos to benchmark")
    raw = min((raw_loop(videos) for _ in range(repeats)), key=lambda r: r[1])
    p1 = min((pipeline_run(root, 1, max_side) for _ in range(repeats)), key=lambda r: r[1])
    p2 = min((pipeline_run(root, 2, max_side) for _ in range(repeats)), key=lambda r: r[1])
    return BenchResult(len(videos), raw[0], raw[1], p1[0], p1[1], p1[2], p2[1], max_side)


def markdown_table(r: BenchResult) -> str:
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

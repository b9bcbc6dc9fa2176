"""Real-time benchmark: a real signing video played at 30 FPS for a minute through ``LiveLandmarks``
(capture thread + MediaPipe thread, frames dropped when behind) and the streaming recognizer.

Reported: frames captured and processed per second, frames dropped, the capture-to-landmarks lag
over the minute (median of the first and of the last 10 s, to show whether it grows), and the
recognizer's own speed (landmarks in, events out) on one core.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from signlang.bench.common import machine_info, machine_line, shared_data_path


def make_minute_video(out: Path, seconds: float = 60.0) -> Path:
    """The real videos of ``videos_real_signing`` one after another, looped to ``seconds`` at 30 FPS (ffmpeg)."""
    folder = shared_data_path("videos_real_signing")
    videos = sorted(folder.glob("*.mp4"))
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{v}'\n" for v in videos) * 12, encoding="utf-8")
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-t", str(seconds),
                    "-vf", "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2,fps=30",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(out)], check=True, timeout=600)
    return out


def run_live_benchmark(model: str, *, seconds: float = 60.0) -> tuple[str, dict[str, Any]]:
    """Run the benchmark for bundle ``model``; returns (markdown, data)."""
    import torch

    from signlang.inference.predictor import Predictor
    from signlang.inference.streaming import StreamConfig, StreamingRecognizer
    from signlang.landmarks.capture import LiveLandmarks

    torch.set_num_threads(1)
    predictor = Predictor(model, threads=1)
    with tempfile.TemporaryDirectory(prefix="signlang-live-bench-") as tmp:
        video = make_minute_video(Path(tmp) / "minute.mp4", seconds)
        rec = StreamingRecognizer(predictor, StreamConfig(batch_size=8))
        events = 0
        frames: list[tuple[float, np.ndarray]] = []
        with LiveLandmarks(str(video)) as live:
            for item in live:
                events += len(rec.push(item.landmarks, item.t))
                frames.append((item.t, item.landmarks))
        events += len(rec.finish())
        s = live.stats()
        lags = np.array(live.lags)
    # the recognizer alone on the same landmarks, replayed as fast as it goes (one core)
    ts = np.array([t for t, _ in frames])
    lm = np.stack([f for _, f in frames]) if frames else np.zeros((0, 75, 3), np.float32)
    reps = max(1, int(np.ceil(3000 / max(1, len(lm)))))
    rec = StreamingRecognizer(predictor, StreamConfig(batch_size=8))
    t0 = time.perf_counter()
    for r in range(reps):
        for t, f in zip(ts + r * (seconds + 1), lm):
            rec.push(f, t)
    rec_fps = reps * len(lm) / (time.perf_counter() - t0)
    first = lags[lags[:, 0] < 10, 1] * 1e3 if len(lags) else np.zeros(1)
    last = lags[lags[:, 0] > seconds - 10, 1] * 1e3 if len(lags) else np.zeros(1)
    info = machine_info()
    data = {"model": model, "seconds": seconds, "capture": s, "events": events, "lag_first_10s_ms": float(np.median(first)) if len(first) else None,
            "lag_last_10s_ms": float(np.median(last)) if len(last) else None, "recognizer_frames_per_s_one_core": rec_fps, "machine": info}
    md = [
        "## Real time (signlang benchmark live)", "",
        f"The 7 real videos of `videos_real_signing`, looped to {seconds:g} s at 30 FPS (640x480), played at their own speed "
        f"through `LiveLandmarks` (capture thread + MediaPipe Holistic thread) and the streaming recognizer, model `{model}`.", "",
        "| frames captured | processed | processed/s | dropped (capture + queue) | lag median | lag p95 | lag median, first 10 s | last 10 s | events |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {s['captured']:.0f} | {s['processed']:.0f} | {s['processed_fps']:.1f} | {s['dropped_capture']:.0f} + {s['dropped_queue']:.0f} | "
        f"{s['lag_ms_median']:.0f} ms | {s['lag_ms_p95']:.0f} ms | {data['lag_first_10s_ms'] or 0:.0f} ms | {data['lag_last_10s_ms'] or 0:.0f} ms | {events} |", "",
        f"The recognizer alone (landmarks in, events out, frame by frame) on one core: {rec_fps:,.0f} frames/s.", "",
        machine_line(info),
    ]
    predictor.close()
    return "\n".join(md), data

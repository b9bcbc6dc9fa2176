"""Real-time benchmark: a real signing video played at 30 FPS for a minute through ``LiveLandmarks``
(capture thread + MediaPipe thread, frames dropped when behind) and the streaming recognizer.

Reported: frames captured and processed per second, frames dropped, the capture-to-landmarks lag
over the minute (median of the first and of the last 10 s, to show whether it grows), and the
recognizer's own speed (landmarks in, events out) on one core.
"""

from __future__ import annotations

import subprocess
import sys
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


def run_live_benchmark(model: str, *, seconds: float = 60.0, replay_frames: int = 1800) -> tuple[str, dict[str, Any]]:
    """Run the benchmark for bundle ``model``; returns (markdown, data).

    ``replay_frames``: at least this many frames (the minute's landmarks, repeated) time the recognizer alone.
    """
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
    # the recognizer alone on the same landmarks stamped at 30 FPS, frame by frame as fast as it goes (one core)
    lm = np.stack([f for _, f in frames]) if frames else np.zeros((0, 75, 3), np.float32)
    reps = max(1, int(np.ceil(replay_frames / max(1, len(lm)))))
    replay = np.concatenate([lm] * reps)
    rec = StreamingRecognizer(predictor, StreamConfig(batch_size=8))
    t0 = time.perf_counter()
    for k, f in enumerate(replay):
        rec.push(f, k / 30.0)
    rec_fps = len(replay) / (time.perf_counter() - t0)
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_cpu_per_user(model: str, *, seconds: float = 30.0, backend: str = "onnx") -> tuple[str, dict[str, Any]]:
    """CPU of a real ``signlang serve`` process for one live user, landmarks from the browser vs JPEG upload.

    Browser mode: binary landmark frames at 30 FPS (landmarks of a real video, looped). Upload mode:
    the page's fallback, 320-px JPEG frames at 10 FPS (at most one in flight, as the page does).
    CPU = the server process's user+system seconds per second of stream, after a warm-up.
    """
    import struct

    import cv2
    import psutil
    from websockets.sync.client import connect

    from signlang.landmarks.extract import extract_video
    from signlang.landmarks.video import VideoReader

    video = shared_data_path("videos_real_signing", "wlasl_00336.mp4")
    lm = extract_video(video).landmarks
    with VideoReader(video) as reader:
        jpegs = [cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
                 for _, img in reader.frames(max_side=320)]
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "signlang", "serve", "--model", model, "--backend", backend, "--host", "127.0.0.1", "--port", str(port),
                             "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows: dict[str, Any] = {}
    try:
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        server = psutil.Process(proc.pid)
        for mode, fps in (("browser landmarks", 30.0), ("JPEG upload", 10.0)):
            with connect(f"ws://127.0.0.1:{port}/ws/live", open_timeout=30, max_size=2**22) as ws:
                ws.recv(timeout=30)
                sent = answered = 0
                t_start = time.monotonic()
                cpu0 = None
                k = 0
                while time.monotonic() - t_start < seconds + 5:
                    if cpu0 is None and time.monotonic() - t_start >= 5:  # after the warm-up (MediaPipe load)
                        cpu0, t0 = sum(server.cpu_times()[:2]), time.monotonic()
                        sent = answered = 0
                    t = k / fps
                    if mode == "JPEG upload":
                        ws.send(b"JPG0" + struct.pack("<d", t) + jpegs[k % len(jpegs)])
                    else:
                        ws.send(struct.pack("<d", t) + np.nan_to_num(lm[k % len(lm)], nan=np.nan).astype("<f4").tobytes())
                    sent += 1
                    k += 1
                    wake = t_start + k / fps
                    while True:  # read what came back until the next frame is due
                        try:
                            msg = ws.recv(timeout=max(0.001, wake - time.monotonic()))
                            answered += '"landmarks"' in msg[:20] if isinstance(msg, str) else 0
                        except TimeoutError:
                            break
                cpu = sum(server.cpu_times()[:2]) - (cpu0 or 0)
                wall = time.monotonic() - t0
                rows[mode] = {"fps_sent": sent / wall, "cpu_cores": cpu / wall, "server_landmark_frames_per_s": answered / wall}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    info = machine_info()
    md = ["### Server CPU per live user", "",
          f"A real `signlang serve --backend {backend} --threads 1` process, one WebSocket client for {seconds:g} s after a 5 s warm-up "
          "(landmarks/frames of `wlasl_00336.mp4`, looped). CPU = server user+system seconds per second.", "",
          "| mode | frames sent/s | server CPU (cores) | frames landmarked by the server/s |", "|---|---|---|---|"]
    md += [f"| {m} | {r['fps_sent']:.1f} | {r['cpu_cores']:.3f} | {r['server_landmark_frames_per_s']:.1f} |" for m, r in rows.items()]
    if len(rows) == 2:
        ratio = rows["JPEG upload"]["cpu_cores"] / max(1e-9, rows["browser landmarks"]["cpu_cores"])
        md += ["", f"Upload mode costs the server {ratio:.1f}x the CPU of browser-landmark mode per user."]
    md += ["", machine_line(info)]
    return "\n".join(md), {"rows": rows, "seconds": seconds, "backend": backend, "machine": info}

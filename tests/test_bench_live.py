"""``signlang benchmark live`` with very small counts: the looped video is made from the real videos by
ffmpeg, played in real time through ``LiveLandmarks`` (real MediaPipe) and the streaming recognizer
over the tiny bundle; the report's counts must add up. The server-CPU-per-user part needs a real
``signlang serve`` and 5 s warm-ups per mode: it runs only in the slow set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("mediapipe")
pytestmark = [pytest.mark.video, pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")]


def test_make_minute_video_loops_the_real_videos(real_videos_dir: Path, tmp_path: Path) -> None:
    import cv2

    from signlang.bench.live import make_minute_video

    out = make_minute_video(tmp_path / "loop.mp4", seconds=1.5)
    cap = cv2.VideoCapture(str(out))
    try:
        size = (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps, frames = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        cap.release()
    assert size == (640, 480) and fps == pytest.approx(30.0) and abs(frames - 45) <= 1
    listing = (tmp_path / "loop.txt").read_text().splitlines()
    assert len(listing) == 7 * 12 and all(line.startswith("file '") for line in listing)


def test_live_benchmark_counts_add_up(tiny_bundle: Path) -> None:
    from signlang.bench.live import run_live_benchmark

    md, data = run_live_benchmark(str(tiny_bundle), seconds=2.0, replay_frames=30)
    cap = data["capture"]
    assert abs(cap["captured"] - 60) <= 2  # 2 s at 30 FPS
    assert 0 < cap["processed"] <= cap["captured"]
    assert cap["processed"] + cap["dropped_capture"] + cap["dropped_queue"] == pytest.approx(cap["captured"])
    assert 0 < cap["lag_ms_median"] <= cap["lag_ms_p95"] <= cap["lag_ms_max"]
    assert data["lag_first_10s_ms"] > 0 and 0 <= data["events"] <= cap["processed"] and data["recognizer_frames_per_s_one_core"] > 0
    assert data["seconds"] == 2.0 and data["machine"]["cpus"] >= 1
    assert "## Real time (signlang benchmark live)" in md and f"| {cap['captured']:.0f} | {cap['processed']:.0f} |" in md


@pytest.mark.slow
def test_server_cpu_per_user_both_modes(tiny_onnx: Path) -> None:
    from signlang.bench.live import server_cpu_per_user

    md, data = server_cpu_per_user(str(tiny_onnx), seconds=3.0)
    assert set(data["rows"]) == {"browser landmarks", "JPEG upload"}
    for row in data["rows"].values():
        assert row["fps_sent"] > 0 and row["cpu_cores"] > 0
    assert data["rows"]["JPEG upload"]["server_landmark_frames_per_s"] > 0  # the server ran MediaPipe on the uploads
    assert "Upload mode costs the server" in md

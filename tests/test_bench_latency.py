"""``signlang benchmark latency`` end to end on the tiny bundle with very small counts: classifier
timings for both backends, the service overhead (in-thread uvicorn and a real ``signlang serve``
subprocess), per-video timing of a real video beside a broken one; and the report's pure parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signlang.bench import latency
from signlang.bench.common import machine_info


def test_time_call_counts_and_percentiles() -> None:
    calls = []
    t = latency.time_call(lambda: calls.append(1), batch=4, warmup=2, repeats=7, budget_s=5.0)
    assert len(calls) == 2 + 7 and len(t.times_ms) == 7 and t.batch == 4
    assert all(x >= 0 for x in t.times_ms) and t.p50 <= t.p99
    fixed = latency.Timing([1.0, 2.0, 3.0, 4.0], batch=32)
    assert fixed.p50 == pytest.approx(2.5) and fixed.clips_per_s == pytest.approx(32 / 2.5e-3)


def test_random_clips_shape_and_list_videos(tmp_path: Path) -> None:
    clips = latency.random_clips(3, 10, seed=1)
    assert clips.shape == (3, 10, 75, 3)
    np.testing.assert_array_equal(clips, latency.random_clips(3, 10, seed=1))
    for name in ("b.MP4", "a.webm", "notes.txt", "c.npz"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in latency.list_videos(tmp_path)] == ["a.webm", "b.MP4"]


def _row(model: str, backend: str, p50: float, cps: float) -> dict:
    return {"model": model, "backend": backend, "b1_p50_ms": p50, "b1_p99_ms": 2 * p50, "b32_clips_per_s": cps}


def test_markdown_says_whether_targets_are_met() -> None:
    report = latency.LatencyReport(rows=[_row("ensemble", "onnx", 1.0, 5000.0), _row("ensemble", "torch", 9.0, 10.0)],
                                   machine={"cpus": 2, "load_avg_1m": 1.5})
    md = latency.markdown(report)
    assert "| ensemble | onnx | 1.000 | 2.000 | 5000 |" in md and "NOT met" not in md and md.count("met") == 2
    report.rows[0] = _row("ensemble", "onnx", 50.0, 10.0)
    report.videos = [{"video": "bad.mp4", "error": "bad.mp4: not a video"}]
    md = latency.markdown(report)
    assert md.count("NOT met") == 2 and "| bad.mp4 | error: bad.mp4: not a video |" in md


def test_classifier_latency_both_backends(tiny_bundle: Path, tiny_onnx: Path) -> None:
    # one thread for the batch-32 part too: two spinning threads on a shared 2-core machine take seconds per call
    rows = latency.classifier_latency(tiny_bundle, tiny_onnx, frames=8, repeats=3, budget_s=0.1, batch_threads=1)
    by = {(r["model"], r["backend"]): r for r in rows}
    assert set(by) == {(m, b) for m in ("transformer", "bilstm", "xgboost", "ensemble") for b in ("torch", "onnx")}
    for r in rows:
        assert 0 < r["b1_p50_ms"] <= r["b1_p99_ms"] and 0 < r["b32_p50_ms"] and r["b32_clips_per_s"] > 0
        assert (r["b1_threads"], r["b32_threads"]) == (1, 1)
    md = latency.markdown(latency.LatencyReport(rows=rows, machine=machine_info()))
    assert md.count("| ensemble |") == 2 and "Targets: ensemble ONNX batch-1 p50" in md and "batch 32 clips/s (1 threads)" in md


def test_service_overhead_in_thread_and_in_a_real_serve_process(tiny_onnx: Path) -> None:
    from signlang.inference.predictor import Predictor

    with Predictor(tiny_onnx, backend="onnx", threads=1) as p:
        s = latency.service_overhead(p, frames=16, repeats=5, budget_s=0.2)
        s["cpu"] = latency.service_cpu_overhead(tiny_onnx, p, frames=16, requests=5, rounds=2)
    for form in ("json", "npy"):
        r = s[form]
        assert r["requests"] == 5 and r["body_bytes"] > 0 and r["wall_p50_ms"] >= r["predictor_p50_ms"] > 0
        assert r["overhead_p50_ms"] <= r["overhead_p99_ms"]
        cpu = s["cpu"][form]
        assert cpu["server_cpu_ms"] > 0 and cpu["predictor_cpu_ms"] > 0
        assert cpu["overhead_cpu_ms_min"] <= cpu["overhead_cpu_ms"] <= cpu["overhead_cpu_ms_max"]
    assert s["json"]["body_bytes"] > s["npy"]["body_bytes"]  # the point of .npy bodies
    assert s["cpu"]["requests"] == 20  # 2 rounds of at least 10 requests
    md = latency.service_markdown(s)
    assert "| json |" in md and "| npy |" in md and "CPU time per request of a real `signlang serve`" in md


@pytest.mark.video
def test_video_latency_times_a_real_video_and_reports_a_broken_one(predictor, real_videos_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    rows = latency.video_latency(predictor, [real_videos_dir / "slp_pose_SOUP.mp4", broken])
    soup, bad = rows
    assert soup["video"] == "slp_pose_SOUP.mp4" and soup["frames"] > 0 and soup["top1"] in predictor.classes
    assert soup["total"] >= soup["landmarks"] > 0 and soup["model"] > 0  # seconds
    assert bad["video"] == "broken.mp4" and "broken.mp4" in bad["error"]
    md = latency.markdown(latency.LatencyReport(videos=rows, machine={"cpus": 1}))
    assert "| slp_pose_SOUP.mp4 | " in md and "| broken.mp4 | error:" in md


def test_latency_command_names_a_missing_model(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from signlang.cli import app

    res = CliRunner().invoke(app, ["benchmark", "latency", "--model", str(tmp_path / "nope"), "--videos", str(tmp_path)])
    assert res.exit_code == 2 and "nope" in res.output and "Traceback" not in res.output

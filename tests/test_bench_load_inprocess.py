"""``signlang benchmark load`` in this process: the bodies made from real clips, the locustfile's users
sending real requests to a real uvicorn (in a thread) over loopback, their records summarised,
binned, plotted and rendered; the metrics scrape; the server launcher's failure report.

Locust is imported here with ``LOCUST_SKIP_MONKEY_PATCH`` (its documented switch), so gevent does
not patch this process; the users run one request at a time, synchronously. One short scenario
also runs the whole command path: a real ``signlang serve`` subprocess and headless Locust in
another (2 users, 2 s); the four-scenario run is test_bench_load.py's slow test.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from signlang.bench import load

pytestmark = pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="locust is not installed (signlang[load])")


@pytest.fixture(scope="module")
def bodies(traduttore_npz: Path, real_videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("bodies")
    return folder, load.prepare_bodies(folder, frames=16, batch=4, n_clips=3)


def test_prepare_bodies_writes_real_clips_in_both_forms(bodies: tuple[Path, dict], traduttore_npz: Path) -> None:
    folder, info = bodies
    assert info["clips"] == 3 and info["frames"] == 16 and len(info["videos"]) == 7
    jsons, npys, batches = sorted(folder.glob("clip_*.json")), sorted(folder.glob("clip_*.npy")), sorted(folder.glob("batch_*.npy"))
    assert len(jsons) == len(npys) == 3 and len(batches) == 8 and len(list(folder.glob("video_*.mp4"))) == 7
    clip = np.load(io.BytesIO(npys[0].read_bytes()), allow_pickle=False)
    assert clip.shape == (16, 258) and clip.dtype == np.float32
    np.testing.assert_allclose(np.array(json.loads(jsons[0].read_text())["landmarks"]), clip, atol=1e-5)
    assert np.load(batches[0], allow_pickle=False).shape == (4, 16, 258)
    raw = np.frombuffer((folder / "clip_000.f32").read_bytes(), dtype="<f4")  # the raw float32 form of the same clip
    assert (folder / "clip_000.shape").read_text() == "16,258" and np.array_equal(raw.reshape(16, 258), clip)
    data = np.load(traduttore_npz)
    X = data["X"][:, np.linspace(0, data["X"].shape[1] - 1, 16).round().astype(int)].astype(np.float32)
    for body in npys:  # each body is a real recording, resampled by nearest frame, of a sign (never the idle class)
        rows = np.flatnonzero((X == np.load(body, allow_pickle=False)).all(axis=(1, 2)))
        assert len(rows) >= 1 and all(data["classes"][data["y"][r]] != "-" for r in rows)
    assert info["json_bytes"] > info["npy_bytes"] > 16 * 258 * 4


def _locustfile(spec: dict, monkeypatch: pytest.MonkeyPatch):
    """The locustfile as a fresh module reading ``spec`` (it reads SIGNLANG_LOAD_SPEC at import)."""
    monkeypatch.setenv("LOCUST_SKIP_MONKEY_PATCH", "1")
    monkeypatch.setenv("SIGNLANG_LOAD_SPEC", json.dumps(spec))
    module_spec = importlib.util.spec_from_file_location("signlang.bench.locustfile", load.LOCUSTFILE)  # not put in sys.modules
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_locust_users_against_a_real_server(bodies: tuple[Path, dict], predictor, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from signlang.serve.app import create_app
    from signlang.serve.server import BackgroundServer
    from signlang.serve.settings import ServiceSettings

    folder, info = bodies
    records = tmp_path / "records.csv"
    lf = _locustfile({"bodies": str(folder), "records": str(records), "batch": 4, "video_users": 1, "wait_ms": 0}, monkeypatch)
    from locust.env import Environment

    assert lf.NpyBatchUser.clips == 4 and lf.VideoUser.fixed_count == 1
    broken = tmp_path / "video_broken.mp4"
    broken.write_bytes(b"this is not a video")
    sent = {"landmarks json": 2, "landmarks npy": 3, "landmarks raw": 2, "landmarks npy batch": 2, "video": 1}
    with BackgroundServer(create_app(predictor, ServiceSettings(max_concurrency=1))) as srv:
        before = load._scrape(srv.url, tries=2)
        env = Environment(user_classes=[lf.JsonClipUser, lf.NpyClipUser, lf.RawClipUser, lf.NpyBatchUser, lf.VideoUser], host=srv.url)
        env.create_local_runner()  # (its request listener keeps Locust's own statistics)
        for cls in env.user_classes:
            cls.host = srv.url
            user = cls(env)
            user.on_start()
            if cls is lf.VideoUser:
                assert len(user.paths) == 7
                user.paths = [broken]  # a refused upload is recorded as a failure, not a deliberate 429/503
            for _ in range(sent[cls.name]):
                user.predict()
        after = load._scrape(srv.url, tries=2)
    hist = load.batch_histogram(before, after)  # one request at a time: one model call per request, its clips in one batch
    assert hist["clips"] == 2 + 3 + 2 + 2 * 4 and hist["calls"] == 2 + 3 + 2 + 2 and hist["sizes"] == {"1": 7, "3-4": 2}
    assert hist["mean"] == pytest.approx(15 / 9)
    assert env.stats.total.num_requests == sum(sent.values()) and env.stats.total.num_failures == 1

    lf._write_records(env)
    with open(records, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["name"]: sum(1 for q in rows if q["name"] == r["name"]) for r in rows} == sent
    assert all(r["status"] == "200" for r in rows if r["name"] != "video")
    assert next(r for r in rows if r["name"] == "video")["status"].startswith("4")
    assert all(float(r["ms"]) > 0 for r in rows) and {r["clips"] for r in rows if r["name"] == "landmarks npy batch"} == {"4"}

    summary = load.summarize(records, duration_s=1.0)
    assert summary["landmarks npy"]["requests"] == 3 and summary["landmarks npy"]["errors"] == 0
    assert summary["landmarks npy batch"]["clips_per_s"] == pytest.approx(8 / max(1.0, _span(rows, "landmarks npy batch")))
    assert summary["video"]["errors"] == 1 and summary["video"]["p50_ms"] is None  # nothing answered
    for s in summary.values():
        if s["p50_ms"] is not None:
            assert 0 < s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"]

    series = load.latency_over_time(records, bin_s=1.0)
    assert set(series) == {"landmarks json", "landmarks npy", "landmarks raw", "landmarks npy batch"}  # answered requests only
    assert all(p50 <= p99 for pts in series.values() for _, p50, p99 in pts)
    png = tmp_path / "plots" / "latency.png"
    load.plot({"npy": {"landmarks npy": series["landmarks npy"]}, "batch": {"landmarks npy batch": series["landmarks npy batch"],
                                                                             "empty": []}}, png)
    assert png.stat().st_size > 1000

    report = {"machine": load.machine_info(), "serve_args": ["--backend", "torch"], "users": 1, "duration_s": 1, "batch": 4,
              "wait_ms": 0.0, "data": info,
              "scenarios": {sc: {"users": 1, "mean_batch_size": mb, "by_route": {name: summary[name]}}
                            for sc, name, mb in (("json", "landmarks json", 1.0), ("npy", "landmarks npy", None),
                                                 ("batch", "landmarks npy batch", 4.0), ("mixed", "video", None))}}
    md = load.markdown(report, plot_rel="load.png")
    assert "| npy | 1 | landmarks npy | 3 |" in md and "| batch | 1 | landmarks npy batch | 2 |" in md
    assert "- dropped connections (no HTTP status): 0 (target 0: met)" in md
    assert "- errors other than deliberate 429/503: 1 (NOT met)" in md  # the broken upload
    assert "landmark clips/s with .npy batches of 4" in md and "single-clip p99 at 1 users (npy)" in md
    assert "![latency over time](load.png)" in md and "3 real traduttore_asl_mediapipe clips" in md


def _span(rows: list[dict], name: str) -> float:
    t = [float(r["time"]) for r in rows if r["name"] == name]
    return max(t) - min(t)


def test_run_load_refuses_an_unknown_scenario(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown scenarios \['spike'\]"):
        load.run_load(tmp_path, scenarios=("npy", "spike"))


def test_process_cpu_counts_this_process() -> None:
    before = load.process_cpu_s(os.getpid())
    sum(i * i for i in range(300_000))
    assert load.process_cpu_s(os.getpid()) > before >= 0


def test_running_server_reports_why_serve_exited(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="signlang serve exited with") as info:
        with load.running_server(tmp_path / "no-model", [], timeout_s=60):
            pass
    assert "no-model" in str(info.value)  # the server's own error, naming the model path, is in the message


@pytest.mark.data
def test_one_short_real_load_scenario(tiny_onnx: Path, tmp_path: Path) -> None:
    report = load.run_load(tiny_onnx, scenarios=("npy",), users=2, duration_s=2, batch=4,
                           serve_args=["--backend", "onnx", "--threads", "1"], plot_png=tmp_path / "load.png")
    sc = report["scenarios"]["npy"]
    s = sc["by_route"]["landmarks npy"]
    assert set(report["scenarios"]) == {"npy"} and sc["users"] == 2 and set(sc["by_route"]) == {"landmarks npy"}
    assert s["requests"] >= 1 and s["errors"] == 0 and s["status"].get("200", 0) > 0
    assert 0 < s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] and s["clips_per_s"] > 0
    assert sc["mean_batch_size"] is not None and sc["mean_batch_size"] >= 1.0  # read from the server's /metrics
    assert report["data"]["clips"] == 64 and report["data"]["frames"] == 64
    assert report["latency_over_time"]["npy"]["landmarks npy"] and (tmp_path / "load.png").stat().st_size > 1000
    assert "| npy | 2 | landmarks npy |" in load.markdown(report)

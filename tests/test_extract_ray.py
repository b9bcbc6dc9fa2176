"""``signlang extract --engine ray`` on a real Ray cluster: a head and a second node started with
``ray start`` on loopback addresses (one CPU each), the real videos copied several times.

Every video ends exactly once in the manifest, with the same landmarks as the local engine; a
second run resumes (everything skipped by sha256); killing the second node's processes mid-run
still finishes with nothing lost or duplicated; a broken video is one line of errors.csv.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from signlang.landmarks.store import read_clip

pytest.importorskip("ray")  # (not imported here: a driver must see the cluster's token before Ray loads)
pytest.importorskip("mediapipe")
pytest.importorskip("psutil")

from signlang.bench.extract import LoopbackCluster, make_workload  # noqa: E402


COPIES = 3


def _extract(cluster: LoopbackCluster, videos: Path, store: Path, **popen: object) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "signlang", "extract", str(videos), str(store), "--engine", "ray",
           "--address", cluster.address, "--no-progress"]
    return subprocess.Popen(cmd, env={**os.environ, **cluster.driver_env()}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)  # type: ignore[call-overload]


def _manifest(store: Path) -> list[dict[str, str]]:
    with open(store / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _errors(store: Path) -> list[dict[str, str]]:
    with open(store / "errors.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _check_every_video_once(store: Path, workload: Path, n_videos: int) -> None:
    rows = _manifest(store)
    paths = sorted(r["path"] for r in rows)
    expected = sorted(str(p.relative_to(workload)) for p in workload.rglob("*.mp4"))
    assert len(paths) == n_videos and paths == expected  # every video, each exactly once
    assert len({r["clip_id"] for r in rows}) == n_videos
    assert len(list((store / "clips").glob("*.npz"))) == n_videos
    # the copies of one video give the same landmarks (one graph per actor, reset per video)
    by_name: dict[str, list[np.ndarray]] = {}
    for r in rows:
        by_name.setdefault(Path(r["path"]).name, []).append(read_clip(store / "clips" / f"{r['clip_id']}.npz").landmarks)
    for name, clips in by_name.items():
        assert len(clips) == COPIES, name
        for other in clips[1:]:
            np.testing.assert_array_equal(other, clips[0], err_msg=name)


@pytest.fixture(scope="module")
def cluster():
    with LoopbackCluster() as c:
        c.add_node()
        yield c


@pytest.fixture(scope="module")
def workload(real_videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    folder = tmp_path_factory.mktemp("workload")
    return folder, make_workload(real_videos_dir, folder, COPIES)


@pytest.mark.slow
@pytest.mark.video
def test_two_node_cluster_extracts_every_video_once_and_resumes(cluster: LoopbackCluster, workload, real_videos_dir: Path,
                                                                 tmp_path: Path) -> None:
    videos, n = workload
    probe = ("import json, ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
             "print(json.dumps([n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']]))" % cluster.address)
    res = subprocess.run([sys.executable, "-c", probe], env={**os.environ, **cluster.driver_env()}, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert sorted(json.loads(res.stdout.strip().splitlines()[-1])) == ["127.0.0.2", "127.0.0.3"]  # two nodes, loopback

    store = tmp_path / "store"
    proc = _extract(cluster, videos, store)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    assert f"done {n}, skipped 0, failed 0" in out
    _check_every_video_once(store, videos, n)
    assert _errors(store) == []

    # the same landmarks as the local engine (one video, extracted here in-process)
    from signlang.landmarks.extract import extract_video

    row = next(r for r in _manifest(store) if r["path"] == "copy0/slp_pose_SOUP.mp4")
    np.testing.assert_array_equal(read_clip(store / "clips" / f"{row['clip_id']}.npz").landmarks,
                                  extract_video(real_videos_dir / "slp_pose_SOUP.mp4").landmarks)

    # resume: a second run skips everything by sha256; a broken video is one line of errors.csv
    (videos / "broken.mp4").write_bytes(b"this is not a video")
    try:
        proc = _extract(cluster, videos, store)
        out, _ = proc.communicate(timeout=600)
    finally:
        (videos / "broken.mp4").unlink()
    assert proc.returncode == 0, out
    assert f"done 0, skipped {n}, failed 1" in out
    errors = _errors(store)
    assert [e["path"] for e in errors] == ["broken.mp4"] and "not a video" in errors[0]["error"]
    assert "signlang-ray-" not in errors[0]["error"]  # the reason names the input, not the actor's copy
    _check_every_video_once(store, videos, n)


@pytest.mark.slow
@pytest.mark.video
def test_killing_the_second_node_mid_run_loses_nothing(cluster: LoopbackCluster, workload, tmp_path: Path) -> None:
    videos, n = workload
    store = tmp_path / "store"
    proc = _extract(cluster, videos, store)
    try:
        deadline = time.monotonic() + 600
        # wait until the second node's actor is at work and a few clips are written
        while time.monotonic() < deadline and proc.poll() is None:
            busy = any("ExtractActor" in " ".join(p.cmdline()) or "ExtractActor" in p.name()
                       for p in cluster.node_processes(1) if _alive(p))
            if busy and len(list((store / "clips").glob("*.npz"))) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before the node could be killed"
        done_before = len(list((store / "clips").glob("*.npz")))
        assert done_before < n
        killed = cluster.kill_node(1)
        assert killed > 0
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert f"done {n}, skipped 0, failed 0" in out, out
    _check_every_video_once(store, videos, n)
    assert _errors(store) == []


def _alive(proc) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_address_without_the_ray_engine_is_refused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from signlang.cli import app

    (tmp_path / "in").mkdir()
    res = CliRunner().invoke(app, ["extract", str(tmp_path / "in"), str(tmp_path / "out"), "--address", "auto"])
    assert res.exit_code == 2 and "--address needs --engine ray" in res.output
    assert not (tmp_path / "out").exists()

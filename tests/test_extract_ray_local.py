"""The Ray engine's driver in this process, on a local one-CPU Ray instance that it starts and stops
itself: a real video is extracted by an actor and stored, a broken one is one error, a second run
skips the stored clip by sha256, and an input that vanished before it was read is one error. The
actor's per-video code also runs here directly (no Ray). The two-node cluster, node loss and resume
at scale are test_extract_ray.py's slow tests."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")
pytest.importorskip("mediapipe")

from signlang.landmarks.extract import ExtractOptions, Task, TaskResult  # noqa: E402
from signlang.landmarks.extract_ray import ExtractActor, _with_progress, run_ray  # noqa: E402


def test_the_actor_turns_a_broken_video_into_an_error_naming_the_input(tmp_path: Path) -> None:
    actor = ExtractActor(ExtractOptions())
    out = actor.extract("inputs/broken.mp4", b"this is not a video", "0" * 64)
    assert set(out) == {"error", "pid"} and "not a video" in out["error"] and "inputs/broken.mp4" in out["error"]
    assert str(actor.tmp) not in out["error"]  # the driver's name, never the actor's temporary copy
    assert not list(actor.tmp.iterdir())  # the copy is removed
    shutil.rmtree(actor.tmp)


def test_progress_passes_results_through_in_order() -> None:
    results = [TaskResult("a.mp4", "a", "done", 10), TaskResult("b.mp4", "b", "failed", error="bad"),
               TaskResult("c.mp4", "c", "skipped", 5)]
    assert list(_with_progress(iter(results), 3, progress=True)) == results


@pytest.mark.video
def test_local_ray_extracts_stores_skips_and_reports(real_videos_dir: Path, tmp_path: Path) -> None:
    from signlang.landmarks.store import read_clip

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(real_videos_dir / "slp_pose_SOUP.mp4", videos)
    (videos / "broken.mp4").write_bytes(b"this is not a video")
    store = tmp_path / "store"
    soup = Task(str(videos / "slp_pose_SOUP.mp4"), "slp_pose_SOUP.mp4", "soup", "SOUP", "train")
    broken = Task(str(videos / "broken.mp4"), "broken.mp4", "broken", "", "")
    gone = Task(str(videos / "gone.mp4"), "gone.mp4", "gone", "", "")  # listed, then deleted before it was read
    # one video at a time, so the second listing of the same source under the same clip id finds it stored
    results = list(run_ray([soup, broken, gone, soup], store, ExtractOptions(), workers=1, progress=False, in_flight=1))
    assert [(r.rel_path, r.status) for r in results] == [("slp_pose_SOUP.mp4", "done"), ("broken.mp4", "failed"),
                                                         ("gone.mp4", "failed"), ("slp_pose_SOUP.mp4", "skipped")]
    done, bad, vanished, skipped = results
    assert done.n_frames == skipped.n_frames > 0 and done.seconds > 0
    assert "not a video" in bad.error and "signlang-ray-" not in bad.error  # the actor's reason, naming the input
    assert "gone.mp4" in vanished.error
    clip = read_clip(store / "clips" / "soup.npz")
    assert clip.landmarks.shape == (done.n_frames, 75, 3) and np.isfinite(clip.landmarks).any()
    assert clip.sha256 == hashlib.sha256((videos / "slp_pose_SOUP.mp4").read_bytes()).hexdigest()
    assert (clip.label, clip.split, clip.path) == ("SOUP", "train", "slp_pose_SOUP.mp4")
    assert sorted(p.name for p in (store / "clips").glob("*.npz")) == ["soup.npz"]  # nothing for the failures
    assert not sys.modules["ray"].is_initialized()  # the local instance run_ray started is stopped


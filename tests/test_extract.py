"""Extraction from the real videos: landmarks, handedness, bad input, the store, resume after SIGKILL.

MediaPipe costs ~40 ms per frame here, so one store of the 7 real videos (plus three bad files)
is extracted once per session and shared; the other tests do small extra work on top of it.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from signlang.landmarks import store
from signlang.landmarks.extract import extract_to_store, extract_video
from signlang.landmarks.layout import LEFT_WRIST, LEFT_WRIST_POSE, RIGHT_WRIST, RIGHT_WRIST_POSE
from signlang.landmarks.sources import clip_id_for

pytestmark = pytest.mark.video

REAL = ["slp_pose_FOOTBALL", "slp_pose_SOUP", "slp_pose_test_video", "wlasl_00335", "wlasl_00336", "wlasl_00338", "wlasl_00339"]
MOSTLY_HANDS = {"slp_pose_FOOTBALL", "slp_pose_SOUP", "wlasl_00336", "wlasl_00338", "wlasl_00339"}
BAD = {"zero.mp4": "empty file", "notes.mp4": "plain text", "truncated.mp4": "truncated"}
SIGNLANG = [sys.executable, "-m", "signlang"]


@pytest.fixture(scope="session")
def mixed_input(real_videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 7 real videos plus a zero-byte .mp4, a text file named .mp4 and a truncated real video."""
    folder = tmp_path_factory.mktemp("mixed")
    for name in REAL:
        shutil.copy(real_videos_dir / f"{name}.mp4", folder / f"{name}.mp4")
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is a shopping list, not a video\n")
    data = (real_videos_dir / "slp_pose_FOOTBALL.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (folder / "README.md").write_text("ignored: not a video extension\n")
    return folder


@pytest.fixture(scope="session")
def mixed_store(mixed_input: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("store") / "store"
    summary = extract_to_store(mixed_input, out, workers=2, progress=False)
    return out, summary


def _clips(out: Path) -> dict[str, store.StoredClip]:
    return {c.path: c for c in (store.read_clip(p) for p in store.iter_clip_files(out))}


def test_every_real_video_gives_landmarks(mixed_store: tuple[Path, object]) -> None:
    out, summary = mixed_store
    assert summary.done == 7 and summary.failed == 3 and summary.skipped == 0
    clips = _clips(out)
    assert sorted(clips) == sorted(f"{n}.mp4" for n in REAL)
    for name in REAL:
        c = clips[f"{name}.mp4"]
        assert c.landmarks.dtype == np.float32 and c.landmarks.shape[1:] == (75, 3)
        assert 40 <= c.landmarks.shape[0] <= 72, name
        assert c.presence[:, 0].mean() > 0.9, f"{name}: pose missing"
        assert c.hands_detected >= (0.8 if name in MOSTLY_HANDS else 0.3), (name, c.hands_detected)
        pose = c.landmarks[c.presence[:, 0], :33, :2]
        assert np.nanmedian(pose) > 0.0 and np.nanmedian(pose) < 1.0  # normalised image coordinates
        assert c.fps > 20 and len(c.sha256) == 64
        assert c.clip_id == clip_id_for(f"{name}.mp4")


def test_manifest_and_error_report(mixed_store: tuple[Path, object]) -> None:
    out, _ = mixed_store
    with open(out / "manifest.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    for col in ("clip_id", "path", "label", "signer", "split", "n_frames", "fps", "hands_detected"):
        assert col in reader.fieldnames
    assert len(rows) == 7 and {r["path"] for r in rows} == {f"{n}.mp4" for n in REAL}
    by_path = {r["path"]: r for r in rows}
    assert by_path["slp_pose_SOUP.mp4"]["label"] == "slp_pose_SOUP"  # a lone file's label is its stem
    assert by_path["slp_pose_SOUP.mp4"]["n_frames"] == "41"
    with open(out / "errors.csv", newline="") as fh:
        errors = {r["path"]: r["error"] for r in csv.DictReader(fh)}
    assert set(errors) == set(BAD)
    for name, reason in BAD.items():
        assert reason in errors[name], errors[name]
        assert "\n" not in errors[name]
    assert not list(out.rglob(".tmp-*"))


def test_left_hand_is_the_signers_left(mixed_store: tuple[Path, object]) -> None:
    """Holistic's left hand sits at pose point 15 (left_wrist), the right hand at 16."""
    out, _ = mixed_store
    checked = 0
    for c in _clips(out).values():
        lm = c.landmarks[..., :2]
        d_same = np.concatenate([
            np.linalg.norm(lm[:, LEFT_WRIST] - lm[:, LEFT_WRIST_POSE], axis=-1),
            np.linalg.norm(lm[:, RIGHT_WRIST] - lm[:, RIGHT_WRIST_POSE], axis=-1),
        ])
        d_cross = np.concatenate([
            np.linalg.norm(lm[:, LEFT_WRIST] - lm[:, RIGHT_WRIST_POSE], axis=-1),
            np.linalg.norm(lm[:, RIGHT_WRIST] - lm[:, LEFT_WRIST_POSE], axis=-1),
        ])
        if np.isfinite(d_same).sum() >= 10:
            assert np.nanmedian(d_same) < np.nanmedian(d_cross), c.path
            checked += 1
    assert checked >= 5


def test_flipped_video_swaps_hands(mixed_store: tuple[Path, object], real_videos_dir: Path, tmp_path: Path) -> None:
    import cv2

    src = real_videos_dir / "slp_pose_SOUP.mp4"
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.flip(frame, 1))
    cap.release()
    flipped = tmp_path / "flipped.mp4"
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(flipped), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()

    orig = _clips(mixed_store[0])["slp_pose_SOUP.mp4"].landmarks
    mirror = extract_video(flipped).landmarks
    assert mirror.shape == orig.shape
    pres_o = ~np.isnan(orig[:, [33, 54], 0])
    pres_m = ~np.isnan(mirror[:, [33, 54], 0])
    assert (pres_m[:, 0] == pres_o[:, 1]).mean() > 0.85 and (pres_m[:, 1] == pres_o[:, 0]).mean() > 0.85
    # the flipped left hand is the original right hand mirrored (x -> 1 - x), and vice versa
    for m_sl, o_sl in ((slice(33, 54), slice(54, 75)), (slice(54, 75), slice(33, 54))):
        both = ~np.isnan(mirror[:, m_sl.start, 0]) & ~np.isnan(orig[:, o_sl.start, 0])
        assert both.sum() >= 10
        dx = np.abs(mirror[both, m_sl, 0] - (1.0 - orig[both, o_sl, 0]))
        dy = np.abs(mirror[both, m_sl, 1] - orig[both, o_sl, 1])
        assert np.median(dx) < 0.03 and np.median(dy) < 0.03
    # and not the same-side hand
    both = ~np.isnan(mirror[:, 33, 0]) & ~np.isnan(orig[:, 33, 0])
    if both.sum():
        assert np.median(np.abs(mirror[both, 33:54, 0] - (1.0 - orig[both, 33:54, 0]))) > 0.05


def test_bad_input_raises_clear_error(mixed_input: Path) -> None:
    with pytest.raises(ValueError, match=r"notes\.mp4: not a video: the file holds plain text"):
        extract_video(mixed_input / "notes.mp4")
    with pytest.raises(ValueError, match=r"zero\.mp4: empty file \(0 bytes\)"):
        extract_video(mixed_input / "zero.mp4")
    with pytest.raises(ValueError, match=r"truncated\.mp4: video is truncated or damaged: decoding failed after frame \d+ of 64"):
        extract_video(mixed_input / "truncated.mp4")


def test_include_layout_labels_splits_and_pose_interop(
    real_videos_dir: Path, include50_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "INCLUDE"
    layout = {
        "Sports/12. Football/MVI_0001.MOV": ("slp_pose_SOUP", "FOOTBALL", "train"),
        "Places/28. Store or Shop/MVI_0002.MOV": ("wlasl_00339", "SHOP", "test"),
    }
    for rel, (src, _, _) in layout.items():
        (root / rel).parent.mkdir(parents=True)
        shutil.copy(real_videos_dir / f"{src}.mp4", root / rel)
    for split in ("train", "test"):
        with open(tmp_path / f"{split}_include50.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["Category", "Word", "Video", "FilePath"])
            for rel, (_, _, s) in layout.items():
                if s == split:
                    cat, word, video = rel.split("/")
                    w.writerow([cat, word, video, rel])
    out = tmp_path / "store"
    result = CliRunner().invoke(
        __import__("signlang.cli", fromlist=["app"]).app,
        ["extract", str(root), str(out), "--workers", "1", "--no-progress", "--format", "pose",
         "--glosses", str(include50_dir / "normalized_glosses.csv"),
         "--split-csv", str(tmp_path / "train_include50.csv"), "--split-csv", str(tmp_path / "test_include50.csv")],
    )
    assert result.exit_code == 0, result.output
    assert "done 2, skipped 0, failed 0" in result.output
    rows = {r["path"]: r for r in store.read_manifest(out)}
    assert set(rows) == set(layout)
    for rel, (_, label, split) in layout.items():
        assert (rows[rel]["label"], rows[rel]["split"]) == (label, split)
    # .pose files were written beside the store and read back as input give the same landmarks
    poses = sorted((out / "pose").glob("*.pose"))
    assert [p.stem for p in poses] == sorted(r["clip_id"] for r in rows.values())
    back = tmp_path / "from_pose"
    summary = extract_to_store(out / "pose", back, workers=1, progress=False)
    assert summary.done == 2 and summary.failed == 0
    originals = {c.clip_id: c.landmarks for c in _clips(out).values()}
    for c in _clips(back).values():
        np.testing.assert_allclose(c.landmarks, originals[c.path[: -len(".pose")]], atol=1e-4, equal_nan=True)


def test_cli_fails_cleanly_when_nothing_is_readable(tmp_path: Path) -> None:
    from signlang.cli import app

    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.mp4").write_bytes(b"")
    (inp / "b.mov").write_text("text")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["extract", str(inp), str(out), "--workers", "1", "--no-progress"])
    assert result.exit_code == 1
    assert "none of the 2 input(s) could be read" in result.output
    with open(out / "errors.csv", newline="") as fh:
        assert {r["path"] for r in csv.DictReader(fh)} == {"a.mp4", "b.mov"}
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["extract", str(empty), str(out), "--no-progress"])
    assert result.exit_code == 2 and "no videos or .pose files found" in result.output


def _group_ends(pgid: int, timeout: float) -> bool:
    """Wait until no process of group ``pgid`` is left (workers exit when the main process dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)  # do not leave them running for the rest of the session
    return False


def test_resume_after_sigkill_matches_uninterrupted_run(
    mixed_input: Path, mixed_store: tuple[Path, object], tmp_path: Path
) -> None:
    out = tmp_path / "store"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*SIGNLANG, "extract", str(mixed_input), str(out), "--workers", "1", "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not store.iter_clip_files(out):
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        assert store.iter_clip_files(out), "no clip written within 120 s"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert _group_ends(proc.pid, timeout=10), "a worker or the forkserver outlived the killed run"
    n_before = len(store.iter_clip_files(out))
    assert 1 <= n_before < 7
    (out / "clips" / ".tmp-fake.npz.abc").write_bytes(b"half a clip")  # what a kill mid-write leaves

    done = subprocess.run(
        [*SIGNLANG, "extract", str(mixed_input), str(out), "--workers", "2", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"skipped {n_before}" in done.stdout and "failed 3" in done.stdout

    reference = {c.clip_id: c for c in _clips(mixed_store[0]).values()}
    resumed = {c.clip_id: c for c in _clips(out).values()}
    assert sorted(resumed) == sorted(reference)
    for cid, c in resumed.items():
        assert np.array_equal(c.landmarks, reference[cid].landmarks, equal_nan=True), cid
        assert (c.sha256, c.label, c.path) == (reference[cid].sha256, reference[cid].label, reference[cid].path)
    assert [r["clip_id"] for r in store.read_manifest(out)] == [r["clip_id"] for r in store.read_manifest(mixed_store[0])]
    assert not list(out.rglob(".tmp-*"))


def test_resize_and_fps_options(mixed_store: tuple[Path, object], real_videos_dir: Path, tmp_path: Path) -> None:
    """--max-side keeps landmarks in normalised image coordinates; --fps thins frames, never adds them."""
    full = _clips(mixed_store[0])["slp_pose_SOUP.mp4"]
    small = extract_video(real_videos_dir / "slp_pose_SOUP.mp4", max_side=160)  # 320x240 -> 160x120
    assert small.landmarks.shape == full.landmarks.shape and small.width == 320
    both = small.presence[:, 0] & full.presence[:, 0]
    shoulders = [11, 12, 0]
    assert np.median(np.abs(small.landmarks[both][:, shoulders, :2] - full.landmarks[both][:, shoulders, :2])) < 0.02
    thin = extract_video(real_videos_dir / "slp_pose_SOUP.mp4", fps=10)
    assert thin.fps == 10 and thin.n_frames == 14  # 41 frames at 29.97 fps = 1.37 s
    same = extract_video(real_videos_dir / "slp_pose_SOUP.mp4", fps=60)
    assert same.n_frames == 41 and same.fps == pytest.approx(29.97, abs=0.01)


def test_changed_source_replaces_its_clip(real_videos_dir: Path, tmp_path: Path) -> None:
    """A source whose bytes changed is extracted again; one that became unreadable loses its old clip."""
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(real_videos_dir / "slp_pose_SOUP.mp4", inp / "a.mp4")
    out = tmp_path / "out"
    assert extract_to_store(inp, out, workers=1, progress=False).done == 1
    again = extract_to_store(inp, out, workers=1, progress=False)
    assert (again.done, again.skipped) == (0, 1)
    (inp / "a.mp4").write_bytes(b"")
    broken = extract_to_store(inp, out, workers=1, progress=False)
    assert broken.failed == 1 and store.iter_clip_files(out) == [] and store.read_manifest(out) == []

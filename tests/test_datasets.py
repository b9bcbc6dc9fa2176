"""Loaders: the real .npz, save/load round trip, the landmark store with a damaged clip, dispatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signlang.datasets.clip import ClipSet
from signlang.datasets.formats import FORMATS, load_dataset
from signlang.datasets.loaders import load_npz, load_store, save_npz
from signlang.landmarks.layout import from_258
from signlang.landmarks.store import StoredClip, rebuild_manifest, write_clip


@pytest.fixture(scope="module")
def real(traduttore_npz: Path) -> ClipSet:
    return load_npz(traduttore_npz)


def test_real_npz_loads_with_duplicates_dropped(real: ClipSet, traduttore_npz: Path) -> None:
    assert len(real) == 4634
    assert len(real.classes) == 33 and real.classes[0] == "-" and "thank-you" in real.classes
    assert all(lm.shape == (20, 75, 3) and lm.dtype == np.float32 for lm in real.landmarks[:50])
    assert len(set(real.clip_ids.tolist())) == 4634
    with np.load(traduttore_npz) as z:
        dup = z["is_duplicate"]
        kept = np.flatnonzero(~dup)
        # ids are the row in the original file, so they survive dropping duplicates
        assert real.clip_ids[100] == f"traduttore_asl_mediapipe-{kept[100]:05d}"
        np.testing.assert_array_equal(real.y, z["y"][kept])
        np.testing.assert_array_equal(real.seq_ids, z["seq_id"][kept])
        expected = from_258(z["X"][kept[100]])[0]
    np.testing.assert_array_equal(real.landmarks[100], expected)
    assert real.signers[0] is None  # no signer ids in this data set
    # the letters have 45 clips each
    assert np.bincount(real.y, minlength=33)[real.classes.index("b")] == 45


def test_real_npz_keeps_duplicates_on_request(traduttore_npz: Path) -> None:
    full = load_npz(traduttore_npz, drop_duplicates=False)
    assert len(full) == 4693


def _write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_missing_or_misnamed_keys_name_file_and_key(tmp_path: Path) -> None:
    X = np.zeros((3, 4, 258), dtype=np.float16)
    bad = _write_npz(tmp_path / "bad.npz", x=X, y=np.zeros(3, dtype=np.int64), classes=np.array(["a"]))
    with pytest.raises(ValueError, match=r"bad\.npz.*'X'.*did you mean 'x'"):
        load_npz(bad)
    no_classes = _write_npz(tmp_path / "nocls.npz", X=X, y=np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"nocls\.npz.*'classes'"):
        load_npz(no_classes)
    wrong_shape = _write_npz(tmp_path / "shape.npz", X=np.zeros((3, 4, 100)), y=np.zeros(3, dtype=np.int64), classes=np.array(["a"]))
    with pytest.raises(ValueError, match=r"shape\.npz.*'X'.*\(3, 4, 100\)"):
        load_npz(wrong_shape)
    short_y = _write_npz(tmp_path / "short.npz", X=X, y=np.zeros(2, dtype=np.int64), classes=np.array(["a"]))
    with pytest.raises(ValueError, match=r"short\.npz.*'y'"):
        load_npz(short_y)
    out_of_range = _write_npz(tmp_path / "range.npz", X=X, y=np.array([0, 1, 5]), classes=np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"range\.npz.*'y'.*2 classes"):
        load_npz(out_of_range)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="garbage.npz"):
        load_npz(garbage)


def test_npz_string_labels_lengths_and_75x3(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((3, 6, 75, 3)).astype(np.float16)
    path = _write_npz(
        tmp_path / "strings.npz", X=X, y=np.array(["walk", "eat", "walk"]), lengths=np.array([6, 2, 4]),
        signer=np.array(["ann", "", "bo"]),
    )
    clips = load_npz(path)
    assert clips.classes == ("eat", "walk")
    np.testing.assert_array_equal(clips.y, [1, 0, 1])
    np.testing.assert_array_equal(clips.lengths, [6, 2, 4])
    np.testing.assert_array_equal(clips.landmarks[2], X[2, :4].astype(np.float32))
    assert list(clips.signers) == ["ann", None, "bo"]
    assert list(clips.clip_ids) == ["strings-00000", "strings-00001", "strings-00002"]


def test_save_npz_round_trip_with_variable_lengths(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    lms = [rng.random((t, 75, 3)).astype(np.float32) for t in (5, 9, 7)]
    lms[1][2:4, 33:54] = np.nan  # a missing left hand survives the round trip
    clips = ClipSet(
        landmarks=lms, y=np.array([2, 0, 1]), classes=("a", "b", "c"), clip_ids=np.array(["x1", "x2", "x3"]),
        signers=np.array(["s1", None, "s2"], dtype=object), seq_ids=np.array([4, -1, 2]),
        splits=np.array(["train", "test", ""], dtype=object), paths=np.array(["A/1. a/v.MOV", "", "B/c.mp4"], dtype=object),
    )
    target = save_npz(clips, tmp_path / "sub" / "out.npz")
    assert target.is_file() and not list(target.parent.glob(".tmp-*"))
    back = load_dataset(target)
    assert back.classes == clips.classes
    for name in ("y", "clip_ids", "signers", "seq_ids", "splits", "paths", "lengths"):
        np.testing.assert_array_equal(getattr(back, name), getattr(clips, name), err_msg=name)
    for a, b in zip(back.landmarks, clips.landmarks):
        np.testing.assert_array_equal(a, b)


def _stored(cid: str, label: str, t: int, seed: int, **kw: str) -> StoredClip:
    lm = np.random.default_rng(seed).random((t, 75, 3)).astype(np.float32)
    return StoredClip(clip_id=cid, landmarks=lm, fps=25.0, label=label, **kw)


def test_load_store_skips_damaged_clip_with_warning(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_clip(store, _stored("c1", "DOG", 8, 1, signer="s1", split="train", path="Animals/1. Dog/a.MOV"))
    write_clip(store, _stored("c2", "BIRD", 5, 2, signer="s2", split="test", path="Animals/4. Bird/b.MOV"))
    write_clip(store, _stored("c3", "DOG", 6, 3, path="Animals/1. Dog/c.MOV"))
    rebuild_manifest(store)
    (store / "clips" / "c2.npz").write_bytes(b"\x00damaged")  # damaged after the manifest was written
    with pytest.warns(RuntimeWarning, match=r"c2.*c2\.npz"):
        clips = load_store(store)
    assert list(clips.clip_ids) == ["c1", "c3"]
    assert clips.classes == ("DOG",)
    assert list(clips.signers) == ["s1", None]
    assert list(clips.splits) == ["train", ""]
    assert list(clips.paths) == ["Animals/1. Dog/a.MOV", "Animals/1. Dog/c.MOV"]
    np.testing.assert_array_equal(clips.lengths, [8, 6])
    np.testing.assert_array_equal(clips.landmarks[1], _stored("c3", "DOG", 6, 3).landmarks)
    # a clip listed in the manifest but deleted is skipped as well
    (store / "clips" / "c3.npz").unlink()
    with pytest.warns(RuntimeWarning) as record:
        assert list(load_dataset(store).clip_ids) == ["c1"]
    messages = " ".join(str(w.message) for w in record)
    assert "c3.npz" in messages and "missing" in messages and "c2.npz" in messages


def test_load_store_applies_include_lists(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_clip(store, _stored("c1", "DOG", 4, 1, path="INCLUDE/Animals/1. Dog/a.MOV"))
    write_clip(store, _stored("c2", "DOG", 4, 2, path="INCLUDE/Animals/1. Dog/b.MOV"))
    write_clip(store, _stored("c3", "DOG", 4, 3, path="INCLUDE/Animals/1. Dog/z.MOV"))
    rebuild_manifest(store)
    header = "Category,Word,Video,FilePath\n"
    (tmp_path / "tr.csv").write_text(header + "Animals,1. Dog,a.MOV,Animals/1. Dog/a.MOV\n")
    (tmp_path / "te.csv").write_text(header + "Animals,1. Dog,b.MOV,Animals/1. Dog/b.MOV\n")
    clips = load_store(store, split_csvs=(tmp_path / "tr.csv", tmp_path / "te.csv"))
    assert list(clips.splits) == ["train", "test", ""]


def test_load_dataset_dispatch_and_errors(tmp_path: Path) -> None:
    assert {"npz", "store", "pose", "gislr", "npy", "video", "videos"} <= set(FORMATS)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt.*not a dataset.*npz"):
        load_dataset(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="no such file"):
        load_dataset(tmp_path / "missing.npz")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(ValueError, match="empty"):
        load_dataset(empty_dir)
    bad_pose = tmp_path / "broken.pose"
    bad_pose.write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match=r"broken\.pose"):
        load_dataset(bad_pose)


def test_pose_file_loads_holistic_components(tmp_path: Path) -> None:
    pytest.importorskip("pose_format")
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderDimensions
    from pose_format.utils.holistic import holistic_components

    components = holistic_components()
    n_points = sum(len(c.points) for c in components)
    rng = np.random.default_rng(0)
    norm = rng.uniform(0.1, 0.9, (6, 1, n_points, 3)).astype(np.float32)
    pixels = norm * np.array([640.0, 480.0, 1.0], dtype=np.float32)  # pose-format: x, y in pixels, z as MediaPipe gives it
    mask = np.zeros_like(pixels, dtype=bool)
    left_start = 33 + 468
    mask[2, 0, left_start : left_start + 21] = True  # left hand not detected in frame 2
    confidence = (~mask[..., 0]).astype(np.float32)  # pose-format marks undetected points by confidence 0
    body = NumPyPoseBody(fps=25, data=np.ma.masked_array(pixels, mask=mask), confidence=confidence)
    pose = Pose(PoseHeader(version=0.1, dimensions=PoseHeaderDimensions(width=640, height=480, depth=0), components=components), body)
    target = tmp_path / "HELLO.pose"
    with open(target, "wb") as fh:
        pose.write(fh)
    clips = load_dataset(target)
    assert len(clips) == 1 and clips.classes == ("HELLO",)
    lm = clips.landmarks[0]
    assert lm.shape == (6, 75, 3)
    expected = np.concatenate([norm[:, 0, :33], norm[:, 0, left_start : left_start + 21], norm[:, 0, left_start + 21 : left_start + 42]], axis=1)
    expected[2, 33:54] = np.nan
    np.testing.assert_allclose(lm, expected, rtol=1e-5, atol=1e-6)

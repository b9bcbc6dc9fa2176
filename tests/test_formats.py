"""The one input layer (signlang.datasets.formats): one registry behind training data and prediction inputs,
videos read through the one extraction function, and a Predictor that only receives landmarks."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from bundle_fixtures import tiny_clips
from signlang.datasets.formats import FORMATS, Format, Item, find_format, load_dataset, read_inputs, register_format, with_landmarks
from signlang.datasets.loaders import save_npz


def test_each_built_in_format_is_found_for_its_path(tmp_path: Path) -> None:
    clips = tiny_clips()
    npz = save_npz(clips.subset([0, 1, 2]), tmp_path / "set.npz")
    npy = tmp_path / "clip.npy"
    np.save(npy, clips.landmarks[0])
    video = tmp_path / "hello.MOV"
    video.write_bytes(b"\x00")
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(b"\x00")
    assert [find_format(p).name for p in (npz, npy, video, folder)] == ["npz", "npy", "video", "videos"]
    assert [it.clip_id for it in read_inputs(npz)] == list(clips.subset([0, 1, 2]).clip_ids)
    assert read_inputs(npy)[0].landmarks.shape == clips.landmarks[0].shape
    items = read_inputs(video)
    assert items[0].video == video and items[0].landmarks is None  # decoded later, by the caller's Landmarker
    assert len(load_dataset(npz)) == 3
    with pytest.raises(ValueError, match=r"clip\.npy: not a dataset \(a \.npy clip.*no labels.*npz:"):
        load_dataset(npy)
    with pytest.raises(ValueError, match=r"videos: not a dataset .*signlang extract"):
        load_dataset(folder)
    with pytest.raises(ValueError, match=r"nothing\.txt: no such file"):
        read_inputs(tmp_path / "nothing.txt")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"notes\.txt: not a dataset or input.*gislr"):
        read_inputs(tmp_path / "notes.txt")


def test_a_format_registered_once_serves_training_and_prediction(tmp_path: Path) -> None:
    """A new format (from this file alone) is read by load_dataset and read_inputs alike."""
    from signlang.datasets.clip import ClipSet

    clips = tiny_clips()

    def read(path: Path) -> ClipSet:
        z = np.load(path, allow_pickle=False)
        n = int(z["n"])
        return ClipSet(clips.landmarks[:n], clips.y[:n], clips.classes, clips.clip_ids[:n])

    fmt = register_format(Format("toyclips", "a .toyclips file (a test format)",
                                 lambda p: p.is_file() and p.suffix == ".toyclips",
                                 lambda p: [Item(str(p), str(c), lm) for c, lm in zip(read(p).clip_ids, read(p).landmarks)], read))
    try:
        path = tmp_path / "four.toyclips"
        with path.open("wb") as fh:
            np.savez(fh, n=4)
        assert "toyclips" in FORMATS and find_format(path) is fmt
        assert len(load_dataset(path)) == 4 and [it.clip_id for it in read_inputs(path)] == list(clips.clip_ids[:4])
    finally:
        FORMATS.unregister("toyclips")


def test_a_bad_store_clip_is_its_own_error_and_the_rest_go_on(tmp_path: Path) -> None:
    from signlang.landmarks.store import CLIPS_DIR, MANIFEST

    clips = tiny_clips()
    store = tmp_path / "store"
    (store / CLIPS_DIR).mkdir(parents=True)
    for cid, lm in (("c1", clips.landmarks[0]), ("c3", clips.landmarks[1])):
        np.savez(store / CLIPS_DIR / f"{cid}.npz", landmarks=lm, fps=np.float32(25), path="", sha256="", label="", signer="", split="")
    (store / MANIFEST).write_text("clip_id,label\nc1,\nc2,\nc3,\n")  # c2 listed, its file missing; no labels at all
    items = read_inputs(store)
    assert [it.clip_id for it in items] == ["c1", "c2", "c3"]
    assert items[0].error is None and items[0].fps == 25 and items[2].landmarks.shape == clips.landmarks[1].shape
    assert isinstance(items[1].error, ValueError) and "c2.npz: listed in the manifest but missing" in str(items[1].error)


class _FakeLandmarker:
    """Stands in for landmarks.extract.Landmarker: bad.mp4 is unreadable, any other video gives 7 frames."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, path: Path):  # noqa: ANN204
        from signlang.landmarks.extract import VideoLandmarks
        from signlang.landmarks.video import VideoReadError

        self.calls.append(path.name)
        if path.name == "bad.mp4":
            raise VideoReadError(f"{path}: not a video: the file holds plain text")
        return VideoLandmarks(np.full((7, 75, 3), 0.5, np.float32), 30.0, timings_ms={"decode": 1.0, "landmarks": 2.0})


def test_with_landmarks_reads_videos_lazily_and_one_bad_file_never_stops_the_batch(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a.mp4", "bad.mp4", "c.mp4"):
        (folder / name).write_bytes(b"\x00")
    fake = _FakeLandmarker()
    stream = with_landmarks(read_inputs(folder), fake)
    first = next(stream)
    assert fake.calls == ["a.mp4"] and first.landmarks.shape == (7, 75, 3) and first.timings_ms["landmarks"] == 2.0
    rest = list(stream)
    assert fake.calls == ["a.mp4", "bad.mp4", "c.mp4"]
    assert rest[0].landmarks is None and rest[0].error is not None and rest[0].error.code == "unreadable_video"
    assert "bad.mp4" in str(rest[0].error) and rest[1].error is None and rest[1].fps == 30.0


def test_the_predictor_receives_landmarks_and_reports_video_items_in_order(tiny_bundle: Path, tmp_path: Path) -> None:
    from signlang.inference.policy import error_code
    from signlang.inference.predictor import Predictor

    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a.mp4", "bad.mp4"):
        (folder / name).write_bytes(b"\x00")
    clips = tiny_clips()
    npz = save_npz(clips.subset([0, 1]), tmp_path / "two.npz")
    items = [*read_inputs(folder), *read_inputs(npz)]
    with Predictor(tiny_bundle) as predictor:
        assert not hasattr(predictor, "predict_video") and not hasattr(predictor, "extract")
        out = list(predictor.predict_items(with_landmarks(items, _FakeLandmarker())))
        unread = list(predictor.predict_items(read_inputs(folder)))  # videos never passed through a Landmarker
    assert [it.clip_id for it, _, _ in out] == ["a", "bad", *clips.clip_ids[:2]]
    (_, p_a, e_a), (_, p_bad, e_bad) = out[:2]
    assert e_a is None and p_a.frames == 7 and p_a.timings_ms["decode"] == 1.0
    assert p_bad is None and error_code(e_bad) == "unreadable_video"
    assert all(p is not None for _, p, _ in out[2:])
    assert all(p is None and "no landmarks" in str(e) for _, p, e in unread)


def test_inference_decodes_no_video() -> None:
    """Video decoding lives with extraction: no module under inference/ imports the decoder or MediaPipe."""
    import signlang

    root = Path(signlang.__file__).parent / "inference"
    offenders = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names if n in ("signlang.landmarks.video", "signlang.landmarks.extract", "mediapipe", "av")]
    assert not offenders, offenders

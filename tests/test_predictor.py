"""The predictor: same numbers as the bundle, verified loading, batch API, videos, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bundle_fixtures import TINY_PREPROCESSING, tiny_clips


def test_same_probabilities_as_the_bundle(predictor, tiny_bundle: Path) -> None:
    """The predictor's own plumbing (normalise once, features once, models) equals the training path."""
    from signlang.features.normalize import NormalizeConfig, normalize_clips
    from signlang.models.bundle import load_bundle

    clips = tiny_clips().landmarks[:5]
    X = normalize_clips(clips, NormalizeConfig.from_dict(TINY_PREPROCESSING["normalize"]))
    expected = load_bundle(tiny_bundle).predict_proba(X)
    np.testing.assert_allclose(predictor.proba(clips), expected, atol=1e-6)


def test_prediction_fields(predictor) -> None:
    clips = tiny_clips()
    r = predictor.predict_landmarks(clips.landmarks[3], top_k=3)
    assert r.probs.shape == (len(predictor.classes),) and abs(float(r.probs.sum()) - 1) < 1e-5
    assert [s for s, _ in r.top_k] == [predictor.classes[i] for i in np.argsort(-r.probs)[:3]]
    assert r.frames == clips.landmarks[3].shape[0] and 0 < r.hands_detected <= 1
    assert set(r.timings_ms) == {"decode", "landmarks", "features", "model", "total"}
    assert r.timings_ms["decode"] == 0 and r.timings_ms["model"] > 0
    assert r.timings_ms["total"] == pytest.approx(sum(v for k, v in r.timings_ms.items() if k != "total"))
    flat = predictor.predict_landmarks(np.nan_to_num(clips.landmarks[3]).reshape(-1, 225))
    np.testing.assert_allclose(flat.probs, r.probs, atol=1e-6)  # (T, 225) with zeros = missing


def test_batch_reports_bad_clips_and_keeps_going(predictor) -> None:
    from signlang.inference.predictor import error_code

    clips = tiny_clips().landmarks
    no_hands = clips[1].copy()
    no_hands[:, 33:] = np.nan
    batch = [clips[0], np.zeros((5, 10)), no_hands, clips[2]]
    results, errors = predictor.predict_batch(batch)
    assert set(errors) == {1, 2}
    assert "clip 1" in str(errors[1]) and "(5, 10)" in str(errors[1])
    assert "no hand" in str(errors[2])
    assert error_code(errors[2]) == "nothing_detected" and error_code(errors[1]) != "nothing_detected"
    assert results[1] is None and results[2] is None
    for i in (0, 3):
        np.testing.assert_allclose(results[i].probs, predictor.predict_landmarks(batch[i]).probs, atol=1e-6)


def test_detection_errors(predictor) -> None:
    from signlang.inference.predictor import NoHandsError, NoPersonError

    with pytest.raises(NoPersonError, match="no person"):
        predictor.predict_landmarks(np.full((8, 75, 3), np.nan, dtype=np.float32))
    lm = tiny_clips().landmarks[0].copy()
    lm[:, 33:] = np.nan
    with pytest.raises(NoHandsError, match="no hand"):
        predictor.predict_landmarks(lm)
    with pytest.raises(ValueError, match=r"landmarks: expected shape"):
        predictor.predict_landmarks(np.zeros((4, 7)))


def _copy(bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(bundle, dst)
    return dst


def test_tampered_bundle_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    from signlang.inference.predictor import Predictor

    copy = _copy(tiny_bundle, tmp_path)
    target = next(copy.glob("*.safetensors"))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        Predictor(copy, backend="torch")


def test_pickles_and_unknown_formats_are_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    from signlang.inference.predictor import Predictor

    copy = _copy(tiny_bundle, tmp_path)
    (copy / "model.pkl").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ValueError, match="pickle"):
        Predictor(copy, backend="torch")
    (copy / "model.pkl").unlink()
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format"] = "something-else"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="not a signlang bundle or ONNX export"):
        Predictor(copy, backend="torch")
    with pytest.raises(ValueError, match="backend must be one of"):
        Predictor(tiny_bundle, backend="tensorflow")


def test_onnx_backend_uses_the_bundles_own_export(tiny_bundle: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    from signlang.inference.predictor import Predictor

    copy = _copy(tiny_bundle, tmp_path)
    shutil.copytree(tiny_onnx, copy / "onnx")
    with Predictor(copy, backend="onnx") as p:
        assert p.model_info["onnx_dir"] == str(copy / "onnx")
        clips = tiny_clips().landmarks[:3]
        with Predictor(tiny_bundle, backend="torch") as pt:
            np.testing.assert_allclose(p.proba(clips), pt.proba(clips), atol=1e-4)


@pytest.mark.video
def test_videos_reach_the_predictor_as_landmarks(predictor, real_videos_dir: Path, tmp_path: Path) -> None:
    """A video goes through the one extraction function, then the Predictor (which decodes nothing itself);
    a file that is not a video is that item's error, with the code the service answers, and the rest go on."""
    from signlang.datasets.formats import read_inputs, with_landmarks
    from signlang.inference.policy import error_code
    from signlang.landmarks.extract import Landmarker
    from signlang.landmarks.video import VideoReadError

    assert not hasattr(predictor, "predict_video") and not hasattr(predictor, "extract")
    folder = tmp_path / "videos"
    folder.mkdir()
    text = folder / "a_notes.mp4"
    text.write_text("not a video\n" * 10)
    (folder / "b_soup.mp4").symlink_to(real_videos_dir / "slp_pose_SOUP.mp4")
    with Landmarker(quiet=True) as landmarker:
        with pytest.raises(VideoReadError, match="a_notes.mp4.*plain text"):
            landmarker(text)
        out = list(predictor.predict_items(with_landmarks(read_inputs(folder), landmarker)))
    (bad, p0, e0), (good, r, e1) = out
    assert p0 is None and "plain text" in str(e0) and error_code(e0) == "unreadable_video"
    assert e1 is None and r is not None and r.frames > 10 and r.hands_detected > 0
    assert r.timings_ms["decode"] > 0 and r.timings_ms["landmarks"] > r.timings_ms["model"]

"""``signlang benchmark spot``: the event matching behind F1 @ IoU 0.5, the word error rate, the stream
builder and the fixed-window baseline on known inputs; and the whole benchmark on real traduttore
streams with a small XGBoost bundle and very small counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signlang.bench import spot


def _stream(signs: list[str], spans: list[tuple[float, float]]) -> spot.Stream:
    return spot.Stream(np.zeros((10, 75, 3), np.float32), signs, spans)


def test_iou() -> None:
    assert spot.iou((0, 1), (0, 1)) == 1.0
    assert spot.iou((0, 1), (0.5, 1.5)) == pytest.approx(1 / 3)
    assert spot.iou((0, 1), (2, 3)) == 0.0
    assert spot.iou((1, 1), (1, 1)) == 0.0  # empty intervals


def test_match_needs_the_right_sign_enough_overlap_and_each_true_sign_once() -> None:
    st = _stream(["hello", "tea", "hello"], [(0.0, 1.0), (1.5, 2.5), (3.0, 4.0)])
    pred = [("hello", 0.1, 1.0), ("hello", 0.0, 0.9), ("tea", 1.5, 2.0), ("coffee", 3.0, 4.0), ("hello", 3.2, 4.1)]
    tp, pairs = spot.match(pred, st)
    # the 2nd "hello" finds the first true sign already used; "tea" has IoU exactly 0.5 (counts);
    # "coffee" is the wrong sign; the last "hello" overlaps the third true sign
    assert tp == 3 and pairs == [(0, 0), (2, 1), (4, 2)]
    assert spot.match(pred, st, min_iou=0.9)[0] == 1  # only the first is that close


def test_edit_distance() -> None:
    assert spot.edit_distance([], []) == 0
    assert spot.edit_distance(["a", "b", "c"], ["a", "b", "c"]) == 0
    assert spot.edit_distance(["a", "c"], ["a", "b", "c"]) == 1  # deletion
    assert spot.edit_distance(["a", "x", "c", "d"], ["a", "b", "c"]) == 2  # substitution + insertion
    assert spot.edit_distance([], ["a", "b"]) == 2


def test_score_precision_recall_f1_and_wer() -> None:
    streams = [_stream(["a", "b"], [(0, 1), (2, 3)]), _stream(["c"], [(0, 1)])]
    preds = [[("a", 0, 1), ("x", 2, 3)], [("c", 0, 1), ("c", 2, 3)]]
    s = spot.score(preds, streams)
    assert s["signs"] == 3 and s["detections"] == 4
    assert s["precision"] == pytest.approx(2 / 4) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1_iou50"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert s["wer"] == pytest.approx(2 / 3)  # one substitution, one insertion
    empty = spot.score([[]], [_stream(["a"], [(0, 1)])])
    assert empty["f1_iou50"] == 0.0 and empty["wer"] == 1.0


def test_resample_and_transition() -> None:
    clip = np.arange(5 * 75 * 3, dtype=np.float32).reshape(5, 75, 3)
    assert spot._resample(clip, 9).shape == (9, 75, 3)
    np.testing.assert_array_equal(spot._resample(clip, 5), clip)
    a, b = np.zeros((75, 3), np.float32), np.ones((75, 3), np.float32)
    a[0] = np.nan  # a part missing in the first frame is taken from the other
    t = spot._transition(a, b, 3)
    assert t.shape == (3, 75, 3) and not np.isnan(t).any()
    np.testing.assert_allclose(t[:, 1, 0], [0.25, 0.5, 0.75])
    np.testing.assert_allclose(t[:, 0, 0], 1.0)


def test_make_streams_from_labelled_clips() -> None:
    rng = np.random.default_rng(0)
    classes = ("-", "a", "b", "c")
    labels = np.array([0, 0] + [1, 2, 3] * 6)
    landmarks = [rng.normal(size=(20, 75, 3)).astype(np.float32) for _ in labels]
    idx = np.arange(len(labels))
    streams = spot.make_streams(landmarks, labels, classes, idx, n_streams=3, seed=1)
    assert len(streams) == 3
    for st in streams:
        assert 5 <= len(st.signs) <= 12 and len(st.spans) == len(st.signs) and "-" not in st.signs
        starts, ends = np.array(st.spans).T
        assert (ends > starts).all() and (starts[1:] >= ends[:-1]).all()  # in order, never overlapping
        assert ends[-1] == pytest.approx(len(st.frames) / spot.FPS)  # the last sign ends the stream
        assert st.frames.shape[1:] == (75, 3)
    again = spot.make_streams(landmarks, labels, classes, idx, n_streams=3, seed=1)
    assert [s.signs for s in again] == [s.signs for s in streams]  # deterministic


class _OneSignModel:
    """A model that answers "b" for a window whose mean x is above 0.5, else "-" (idle)."""

    classes = ("-", "a", "b")

    def proba(self, clips):
        return np.array([[0.0, 0.0, 1.0] if np.nanmean(c[..., 0]) > 0.5 else [1.0, 0.0, 0.0] for c in clips])


def test_baseline_segments_drop_idle_and_merge_repeats() -> None:
    frames = np.zeros((60, 75, 3), np.float32)
    frames[15:45, :, 0] = 1.0  # "b" from 0.5 s to 1.5 s at 30 FPS
    segs = spot.baseline_segments(_OneSignModel(), frames, window_s=0.5)  # 15-frame windows
    assert segs == [("b", 0.5, 1.5)]
    assert spot.baseline_segments(_OneSignModel(), frames[:1], window_s=0.5) == []  # shorter than one window


@pytest.fixture(scope="module")
def traduttore_bundle(traduttore_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small pooled-XGBoost bundle over the 33 traduttore classes (8 clips of each), in seconds."""
    from signlang.datasets.loaders import load_npz
    from signlang.models.bundle import save_bundle
    from signlang.models.trees import PooledXGBoostClassifier
    from signlang.training.config import config_from_dict
    from signlang.training.pipeline import normalize, preprocessing_of

    clips = load_npz(traduttore_npz)
    pick = np.concatenate([np.flatnonzero(clips.y == c)[:8] for c in range(len(clips.classes))])
    pre = preprocessing_of(config_from_dict({"data": {"target_frames": 16}, "device": "cpu"}))
    model = PooledXGBoostClassifier(n_estimators=4, max_depth=2, learning_rate=0.5, max_bin=16, n_jobs=1)
    model.fit(normalize([clips.landmarks[i] for i in pick], pre), clips.y[pick])
    out = tmp_path_factory.mktemp("spot") / "bundle"
    save_bundle(out, model, classes=clips.classes, preprocessing=pre, report={}, name="xgboost")
    return out


@pytest.mark.data
def test_spot_benchmark_on_real_streams(traduttore_bundle: Path, traduttore_npz: Path, tmp_path: Path) -> None:
    import shutil

    from signlang.datasets.loaders import load_npz
    from signlang.datasets.streams import StreamSource, make_training_streams
    from signlang.models.bundle import attach_segmenter
    from signlang.models.segmenter import StreamSegmenter

    md, data = spot.run_spot_benchmark(str(traduttore_bundle), n_streams=2, n_val_streams=1, windows=(0.5, 0.67),
                                       latency_streams=1)
    assert data["streams"] == 2 and data["val_streams"] == 1 and data["window_s"] in (0.5, 0.67)
    assert set(data["window_selection_on_validation"]) == {"0.5", "0.67"}
    assert "segmenter" not in data and data["recognizer"] == data["gate"]  # no segmenter: the gate is the recognizer
    for part in ("gate", "baseline_fixed_windows"):
        s = data[part]
        assert 0.0 <= s["f1_iou50"] <= 1.0 and 0.0 <= s["precision"] <= 1.0 and 0.0 <= s["recall"] <= 1.0 and s["wer"] >= 0
        assert 10 <= s["signs"] <= 24  # 2 streams of 5-12 signs
    assert data["gate"]["signs"] == data["baseline_fixed_windows"]["signs"]
    assert data["frames"] > 0 and data["recognizer_frames_per_s_one_core"] > 0
    lat = data["latency_ms"]  # matched signs of the first test stream (5-12 signs)
    assert 0 <= lat["n"] <= 12 and (lat["n"] == 0 or lat["median"] <= lat["p95"])
    assert "| window gate (" in md and "| baseline: fixed non-overlapping" in md and "two-stage" not in md
    assert f"Gate window {data['window_s']:g} s chosen on 1 streams" in md

    # with a (barely trained) segmenter in the bundle, its row joins the same run
    clips = load_npz(traduttore_npz)
    seg = StreamSegmenter(enabled=True, hidden=8, epochs=1, chunk=32).fit_streams(
        make_training_streams([StreamSource(clips, np.arange(0, len(clips), 40))], 8, seed=0))
    with_seg = tmp_path / "bundle"
    shutil.copytree(traduttore_bundle, with_seg)
    attach_segmenter(with_seg, seg)
    md, data = spot.run_spot_benchmark(str(with_seg), n_streams=1, n_val_streams=1, windows=(0.5,), latency_streams=1)
    assert data["recognizer"] == data["segmenter"] and data["segmenter"]["signs"] == data["gate"]["signs"]
    assert data["segmenter"]["frames_per_s_one_core"] > 0 and "| two-stage: segmenter + isolated classifier |" in md
    d = data["segmenter"]["diagnosis"]
    assert 0 <= d["segmenter_f1"] <= 1 and 0 <= d["classifier_accuracy_on_true_spans"] <= 1 and "where signs are lost" in md


@pytest.mark.data
def test_spot_benchmark_refuses_a_bundle_of_another_vocabulary(tiny_bundle: Path, traduttore_npz: Path) -> None:
    with pytest.raises(ValueError, match="classes differ from the traduttore vocabulary"):
        spot.run_spot_benchmark(str(tiny_bundle), n_streams=1, n_val_streams=1)

"""The temporal segmenter end to end on the tiny synthetic set: the training streams' targets, the
per-frame features, a segmenter trained in seconds, its ONNX parity, and two-stage decoding in the
streaming recognizer (back-to-back signs, idle streams, frame rates, malformed frames)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bundle_fixtures import tiny_clips

FPS = 30


def _source():
    from signlang.datasets.streams import StreamSource

    clips = tiny_clips()
    return clips, StreamSource(clips, np.arange(len(clips)), name="tiny")


def test_training_stream_targets_line_up_with_the_frames() -> None:
    from signlang.datasets.streams import TAG_B, TAG_I, TAG_O, StreamSpec, make_training_streams, mirror_image, resample

    clips, src = _source()
    streams = make_training_streams([src], 12, spec=StreamSpec(max_drop=0.0, p_mirror=0.5), seed=3)
    assert any(s.mirrored for s in streams) and not all(s.mirrored for s in streams)
    n_segments = 0
    for s in streams:
        assert len(s.frames) == len(s.tags) == len(s.labels)
        inside = np.zeros(len(s.frames), bool)
        for a, b, label, i, n in s.segments:
            clip = resample(clips.landmarks[i], n)
            np.testing.assert_array_equal(s.frames[a:b], mirror_image(clip) if s.mirrored else clip)  # the inserted clip
            assert s.tags[a] == TAG_B and (s.tags[a + 1: b] == TAG_I).all() and label == clips.y[i] and (s.labels[a:b] == label).all()
            inside[a:b] = True
            n_segments += 1
        assert (s.tags[~inside] == TAG_O).all() and (s.labels[~inside] == -1).all()
        assert not inside[0] and not inside[-1]  # idle at both ends
    assert n_segments == sum((s.tags == TAG_B).sum() for s in streams) >= 24
    # back to back: some B follows I with only a transition of outside frames between (or none)
    speeds = [len(clips.landmarks[i]) / n for s in streams for *_, i, n in s.segments]
    assert 0.55 <= min(speeds) and max(speeds) <= 1.65
    dropped = make_training_streams([src], 4, spec=StreamSpec(max_drop=0.3), seed=3)
    assert sum(len(s.dropped) for s in dropped) > 0
    for s in dropped:  # a dropped frame repeats the previous one
        np.testing.assert_array_equal(s.frames[s.dropped], s.frames[s.dropped - 1])


def test_frame_features_are_the_same_frame_by_frame() -> None:
    from signlang.features.frames import FRAME_DIM, StreamFeaturizer, stream_features

    frames = np.concatenate(tiny_clips().landmarks[:3])
    frames[5, 33:] = np.nan  # hands lost for a frame
    whole = stream_features(frames)
    assert whole.shape == (len(frames), FRAME_DIM) and np.isfinite(whole).all()
    fz = StreamFeaturizer()
    parts = np.concatenate([fz(frames[a:b]) for a, b in ((0, 1), (1, 7), (7, 40), (40, len(frames)))])
    np.testing.assert_allclose(parts, whole, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(T, 75, 3\)"):
        stream_features(frames[:, :70])


@pytest.fixture(scope="module")
def segmenter():
    """A segmenter trained on tiny-set streams in seconds."""
    import torch

    from signlang.datasets.streams import make_training_streams
    from signlang.models.segmenter import StreamSegmenter

    torch.set_num_threads(1)
    _, src = _source()
    return StreamSegmenter(enabled=True, hidden=16, epochs=3, chunk=64, lr=1e-2, seed=0).fit_streams(make_training_streams([src], 80, seed=0))


def test_segmenter_finds_the_segments_of_a_stream(segmenter) -> None:
    from signlang.datasets.streams import make_training_streams
    from signlang.models.segmenter import segment_f1

    _, src = _source()
    streams = make_training_streams([src], 10, seed=99)  # not the training streams
    scores = segmenter.score(streams)
    assert scores["f1"] >= 0.9 and scores["boundary_error_frames"] <= 3, scores
    s = streams[0]
    tp, n_pred, n_true = segment_f1(segmenter.segments(s.frames), [(a, b) for a, b, *_ in s.segments])
    assert n_true >= 2 and tp >= n_true - 1


def test_streamed_tags_equal_the_whole_stream_tags(segmenter) -> None:
    from signlang.features.frames import stream_features
    from signlang.inference.segments import TorchTagger

    frames = np.concatenate(tiny_clips().landmarks[:4])
    feats = stream_features(frames)
    tagger = TorchTagger(segmenter)
    streamed = np.concatenate([tagger.step(feats[a:b]) for a, b in ((0, 3), (3, 4), (4, 50), (50, len(feats)))] + [tagger.flush()])
    np.testing.assert_allclose(streamed, segmenter.tag_proba(feats), atol=1e-5)


def test_segmenter_onnx_parity(segmenter, tmp_path: Path) -> None:
    from signlang.inference.export import check_segmenter_parity, segmenter_to_onnx

    entry, _ = segmenter.to_entry()
    entry["file"] = "segmenter.onnx"
    (tmp_path / "segmenter.onnx").write_bytes(segmenter_to_onnx(segmenter))
    assert check_segmenter_parity(segmenter, tmp_path, entry) < 1e-4


@pytest.fixture(scope="module")
def seg_bundle(tiny_bundle: Path, segmenter, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bundle with the tiny segmenter attached (a copy)."""
    from signlang.models.bundle import attach_segmenter, load_bundle

    out = tmp_path_factory.mktemp("seg") / "bundle"
    shutil.copytree(tiny_bundle, out)
    attach_segmenter(out, segmenter)
    assert load_bundle(out).segmenter is not None  # sha256-verified
    return out


@pytest.fixture(scope="module")
def seg_predictor(seg_bundle: Path):
    from signlang.inference.predictor import Predictor

    with Predictor(seg_bundle, backend="torch", threads=1) as p:
        assert p.segmenter is not None
        yield p


def _known_clips(predictor) -> list[int]:
    """Clips the tiny ensemble classifies right on their own."""
    clips = tiny_clips()
    probs = predictor.proba(clips.landmarks)
    return [i for i in range(len(clips)) if probs[i].argmax() == clips.y[i] and probs[i].max() >= 0.5]


def _stream(indices: list[int], gap: int) -> tuple[np.ndarray, list[str]]:
    """Clips of ``indices`` with ``gap`` still frames before, between (plus an 8-frame transition) and after."""
    from signlang.datasets.streams import still, transition

    clips = tiny_clips()
    rng = np.random.default_rng(0)
    parts = [still(clips.landmarks[indices[0]][0], 20, rng)]
    for i in indices:
        c = clips.landmarks[i]
        parts += [transition(parts[-1][-1], c[0], 8, rng)] + ([still(c[0], gap, rng)] if gap else []) + [c]
    parts.append(transition(parts[-1][-1], parts[-1][-1], 4, rng))
    parts.append(still(parts[-1][-1], 25, rng))
    return np.concatenate(parts), [clips.classes[clips.y[i]] for i in indices]


def test_two_identical_signs_back_to_back_give_two_events(seg_predictor) -> None:
    from signlang.inference.streaming import StreamConfig, spot

    i = _known_clips(seg_predictor)[0]
    frames, signs = _stream([i, i], gap=0)
    segs = spot(seg_predictor, frames, fps=FPS, config=StreamConfig())
    assert [s.sign for s in segs] == signs
    assert segs[0].end_s <= segs[1].start_s + 1e-6


def test_an_idle_only_stream_gives_no_event(seg_predictor) -> None:
    from signlang.datasets.streams import still
    from signlang.inference.streaming import StreamingRecognizer

    clip = tiny_clips().landmarks[0]
    rng = np.random.default_rng(1)
    for frames in (still(clip[0], 300, rng), np.full((120, 75, 3), np.nan, np.float32)):
        rec = StreamingRecognizer(seg_predictor)
        assert rec.mode == "segmenter"
        assert [e for k, f in enumerate(frames) for e in rec.push(f, k / FPS)] + rec.finish() == []


def test_same_events_at_15_25_30_fps_and_with_dropped_frames(seg_predictor) -> None:
    from stream_fixtures import rate_variants

    from signlang.inference.streaming import spot

    known = _known_clips(seg_predictor)
    frames, signs = _stream(known[:3], gap=10)
    t = np.arange(len(frames)) / FPS
    ref = spot(seg_predictor, frames, times=t)
    assert [s.sign for s in ref] == signs
    for idx in rate_variants(len(frames))[1:]:  # 15 FPS, 25 FPS, 20 % of frames dropped
        got = spot(seg_predictor, frames[idx], times=t[idx])
        assert [s.sign for s in got] == signs
        assert np.allclose([s.start_s for s in got], [s.start_s for s in ref], atol=0.2)
        assert np.allclose([s.end_s for s in got], [s.end_s for s in ref], atol=0.2)


def test_a_malformed_frame_is_refused_and_the_stream_goes_on(seg_predictor) -> None:
    from signlang.inference.streaming import FrameError, StreamingRecognizer

    known = _known_clips(seg_predictor)
    frames, signs = _stream(known[:2], gap=10)
    rec = StreamingRecognizer(seg_predictor)
    events = []
    for k, f in enumerate(frames):
        if k % 30 == 5:
            with pytest.raises(FrameError, match="expected shape|infinite"):
                rec.push(np.full((75, 3), np.inf) if k % 60 == 5 else np.zeros((70, 3)), k / FPS + 0.001)
        events += rec.push(f, k / FPS)
    events += rec.finish()
    assert [e.sign for e in events] == signs and rec.stats["refused"] >= 3
    assert all(e.emitted_at_s >= e.end_s for e in events)


def test_the_gate_is_the_fallback(seg_predictor) -> None:
    from signlang.inference.streaming import StreamConfig, StreamingRecognizer

    assert StreamingRecognizer(seg_predictor, StreamConfig(use_segmenter=False)).mode == "gate"


def test_signlang_train_fits_the_segmenter_when_its_section_asks(tmp_path: Path) -> None:
    from bundle_fixtures import TINY_TRAIN_OVERRIDES

    from signlang.inference.predictor import Predictor
    from signlang.models.bundle import load_bundle
    from signlang.training import pipeline
    from signlang.training.config import load_config, merge_overrides, shipped_config_path

    cfg = merge_overrides(load_config(shipped_config_path("cpu")), {
        **TINY_TRAIN_OVERRIDES, "segmenter.enabled": True, "segmenter.hidden": 8, "segmenter.n_streams": 30,
        "segmenter.epochs": 1, "segmenter.chunk": 32})
    report = pipeline.train_bundle(tiny_clips(), tmp_path / "b", cfg, models="xgboost", split="signer", track=False, progress=False)
    seg = load_bundle(tmp_path / "b").segmenter
    assert seg is not None and seg.net_.config["hidden"] == 8
    assert report["segmenter"]["validation"]["f1"] >= 0.0 and len(report["segmenter"]["history"]) == 1
    with Predictor(tmp_path / "b", threads=1) as p:
        assert p.segmenter is not None and p.segmenter.backend == "torch"
    off = merge_overrides(cfg, {"segmenter.enabled": False})
    pipeline.train_bundle(tiny_clips(), tmp_path / "c", off, models="xgboost", split="signer", track=False, progress=False, validate=False)
    assert load_bundle(tmp_path / "c").segmenter is None
    with pytest.raises(ValueError, match="frame tagger"):
        pipeline.resolve_models(["xgboost", "segmenter"], cfg)


def test_two_stage_memory_is_constant_over_a_long_stream(seg_predictor) -> None:
    import tracemalloc

    from signlang.inference.streaming import StreamingRecognizer

    known = _known_clips(seg_predictor)
    frames, signs = _stream(known[:2], gap=10)
    rec = StreamingRecognizer(seg_predictor)
    k = n_events = 0

    def play(n_loops: int) -> int:
        nonlocal k
        n = 0
        for _ in range(n_loops):
            for f in frames:
                n += len(rec.push(f, k / FPS))
                k += 1
        return n

    play(2)  # warm up every code path
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    n_events = play(8)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    assert n_events == 8 * len(signs)
    assert grown < 256 * 1024, f"memory grew by {grown} bytes over {8 * len(frames)} frames"

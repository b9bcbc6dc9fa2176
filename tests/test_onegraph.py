"""The one ONNX graph (landmarks -> probabilities, ``model.onnx``) against the Python path: the torch front end
against numpy normalisation and features on real and degenerate clips, and the exported graph against the
Predictor on torch and on the split ONNX files, on real clips, with the shipped model and a freshly trained one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import signlang
from signlang.features.engineering import block_slices, hull_shape
from signlang.features.normalize import NormalizeConfig, normalize_clips
from signlang.inference.onegraph import FrontEnd, OneGraphUnsupported, _hull_shape
from signlang.inference.onnx_backend import ONEGRAPH_FILE, pad_clips
from signlang.inference.plan import EnsemblePlan, compute_features
from signlang.landmarks.layout import from_258

SHIPPED = Path(signlang.__file__).parent / "pretrained" / "asl-cafe"
TOL = 1e-4


def _plan() -> EnsemblePlan:
    return EnsemblePlan.from_json(json.loads((SHIPPED / "onnx" / "manifest.json").read_text())["plan"])


def _real_clips(traduttore_npz: Path, shared_data: Path) -> list[np.ndarray]:
    """~50 traduttore clips (20 frames; every third cut to 1..19 frames) and 24 asl_crowd_8signs clips (30 frames)."""
    with np.load(traduttore_npz) as d:
        trad, _ = from_258(d["X"][5::97])
    with np.load(shared_data / "asl_crowd_8signs" / "asl_crowd_8signs.npz") as d:
        crowd, _ = from_258(d["X"][::337])
    rng = np.random.default_rng(0)
    clips = [c[: int(rng.integers(1, len(c)))] if i % 3 == 0 else c for i, c in enumerate(trad)]
    return clips + list(crowd)


def _front(clips: list[np.ndarray], cfg: NormalizeConfig, plan: EnsemblePlan) -> tuple[np.ndarray, ...]:
    landmarks, lengths = pad_clips(clips)
    front = FrontEnd(cfg, plan).eval()
    with torch.no_grad():
        norm = front.normalizer(torch.tensor(landmarks), torch.tensor(lengths)).numpy()
        outs = [o.numpy() for o in front(torch.tensor(landmarks), torch.tensor(lengths))]
    return (norm, *outs)


@pytest.mark.parametrize("cfg", [
    NormalizeConfig(target_frames=32, smooth_window=5, smooth_order=2, canonical_hand=True),  # the shipped model's
    NormalizeConfig(target_frames=64, max_gap=3),  # the defaults, no mirroring, short gaps only
])
def test_front_end_equals_numpy_on_real_clips(traduttore_npz, shared_data, cfg) -> None:
    clips = _real_clips(traduttore_npz, shared_data)
    plan = _plan()
    norm, frame, mask, pooled = _front(clips, cfg, plan)
    X = normalize_clips(clips, cfg)
    assert np.array_equal(np.isnan(norm), np.isnan(X))
    np.testing.assert_allclose(norm, X, rtol=0, atol=1e-6, equal_nan=True)
    feats = compute_features(X, plan)
    want, want_mask = feats.frame["*"]
    assert np.array_equal(mask, want_mask)
    for block, cols in block_slices().items():
        np.testing.assert_allclose(frame[..., cols], want[..., cols], rtol=1e-5, atol=1e-5, err_msg=block)
    np.testing.assert_allclose(pooled, feats.pooled["*"], rtol=1e-5, atol=1e-5)
    assert (np.abs(frame[..., block_slices()["hand_shape"]]) > 0).mean() > 0.3  # real hands, not all zeros


def test_front_end_fallbacks_equal_numpy(traduttore_npz, shared_data) -> None:
    """Clips without shoulders (the centroid and palm fallbacks), with a degenerate palm (the spread fallback), with
    one point for every landmark (scale 1), with gaps longer than max_gap and garbage in the padding after a
    clip's length: the graph's normalisation equals numpy's (the fallbacks sum in float32: 1e-5)."""
    from signlang.landmarks.layout import MIDDLE_MCP, POSE, RIGHT_HAND, WRIST

    clips = [c.copy() for c in _real_clips(traduttore_npz, shared_data)[::6]]
    for c in clips[:4]:
        c[:, POSE] = np.nan  # hands only
    clips[1][:, RIGHT_HAND.start + MIDDLE_MCP] = clips[1][:, RIGHT_HAND.start + WRIST]  # palm length 0
    clips[1][:, :RIGHT_HAND.start] = np.nan
    clips[2][:, RIGHT_HAND.start:] = 0.25  # one point everywhere
    clips[2][:, :RIGHT_HAND.start] = np.nan
    if len(clips[5]) > 14:
        clips[5][2:13, RIGHT_HAND] = np.nan  # a gap of 11 frames: stays missing, smoothed around
    cfg = NormalizeConfig(target_frames=32, smooth_window=5, smooth_order=2, canonical_hand=True)
    landmarks, lengths = pad_clips(clips)
    landmarks[np.isnan(landmarks) & (np.arange(landmarks.shape[1])[None, :, None, None] >= lengths[:, None, None, None])] = 1e30
    front = FrontEnd(cfg, _plan()).eval()
    with torch.no_grad():
        norm = front.normalizer(torch.tensor(landmarks), torch.tensor(lengths)).numpy()
    X = normalize_clips(clips, cfg)
    assert np.array_equal(np.isnan(norm), np.isnan(X))
    np.testing.assert_allclose(norm, X, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert np.nanmax(np.abs(X[2])) == 0.0  # the one-point clip: scale 1, every point at the centre


def test_hull_equals_numpy_on_random_and_degenerate_sets() -> None:
    rng = np.random.default_rng(3)
    sets = [rng.normal(0, 1, (400, 21, 2)),
            np.round(rng.normal(0, 1, (400, 21, 2)), 1),  # repeated points and collinear triples
            np.repeat(rng.normal(0, 1, (50, 1, 2)), 21, axis=1),  # one point 21 times
            np.stack([np.linspace(0, 1, 21)] * 2, axis=-1)[None] * rng.normal(1, 0.2, (50, 1, 1)),  # a line
            np.where(rng.random((400, 21, 1)) < 0.3, np.nan, rng.normal(0, 1, (400, 21, 2)))]  # missing points
    pts = np.concatenate(sets)
    want = hull_shape(pts)
    got = [g.numpy() for g in _hull_shape(torch.tensor(pts))]
    for name, w, g in zip(("area", "perimeter", "rect"), want, got):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12, err_msg=name)
    assert (want[0] > 0).sum() > 1000


def test_unsupported_settings_are_refused_by_name() -> None:
    with pytest.raises(OneGraphUnsupported, match="level_shoulders"):
        FrontEnd(NormalizeConfig(level_shoulders=True), _plan())
    plan = _plan()
    bases = tuple(type(b)(b.name, b.kind, "hands_xyz,finger_straightness", b.columns) for b in plan.bases)
    with pytest.raises(OneGraphUnsupported, match="finger_straightness"):
        FrontEnd(NormalizeConfig(), type(plan)(**{**plan.__dict__, "bases": bases}))


@pytest.fixture(scope="module")
def shipped_onegraph(tmp_path_factory) -> Path:
    """The shipped model's split ONNX files copied to a temporary folder, plus its one graph (the package is left as it is)."""
    from signlang._io import write_json
    from signlang.inference.onegraph import write_onegraph
    from signlang.inference.torch_backend import TorchBackend
    from signlang.models.bundle import load_bundle

    folder = tmp_path_factory.mktemp("shipped") / "onnx"
    shutil.copytree(SHIPPED / "onnx", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    bundle = load_bundle(SHIPPED)
    manifest["onegraph"] = write_onegraph(folder, manifest, TorchBackend(bundle.model, bundle.classes))
    write_json(folder / "manifest.json", manifest)
    return folder


@pytest.mark.slow
def test_shipped_model_one_graph_equals_the_python_path_on_real_clips(shipped_onegraph, traduttore_npz, shared_data) -> None:
    from signlang.inference.predictor import Predictor

    manifest = json.loads((shipped_onegraph / "manifest.json").read_text())
    assert manifest["onegraph"]["parity"]["max_abs_diff"] <= TOL  # the random raw clips of the export check
    clips = _real_clips(traduttore_npz, shared_data)
    with Predictor(SHIPPED, backend="torch", threads=1) as torch_pred, Predictor(shipped_onegraph, backend="onnx", one_graph=True) as one:
        assert one.one_graph and not torch_pred.one_graph
        want = torch_pred.proba(clips)
        got = one.proba(clips)
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
        assert np.array_equal(got.argmax(1), want.argmax(1))
        by_want, by_got = torch_pred.proba_by_model(clips), one.proba_by_model(clips)
        for name in by_want:
            np.testing.assert_allclose(by_got[name], by_want[name], rtol=0, atol=TOL, err_msg=name)
        single = [one.predict_landmarks(c, top_k=3) for c in clips[:5]]  # one clip per call, through the Predictor
        ref = [torch_pred.predict_landmarks(c, top_k=3) for c in clips[:5]]
        assert [p.top_k[0][0] for p in single] == [p.top_k[0][0] for p in ref]
        np.testing.assert_allclose([p.probs for p in single], [p.probs for p in ref], atol=TOL)


@pytest.mark.slow
def test_one_graph_is_refused_when_modified(shipped_onegraph, tmp_path) -> None:
    from signlang.inference.onnx_backend import OnnxBackend

    folder = tmp_path / "onnx"
    shutil.copytree(shipped_onegraph, folder)
    with open(folder / ONEGRAPH_FILE, "ab") as fh:
        fh.write(b"\0")
    for use in (True, False):  # checked whether or not the graph runs in Python
        with pytest.raises(ValueError, match=r"model\.onnx: sha256 mismatch"):
            OnnxBackend(folder, use_onegraph=use)
    from signlang.inference.predictor import Predictor

    with pytest.raises(ValueError, match="one_graph needs the onnx backend"):
        Predictor(SHIPPED, backend="torch", one_graph=True)
    (folder / ONEGRAPH_FILE).unlink()
    with pytest.raises(ValueError, match=r"model\.onnx is missing|but .* is missing"):
        OnnxBackend(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["onegraph"]  # an export written without the one graph (or before it existed)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="an export holding model.onnx"):
        Predictor(folder, backend="onnx", one_graph=True)
    with Predictor(folder, backend="onnx") as split:  # the default falls back to the split path
        assert not split.one_graph


@pytest.mark.slow
def test_export_writes_the_one_graph_for_a_trained_bundle(tiny_bundle, tmp_path) -> None:
    """``export_bundle(onegraph=True)`` on the test suite's small trained ensemble: model.onnx listed, parity-checked,
    and the Predictor on the export runs through it with the Python path's probabilities."""
    from signlang.inference.export import export_bundle
    from signlang.inference.predictor import Predictor
    from bundle_fixtures import tiny_clips

    manifest = export_bundle(tiny_bundle, tmp_path / "onnx", onegraph=True)
    entry = manifest["onegraph"]
    assert entry["file"] == ONEGRAPH_FILE and (tmp_path / "onnx" / ONEGRAPH_FILE).is_file()
    assert entry["parity"]["max_abs_diff"] <= TOL and entry["parity"]["tolerance"] == TOL
    clips = list(tiny_clips(seed=5).landmarks)  # other clips than the training ones, 24 to 40 frames
    with (Predictor(tiny_bundle, backend="torch") as ref, Predictor(tmp_path / "onnx", backend="onnx", one_graph=True) as one,
          Predictor(tmp_path / "onnx", backend="onnx", one_graph=False) as split, Predictor(tmp_path / "onnx", backend="onnx") as default):
        assert one.one_graph and default.one_graph and not split.one_graph  # the default: model.onnx where the export has it
        expected = ref.proba(clips)
        np.testing.assert_allclose(one.proba(clips), expected, rtol=0, atol=TOL)
        np.testing.assert_allclose(split.proba(clips), expected, rtol=0, atol=TOL)


def test_runner_chunks_by_frames_and_keeps_the_order() -> None:
    """Long and short clips in one call: every session call stays within the chunk bounds, and each answer comes
    back at its clip's place (a stand-in session answers each clip's length)."""
    from signlang.inference.onnx_backend import OneGraphRunner

    calls: list[tuple[int, int]] = []

    class Session:
        def run(self, names, feed):
            calls.append(feed["landmarks"].shape[:2])
            lengths = feed["lengths"].astype(np.float32)[:, None]
            return [lengths, 2 * lengths]

    runner = OneGraphRunner.__new__(OneGraphRunner)
    runner.session, runner.by_model, runner._names = Session(), {"base": "probs__0"}, ["probabilities", "probs__0"]
    rng = np.random.default_rng(0)
    clips = [np.zeros((int(t), 75, 3), np.float32) for t in rng.integers(1, 3000, 150)] + [np.zeros((9000, 75, 3), np.float32)]
    probs, by = runner.run(clips)
    assert probs[:, 0].tolist() == [len(c) for c in clips]
    np.testing.assert_array_equal(by["base"], 2 * probs)
    assert all(n <= OneGraphRunner.CHUNK and (n * t <= OneGraphRunner.CHUNK_FRAMES or n == 1) for n, t in calls)
    assert sum(n for n, _ in calls) == len(clips) and len(calls) > 10

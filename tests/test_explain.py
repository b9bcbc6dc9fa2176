"""Explainability: map shapes and frame order, a planted signal found, pictures, CLI and /explain."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from signlang.explain.attribution import (
    feature_landmark_matrix,
    features_to_landmarks,
    gradcam,
    integrated_gradients,
    resample_time,
    spearman,
)
from signlang.landmarks.layout import FINGERTIPS, N_POINTS, RIGHT_HAND
from signlang.models.registry import build_model

torch.set_num_threads(1)

T = 64
PLANT = slice(20, 31)  # frames 20..30
RIGHT_TIPS = np.array([RIGHT_HAND.start + i for i in FINGERTIPS])
SMALL_TF = dict(d_model=32, n_heads=2, n_layers=2, dim_feedforward=64, dropout=0.0)


def planted_landmarks(n_per_class: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Normalised-looking clips ``(N, 64, 75, 3)``: class 1 moves the right-hand fingertips in frames 20-30."""
    rng = np.random.default_rng(seed)
    n = 2 * n_per_class
    base = rng.normal(0.0, 0.5, size=(1, 1, N_POINTS, 3))
    X = base + rng.normal(0.0, 0.05, size=(n, T, N_POINTS, 3))
    y = np.repeat([0, 1], n_per_class)
    X[np.ix_(y == 1, np.arange(PLANT.start, PLANT.stop), RIGHT_TIPS, [0, 1])] += 1.0
    return X.astype(np.float32), y


def flat(lm: np.ndarray) -> np.ndarray:
    """Identity features: ``(..., T, 75, 3) -> (..., T, 225)``."""
    return lm.reshape(*lm.shape[:-2], N_POINTS * 3)


def train(module: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor, epochs: int = 40) -> torch.nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    module.train()
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(x, mask), y)
        loss.backward()
        opt.step()
    return module.eval()


@pytest.fixture(scope="module")
def planted_transformer() -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    X, y = planted_landmarks()
    torch.manual_seed(0)
    net = build_model("transformer", n_features=N_POINTS * 3, n_classes=2, max_len=T, **SMALL_TF)
    x = torch.from_numpy(flat(X))
    mask = torch.ones(x.shape[:2], dtype=torch.bool)
    train(net, x, mask, torch.from_numpy(y))
    with torch.no_grad():
        acc = (net(x, mask).argmax(1).numpy() == y).mean()
    assert acc == 1.0, f"the planted task should be learnt perfectly, got accuracy {acc}"
    return net, X, y


# --- maths -------------------------------------------------------------------------------------
def test_resample_time_keeps_ends_and_order() -> None:
    v = np.arange(64, dtype=np.float32)
    out = resample_time(v, 20)
    assert out.shape == (20,) and out[0] == 0 and out[-1] == 63
    assert np.all(np.diff(out) > 0)
    # up then down is the identity on a linear ramp
    np.testing.assert_allclose(resample_time(resample_time(v, 200), 64), v, atol=1e-4)
    m = resample_time(np.random.default_rng(0).random((64, 75)), 17)
    assert m.shape == (17, 75)


def test_spearman_matches_ranks() -> None:
    a = np.array([3.0, 1.0, 2.0, 2.0])
    assert spearman(a, a * 10 + 1) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    assert abs(spearman(rng.random(5000), rng.random(5000))) < 0.05


def test_feature_landmark_matrix_finds_dependencies() -> None:
    def feats(lm: np.ndarray) -> np.ndarray:
        vel = np.diff(lm, axis=-3, prepend=lm[..., :1, :, :])
        dist = np.linalg.norm(lm[..., [58], :] - lm[..., [62], :], axis=-1)  # right thumb tip - index tip
        return np.concatenate([flat(lm), flat(vel), dist, np.ones_like(dist)], axis=-1)

    m = feature_landmark_matrix(feats)
    assert m.shape == (451 + 1, N_POINTS)
    np.testing.assert_allclose(m[:450].sum(1), 1.0)
    assert np.argmax(m[7]) == 2 and np.argmax(m[225 + 7]) == 2  # coordinate columns: landmark col // 3
    np.testing.assert_allclose(m[450, [58, 62]], 0.5)
    assert m[451].sum() == 0  # constant column belongs to no landmark
    attr = np.zeros((4, 452), np.float32)
    attr[1, 450] = -2.0
    lm_map = features_to_landmarks(attr, m)
    assert lm_map.shape == (4, N_POINTS) and lm_map[1, 58] == pytest.approx(1.0) and lm_map.sum() == pytest.approx(2.0)


def test_integrated_gradients_completeness() -> None:
    torch.manual_seed(0)
    net = build_model("bilstm", n_features=6, n_classes=3, hidden=8, dropout=0.0)
    x = torch.randn(2, 12, 6)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 9:] = False
    attr = integrated_gradients(net, x, mask, [0, 2], steps=64)
    assert attr.shape == (2, 12, 6) and np.all(attr[1, 9:] == 0)
    with torch.no_grad():
        gain = net.eval()(x, mask) - net(torch.zeros_like(x), mask)
    np.testing.assert_allclose(attr.sum((1, 2)), [gain[0, 0], gain[1, 2]], rtol=0.05, atol=1e-3)


@pytest.mark.parametrize("arch,kw", [("transformer", SMALL_TF), ("bilstm", dict(hidden=8, dropout=0.0))])
def test_gradcam_shapes_and_masked_frames(arch: str, kw: dict) -> None:
    torch.manual_seed(0)
    net = build_model(arch, n_features=5, n_classes=3, **kw)
    x = torch.randn(3, 10, 5)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[2, 6:] = False
    cam = gradcam(net, x, mask, [0, 1, 2])
    assert cam.shape == (3, 10) and np.all(cam >= 0) and np.all(cam[2, 6:] == 0)
    assert cam.sum() > 0
    net.train()
    gradcam(net, x, mask, 0)
    assert net.training


def test_reversed_clip_gives_reversed_map() -> None:
    """A time-symmetric network (no positions, mean pooling) explains a reversed clip with a reversed map."""

    class Symmetric(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(1)
            layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
            self.inp = torch.nn.Linear(4, 16)
            self.encoder = torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
            self.head = torch.nn.Linear(16, 2)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            h = self.encoder(self.inp(x), src_key_padding_mask=~mask)
            return self.head((h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))

    net = Symmetric().eval()
    x = torch.randn(1, 9, 4)
    mask = torch.ones(1, 9, dtype=torch.bool)
    cam, cam_rev = gradcam(net, x, mask, 1)[0], gradcam(net, x.flip(1), mask, 1)[0]
    np.testing.assert_allclose(cam_rev, cam[::-1], rtol=1e-4, atol=1e-6)
    ig, ig_rev = integrated_gradients(net, x, mask, 1)[0], integrated_gradients(net, x.flip(1), mask, 1)[0]
    np.testing.assert_allclose(ig_rev, ig[::-1], rtol=1e-4, atol=1e-6)


# --- planted signal ----------------------------------------------------------------------------
def test_planted_signal_frames_and_right_hand(planted_transformer) -> None:
    net, X, y = planted_transformer
    pos = X[y == 1][:8]
    x = torch.from_numpy(flat(pos))
    mask = torch.ones(x.shape[:2], dtype=torch.bool)
    cam = gradcam(net, x, mask, 1)
    ig = integrated_gradients(net, x, mask, 1, steps=24)
    lm = features_to_landmarks(ig, feature_landmark_matrix(flat))  # (8, T, 75)
    inside = np.zeros(T, bool)
    inside[PLANT] = True
    for c, m in zip(cam, lm):
        top_cam = np.argsort(-c)[:5]
        top_ig = np.argsort(-m.sum(1))[:5]
        assert inside[top_cam].mean() >= 0.8, f"Grad-CAM top frames {sorted(top_cam)} not in 20..30"
        assert inside[top_ig].all(), f"IG top frames {sorted(top_ig)} not in 20..30"
        top_landmarks = np.argsort(-m.sum(0))[:5]
        assert np.isin(top_landmarks, RIGHT_TIPS).mean() >= 0.8, f"top landmarks {top_landmarks} not the right fingertips"
        per_landmark = m[PLANT].sum(0)
        assert per_landmark[RIGHT_TIPS].mean() > 3 * np.delete(per_landmark, RIGHT_TIPS).mean()


# --- pictures ----------------------------------------------------------------------------------
def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; fails unless ``data`` is a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_pictures_are_valid_images_of_sensible_size() -> None:
    from signlang.explain.plots import key_frames, render_contact_sheet, render_curve, render_gif, render_heatmap

    rng = np.random.default_rng(0)
    imp = rng.random((30, N_POINTS)).astype(np.float32)
    w, h = png_size(render_heatmap(imp, imp.sum(1), title="test"))
    assert 400 <= w <= 2000 and 400 <= h <= 1500
    w, h = png_size(render_curve(imp.sum(1)))
    assert 300 <= w <= 1500 and 100 <= h <= 800
    frames = rng.integers(0, 255, size=(3, 90, 120, 3), dtype=np.uint8)
    pts = rng.random((3, N_POINTS, 3)).astype(np.float32)
    pts[1, RIGHT_HAND] = np.nan  # a missing hand is simply not drawn
    sheet = render_contact_sheet(frames, pts, imp[:3], np.array([2, 5, 9]), imp[:3].sum(1))
    w, h = png_size(sheet)
    assert w > 300 and h > 80
    gif = render_gif(frames, pts, imp[:3])
    assert gif[:6] in (b"GIF89a", b"GIF87a") and len(gif) > 1000
    assert key_frames(np.array([0.1, 0.5, 0.2, 0.9]), 2).tolist() == [1, 3]
    with pytest.raises(ValueError, match="landmark_importance"):
        render_heatmap(np.zeros((5, 10)))
    with pytest.raises(ValueError, match="frames"):
        render_contact_sheet(frames[..., 0], pts, imp[:3], np.arange(3))


# --- the bundle: explainer, faithfulness, CLI, route -------------------------------------------
from bundle_fixtures import tiny_bundle, tiny_clips  # noqa: E402,F401  (fixture)


@pytest.fixture(scope="module")
def explainer(tiny_bundle):  # noqa: F811
    from signlang.explain.explainer import Explainer
    from signlang.inference.predictor import Predictor

    predictor = Predictor(tiny_bundle, backend="torch")
    return Explainer.from_predictor(predictor, ig_steps=8), predictor


def test_explainer_maps_follow_the_input_frames(explainer) -> None:
    ex, predictor = explainer
    clips = tiny_clips()
    clip = clips.landmarks[0]
    exp = ex.explain(clip)
    t_in = clip.shape[0]
    assert t_in != ex.normalize(clip).shape[0]  # the model resamples: the map is mapped back
    assert exp.frame_importance.shape == (t_in,) and exp.landmark_importance.shape == (t_in, N_POINTS)
    assert exp.frame_importance.sum() == pytest.approx(1.0, abs=1e-5) and exp.landmark_importance.min() >= 0
    np.testing.assert_allclose(exp.landmark_importance.sum(1), exp.frame_importance, atol=1e-5)
    # the explained sign is the whole model's prediction, with its probability
    probs = predictor.proba([clip])[0]
    assert exp.sign == predictor.classes[int(np.argmax(probs))] and exp.prob == pytest.approx(float(probs.max()), abs=1e-5)
    assert set(exp.weights) == {"transformer", "bilstm"} and sum(exp.weights.values()) == pytest.approx(1.0)
    other = next(c for c in predictor.classes if c != exp.sign)
    exp_other = ex.explain(clip, target=other)
    assert exp_other.sign == other and exp_other.prob == pytest.approx(float(probs[predictor.classes.index(other)]), abs=1e-5)
    assert not np.allclose(exp_other.frame_importance, exp.frame_importance)
    with pytest.raises(ValueError, match="unknown sign 'NOT-A-SIGN'"):
        ex.explain(clip, target="NOT-A-SIGN")
    doc = exp.to_dict()
    assert len(doc["frame_importance"]) == t_in and np.array(doc["landmark_importance"]).shape == (t_in, N_POINTS)


def test_faithfulness_pieces(explainer) -> None:
    from signlang.explain.faithfulness import deletion_drops, n_hidden, randomized_explainer, rank_correlations
    from signlang.explain.occlusion import hide

    ex, _ = explainer
    clips = tiny_clips().landmarks[:3]
    assert n_hidden(20, 0.2) == 4 and n_hidden(3, 0.01) == 1
    hidden = hide(clips[0], np.array([1, 3]))
    np.testing.assert_allclose(hidden[1], 0.5 * (clips[0][0] + clips[0][2]), rtol=1e-5)
    np.testing.assert_allclose(hidden[[0, 2]], clips[0][[0, 2]])
    exps = [ex.explain(c) for c in clips]
    res = deletion_drops(ex, clips, exps, fraction=0.2)
    assert res.p_full.shape == res.p_top.shape == res.p_random.shape == (3,)
    np.testing.assert_allclose(res.p_full, [e.prob for e in exps], atol=1e-5)
    rand = randomized_explainer(ex, seed=3)
    for (_, a), (_, b) in zip(ex.networks, rand.networks):
        assert type(a.module_) is type(b.module_)
        assert not torch.equal(a.module_.head.weight, b.module_.head.weight)
    rexps = [rand.explain(c, target=e.target) for c, e in zip(clips, exps)]
    rho = rank_correlations(exps, rexps)
    assert rho.shape == (3,) and np.all(np.abs(rho) <= 1.0)
    rho_self = rank_correlations(exps, exps, [~np.isnan(c[..., 0]) for c in clips])
    np.testing.assert_allclose(rho_self, 1.0)


def test_explain_cli_writes_the_files(tiny_bundle, tmp_path) -> None:  # noqa: F811
    from typer.testing import CliRunner

    from signlang.cli import app
    from signlang.datasets.loaders import save_npz

    clips = tiny_clips().subset([0, 1, 2])
    data = save_npz(clips, tmp_path / "three.npz")
    runner = CliRunner()
    res = runner.invoke(app, ["explain", "--model", str(tiny_bundle), str(data), "--out", str(tmp_path / "none")])
    assert res.exit_code == 2 and "--index" in res.output
    out = tmp_path / "exp"
    res = runner.invoke(app, ["explain", "--model", str(tiny_bundle), str(data), "--index", "2", "--out", str(out), "--steps", "4"])
    assert res.exit_code == 0, res.output
    import json

    doc = json.loads((out / "explanation.json").read_text())
    t_in = clips.landmarks[2].shape[0]
    assert len(doc["frame_importance"]) == t_in and np.array(doc["landmark_importance"]).shape == (t_in, N_POINTS)
    assert doc["sign"] in clips.classes and 0 < doc["prob"] <= 1 and doc["index"] == 2
    w, h = png_size((out / "heatmap.png").read_bytes())
    assert w >= 400 and h >= 400
    png_size((out / "curve.png").read_bytes())
    assert not (out / "frames.png").exists()  # landmark input: no video frames to draw
    res = runner.invoke(app, ["explain", "--model", str(tiny_bundle), str(data), "--index", "0", "--target", "NOPE", "--out", str(out)])
    assert res.exit_code == 2 and "unknown sign 'NOPE'" in res.output


def test_explain_route_answers_json_and_png(tiny_bundle) -> None:  # noqa: F811
    import base64

    from fastapi.testclient import TestClient

    from signlang.inference.predictor import Predictor
    from signlang.serve.app import create_app

    clip = tiny_clips().landmarks[4]
    rows = np.where(np.isnan(clip), None, clip).tolist()
    with TestClient(create_app(Predictor(tiny_bundle, backend="torch"))) as client:
        r = client.post("/explain", json={"landmarks": rows})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert len(doc["frame_importance"]) == clip.shape[0] and len(doc["landmark_importance"][0]) == N_POINTS
        assert "heatmap_png_base64" not in doc
        r = client.post("/explain?heatmap=true", json={"landmarks": rows, "target": doc["sign"]})
        assert r.status_code == 200 and r.json()["sign"] == doc["sign"]
        png_size(base64.b64decode(r.json()["heatmap_png_base64"]))
        r = client.post("/explain?format=png", json={"landmarks": rows})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        png_size(r.content)
        r = client.post("/explain", json={"landmarks": rows, "target": "NOPE"})
        assert r.status_code == 422 and "NOPE" in r.json()["detail"]
        r = client.post("/explain", json={"landmarks": [[1, 2, 3]]})
        assert r.status_code == 422


# --- occlusion on the ONNX backend --------------------------------------------------------------
from bundle_fixtures import tiny_onnx  # noqa: E402,F401  (fixture)


def frame_occlusion_finds_something(bundle, landmarks) -> list[bool]:
    """Per clip: does hiding some run of frames lower p(predicted sign)? (Else torch's frame map is Grad-CAM's.)"""
    from signlang.explain.explainer import Explainer
    from signlang.inference.predictor import Predictor

    with Predictor(bundle, backend="torch", threads=1) as predictor:
        ex = Explainer.from_predictor(predictor)
        probs = predictor.proba(landmarks)
        return [bool(ex.frame_occlusion(c, int(p.argmax()), float(p.max())).sum() > 0) for c, p in zip(landmarks, probs)]


def test_explain_route_on_onnx_equals_torch_and_refuses_gradient_methods(tiny_bundle, tiny_onnx) -> None:  # noqa: F811
    """Occlusion needs forward passes only: an ONNX service gives the torch service's maps; Grad-CAM / IG get 501."""
    from signlang.inference.predictor import Predictor
    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.server import BackgroundServer

    httpx = pytest.importorskip("httpx")
    clips = tiny_clips()
    lowers = frame_occlusion_finds_something(tiny_bundle, clips.landmarks)
    chosen = [i for i, ok in enumerate(lowers) if ok][:2] + [lowers.index(False)]
    settings = ServiceSettings(max_concurrency=1)
    docs: dict[str, list[dict]] = {}
    for backend, folder in (("torch", tiny_bundle), ("onnx", tiny_onnx)):
        with Predictor(folder, backend=backend, threads=1) as predictor, BackgroundServer(create_app(predictor, settings)) as srv:
            docs[backend] = []
            for i in chosen:
                rows = np.where(np.isnan(clips.landmarks[i]), None, clips.landmarks[i]).tolist()
                r = httpx.post(srv.url + "/explain", json={"landmarks": rows}, timeout=120)
                assert r.status_code == 200, r.text
                docs[backend].append(r.json())
            if backend == "onnx":
                for method in ({"frame_method": "gradcam"}, {"frame_method": "gradcam+occlusion"}, {"landmark_method": "ig"}):
                    r = httpx.post(srv.url + "/explain", json={"landmarks": rows, **method}, timeout=60)
                    name = next(iter(method.values()))
                    assert r.status_code == 501 and r.json()["error"] == "not_supported", r.text
                    assert f"'{name}'" in r.json()["detail"] and "ONNX Runtime" in r.json()["detail"] and "occlusion" in r.json()["detail"]
                r = httpx.post(srv.url + "/explain?format=png", json={"landmarks": rows}, timeout=120)
                assert r.status_code == 200 and r.headers["content-type"] == "image/png"
                png_size(r.content)
                r = httpx.post(srv.url + "/explain", json={"landmarks": rows, "frame_method": "nope"}, timeout=60)
                assert r.status_code == 422 and "frame_method" in r.json()["detail"]
    for by_torch, by_onnx in zip(docs["torch"][:2], docs["onnx"][:2]):
        assert by_onnx["sign"] == by_torch["sign"] and by_onnx["prob"] == pytest.approx(by_torch["prob"], abs=1e-5)
        assert by_onnx["frame_method"] == by_onnx["landmark_method"] == "occlusion"
        frame_torch = np.array(by_torch["frame_importance"])
        assert frame_torch.std() > 0  # a real map, not the flat fallback
        np.testing.assert_allclose(by_onnx["frame_importance"], frame_torch, atol=1e-4)
        np.testing.assert_allclose(by_onnx["landmark_importance"], by_torch["landmark_importance"], atol=1e-4)
        assert by_onnx["top_frames"][:3] == by_torch["top_frames"][:3]
        assert by_onnx["weights"] == {} and set(by_torch["weights"]) == {"transformer", "bilstm"}
    # hiding no run of frames lowers p: torch lets Grad-CAM stand in, ONNX (no gradients) says "every frame alike"
    flat = np.array(docs["onnx"][2]["frame_importance"])
    np.testing.assert_allclose(flat, 1.0 / flat.size, rtol=1e-5)
    assert np.array(docs["torch"][2]["frame_importance"]).std() > 0


def test_explain_cli_on_an_onnx_export(tiny_bundle, tiny_onnx, tmp_path) -> None:  # noqa: F811
    import json

    from typer.testing import CliRunner

    from signlang.cli import app
    from signlang.datasets.loaders import save_npz

    clips = tiny_clips()
    data = save_npz(clips.subset([frame_occlusion_finds_something(tiny_bundle, clips.landmarks).index(True)]), tmp_path / "one.npz")
    runner = CliRunner()
    res = runner.invoke(app, ["explain", "--model", str(tiny_onnx), str(data), "--out", str(tmp_path / "onnx")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["explain", "--model", str(tiny_bundle), str(data), "--out", str(tmp_path / "torch")])
    assert res.exit_code == 0, res.output
    by_onnx, by_torch = (json.loads((tmp_path / b / "explanation.json").read_text()) for b in ("onnx", "torch"))
    assert by_onnx["sign"] == by_torch["sign"]
    np.testing.assert_allclose(by_onnx["landmark_importance"], by_torch["landmark_importance"], atol=1e-4)
    png_size((tmp_path / "onnx" / "heatmap.png").read_bytes())
    res = runner.invoke(app, ["explain", "--model", str(tiny_onnx), str(data), "--frame-method", "ig", "--out", str(tmp_path / "ig")])
    assert res.exit_code == 2 and "frame method 'ig'" in res.output and "ONNX Runtime" in res.output
    assert not (tmp_path / "ig").exists()

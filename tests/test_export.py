"""ONNX export: dynamic shapes, parity with PyTorch on clips of random lengths, checksums."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bundle_fixtures import tiny_clips


def test_manifest_lists_models_with_dynamic_inputs(tiny_onnx: Path) -> None:
    import onnx

    manifest = json.loads((tiny_onnx / "manifest.json").read_text())
    assert manifest["format"] == "signlang-onnx"
    assert set(manifest["models"]) == {"transformer", "bilstm", "xgboost", "meta"}
    assert manifest["classes"] == list(tiny_clips().classes)
    assert manifest["parity"]["max_abs_diff_all"] <= 1e-4 and len(manifest["parity"]["lengths"]) >= 3
    for name in ("transformer", "bilstm"):
        entry = manifest["models"][name]
        graph = onnx.load(tiny_onnx / entry["file"]).graph
        x = next(i for i in graph.input if i.name == "x")
        dims = x.type.tensor_type.shape.dim
        assert dims[0].dim_param and dims[1].dim_param  # batch and frames are symbolic, not frozen
        assert [i["name"] for i in entry["inputs"]] == ["x", "mask"]
        assert len(entry["sha256"]) == 64


@pytest.mark.parametrize("seed", [0, 1])
def test_onnx_and_torch_agree_on_random_length_clips(tiny_bundle: Path, tiny_onnx: Path, seed: int) -> None:
    """Raw clips of random lengths through the whole predictor, and features of random lengths
    straight into the networks (no resampling), agree to 1e-4 between the backends."""
    from signlang.inference.export import check_parity
    from signlang.inference.predictor import Predictor

    rng = np.random.default_rng(seed)
    clips = tiny_clips()
    picks = rng.choice(len(clips), size=4, replace=False)
    raw = [clips.landmarks[i][: int(rng.integers(6, clips.landmarks[i].shape[0] + 1))] for i in picks]
    with Predictor(tiny_bundle, backend="torch", threads=1) as pt, Predictor(tiny_onnx, backend="onnx", threads=1) as po:
        np.testing.assert_allclose(po.proba(raw), pt.proba(raw), atol=1e-4)
        for a, b in zip(pt.proba_by_model(raw).values(), po.proba_by_model(raw).values()):
            np.testing.assert_allclose(a, b, atol=1e-4)
        lengths = sorted(int(t) for t in rng.integers(2, 64, size=3))
        parity = check_parity(pt.runner, po.runner, lengths, seed=seed, batch=2)
        assert parity["max_abs_diff_all"] <= 1e-4, parity


def test_parity_check_detects_a_difference(tiny_bundle: Path, tiny_onnx: Path) -> None:
    from signlang.inference.export import check_parity
    from signlang.inference.predictor import Predictor

    class Shifted:
        """The ONNX backend with one base model's probabilities nudged by 1e-3."""

        def __init__(self, inner) -> None:
            self.inner, self.plan = inner, inner.plan

        def run(self, feats):
            probs, by_model = self.inner.run(feats)
            by_model = dict(by_model, bilstm=by_model["bilstm"] + 1e-3)
            return probs, by_model

    with Predictor(tiny_bundle, backend="torch") as pt, Predictor(tiny_onnx, backend="onnx") as po:
        parity = check_parity(pt.runner, Shifted(po.runner), [10])
    assert parity["max_abs_diff"]["bilstm"] == pytest.approx(1e-3, rel=1e-3)
    assert parity["max_abs_diff_all"] > 1e-4


def test_tampered_onnx_file_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    from signlang.inference.predictor import Predictor

    copy = tmp_path / "onnx"
    shutil.copytree(tiny_onnx, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    target = copy / manifest["models"]["meta"]["file"]
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256 mismatch"):
        Predictor(copy, backend="onnx")
    with pytest.raises(ValueError, match="ONNX export; use backend='onnx'"):
        Predictor(tiny_onnx, backend="torch")


def test_onnx_backend_runs_without_torch(tiny_onnx: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from signlang.inference.predictor import Predictor\n"
        f"p = Predictor({str(tiny_onnx)!r}, backend='onnx')\n"
        "rng = np.random.default_rng(0)\n"
        "lm = (0.5 + 0.05 * rng.standard_normal((20, 75, 3))).astype('float32')\n"
        "r = p.predict_landmarks(lm)\n"
        "assert abs(float(r.probs.sum()) - 1) < 1e-4\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_export_cli(tiny_bundle: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    """The CLI refuses a folder that is not a bundle with a one-line error."""
    from typer.testing import CliRunner

    from signlang.cli import app

    res = CliRunner().invoke(app, ["export", "--model", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "not a signlang bundle" in res.output or "manifest.json: missing" in res.output

"""The lean install: the shipped model predicts and serves on ONNX Runtime alone, with no torch.

Fast: the ONNX export shipped in ``pretrained/asl-cafe/onnx`` is pinned in ``index.json``, was made
from this very bundle and gives its probabilities (parity on a few clips); ``signlang predict``
with torch blocked answers through it without writing into the package; the package's model is
never exported at start. Slow: the README's one pip command in a fresh virtual environment.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAINING_STACK = ("torch", "sklearn", "xgboost", "safetensors", "matplotlib")

BLOCKED_CLI = r'''
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "sklearn", "xgboost", "safetensors", "matplotlib"}:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked in this test)", name=name)  # as where it is not installed
sys.meta_path.insert(0, Block())
sys.argv = ["signlang", *sys.argv[1:]]
from signlang.cli import main
main()
'''


def _clips(n: int = 4) -> list[np.ndarray]:
    from signlang.datasets.synthetic import make_synthetic_dataset

    clips = make_synthetic_dataset(n_classes=2, n_signers=2, clips_per_signer=1, seed=5, frames=(30, 50))
    real = Path(os.environ.get("SIGNLANG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "traduttore_asl_mediapipe" / "traduttore_asl_mediapipe.npz"
    out = [np.asarray(c, np.float32) for c in clips.landmarks][:2]
    if real.is_file():  # real clips too, where the data is
        from signlang.datasets.formats import load_dataset

        data = load_dataset(real)
        out += [np.asarray(data.landmarks[i], np.float32) for i in (0, len(data) // 2)]
    return out[:n]


def test_shipped_onnx_export_is_pinned_and_made_from_the_bundle() -> None:
    from signlang._io import sha256_file
    from signlang.inference.pretrained import DEFAULT_PRETRAINED, ONNX_SUBDIR, pretrained_index, pretrained_path

    path = pretrained_path(DEFAULT_PRETRAINED)  # checks both pinned manifests
    entry = pretrained_index()[DEFAULT_PRETRAINED]
    onnx_manifest = json.loads((path / ONNX_SUBDIR / "manifest.json").read_text())
    assert entry["onnx_manifest_sha256"] == sha256_file(path / ONNX_SUBDIR / "manifest.json")
    assert onnx_manifest["source"]["bundle_manifest_sha256"] == entry["manifest_sha256"]
    assert onnx_manifest["classes"] == json.loads((path / "manifest.json").read_text())["classes"]
    for name, model in onnx_manifest["models"].items():
        assert sha256_file(path / ONNX_SUBDIR / model["file"]) == model["sha256"], name
    tracked = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path / ONNX_SUBDIR / "manifest.json")])
    assert tracked.returncode == 1, "the shipped ONNX export must not be git-ignored"


def test_shipped_onnx_export_gives_the_bundles_probabilities() -> None:
    from signlang.inference.predictor import Predictor
    from signlang.inference.pretrained import resolve_model

    clips = _clips()
    with Predictor(resolve_model(None), backend="torch", threads=1) as torch_p, Predictor(resolve_model(None), backend="onnx") as onnx_p:
        assert onnx_p.model_info["onnx_dir"] == str(resolve_model(None) / "onnx")
        for clip in clips:
            a = torch_p.predict_landmarks(clip, top_k=3)
            b = onnx_p.predict_landmarks(clip, top_k=3)
            assert np.abs(np.asarray(a.probs) - np.asarray(b.probs)).max() <= 1e-4
            assert a.top_k[0][0] == b.top_k[0][0]


def test_predict_with_torch_blocked_runs_the_shipped_export(tmp_path: Path) -> None:
    from signlang.inference.predictor import Predictor
    from signlang.inference.pretrained import resolve_model

    clip = _clips(1)[0]
    np.save(tmp_path / "clip.npy", clip)
    package = sorted(str(p) for p in resolve_model(None).rglob("*"))
    res = subprocess.run([sys.executable, "-c", BLOCKED_CLI, "predict", str(tmp_path / "clip.npy"), "--json", "--top-k", "3"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "export" not in res.stderr.lower()  # nothing exported at start
    line = json.loads(res.stdout.strip().splitlines()[-1])
    with Predictor(resolve_model(None), backend="torch", threads=1) as p:
        expected = p.predict_landmarks(clip, top_k=3)
    assert [t["sign"] for t in line["top_k"]] == [s for s, _ in expected.top_k]
    assert sorted(str(p) for p in resolve_model(None).rglob("*")) == package

    train = subprocess.run([sys.executable, "-c", BLOCKED_CLI, "train", "--data", str(tmp_path / "clip.npy"), "--out", str(tmp_path / "r")],
                           capture_output=True, text=True, timeout=300)
    assert train.returncode == 2 and 'pip install "signlang[train]"' in train.stderr and "Traceback" not in train.stderr


def test_the_package_model_is_never_exported_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from signlang.inference import pretrained
    from signlang.inference.predictor import Predictor

    copy = tmp_path / "pretrained" / "asl-cafe"
    shutil.copytree(pretrained.resolve_model(None), copy, ignore=shutil.ignore_patterns("onnx"))
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", (tmp_path / "pretrained").resolve())
    with pytest.raises(ValueError, match="never exported at start"):
        Predictor(copy, backend="onnx")
    assert not (copy / "onnx").exists()


def test_the_pretrained_folder_fits_its_budget() -> None:
    from signlang.inference.pretrained import PRETRAINED_DIR

    size = sum(p.stat().st_size for p in PRETRAINED_DIR.rglob("*") if p.is_file())
    assert size <= 12 * 1024 * 1024, f"{PRETRAINED_DIR}: {size / 1e6:.1f} MB (budget 12 MB)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_lean_install_in_a_fresh_venv_predicts_and_serves(tmp_path: Path) -> None:
    """The README's lean install (`pip install ".[serve-onnx,video]"`) in a new virtual environment:
    no torch, and the shipped model predicts a clip, serves /predict/landmarks and, with MediaPipe,
    a real video where the shared data is present."""
    src = tmp_path / "src"
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    install = subprocess.run([str(py), "-m", "pip", "install", "--quiet", f"{src}[serve-onnx,video]"], env=env,
                             capture_output=True, text=True, timeout=1800)
    assert install.returncode == 0, install.stderr[-3000:]
    for module in ("torch", "sklearn", "xgboost"):  # matplotlib comes with MediaPipe
        assert subprocess.run([str(py), "-c", f"import {module}"], env=env, capture_output=True).returncode != 0, module

    clip = _clips(1)[0]
    np.save(tmp_path / "clip.npy", clip)
    res = subprocess.run([str(py), "-m", "signlang", "predict", str(tmp_path / "clip.npy"), "--json"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.strip().splitlines()[-1])["top_k"]

    port = _free_port()
    server = subprocess.Popen([str(py), "-m", "signlang", "serve", "--port", str(port)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        import httpx

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        body = {"landmarks": np.nan_to_num(clip, nan=0.0).tolist()}
        r = httpx.post(f"http://127.0.0.1:{port}/predict/landmarks", json=body, timeout=120)
        assert r.status_code == 200 and r.json()["top_k"], r.text
        video = Path(os.environ.get("SIGNLANG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "videos_real_signing" / "slp_pose_SOUP.mp4"
        if video.is_file():
            with video.open("rb") as fh:
                v = httpx.post(f"http://127.0.0.1:{port}/predict", files={"video": (video.name, fh, "video/mp4")}, timeout=300)
            assert v.status_code == 200 and v.json()["top_k"], v.text
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=60)
    assert "export" not in out.lower(), out[-3000:]

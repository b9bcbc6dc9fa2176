"""The serving image, built for real with podman (deploy/build-image.sh) and run with a model mounted
read-only; a prediction over loopback. Slow; skipped where podman or mmdebstrap is missing."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TAG = "localhost/signlang:test-onnx"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (shutil.which("podman") and shutil.which("mmdebstrap")),
                                                   reason="needs podman and mmdebstrap (apt-get install podman runc mmdebstrap)")]


def _podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "deploy" / "containers.conf")}
    return subprocess.run(["podman", "--runtime", "runc", *args], env=env, capture_output=True, text=True, timeout=timeout, check=check)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_image_builds_and_serves_a_prediction(tiny_onnx: Path, tmp_path: Path) -> None:
    import httpx

    build = subprocess.run([str(ROOT / "deploy" / "build-image.sh"), TAG], capture_output=True, text=True, timeout=3000,
                           env={**os.environ, "BASE_TAR": os.environ.get("SIGNLANG_BASE_TAR", "")})
    assert build.returncode == 0, build.stderr[-4000:]
    assert _podman("run", "--rm", "--network=host", TAG, "python", "-c", "import torch", check=False).returncode != 0  # no torch
    model = tmp_path / "model"
    shutil.copytree(tiny_onnx, model)
    model.chmod(0o755)
    port, name = _free_port(), f"signlang-test-{uuid.uuid4().hex[:8]}"
    try:
        _podman("run", "-d", "--name", name, "--network=host", "-v", f"{model}:/model:ro", TAG,
                "signlang", "serve", "--host", "127.0.0.1", "--port", str(port), "--model", "/model", "--backend", "onnx")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, _podman("logs", name, check=False).stdout[-3000:]
            time.sleep(1)
        clip = np.random.default_rng(0).uniform(0.2, 0.8, size=(40, 258)).astype(np.float32)
        buf = io.BytesIO()
        np.save(buf, clip, allow_pickle=False)
        r = httpx.post(f"{url}/predict/landmarks", content=buf.getvalue(), headers={"content-type": "application/x-npy"}, timeout=60)
        assert r.status_code == 200 and len(r.json()["top_k"]) == 4, r.text
        health = httpx.get(f"{url}/health", timeout=10).json()
        assert health["backend"] == "onnx" and len(health["model_id"]) == 16
        # the model is read-only inside the container
        probe = _podman("exec", name, "sh", "-c", "touch /model/x", check=False)
        assert probe.returncode != 0
    finally:
        _podman("rm", "-f", name, check=False)

"""The landmarks-only serving path runs without torch, MediaPipe, scikit-learn, XGBoost or matplotlib.

A subprocess blocks those imports, then starts the CLI module tree, a real uvicorn with the ONNX
export of the tiny bundle, and gets a prediction and an occlusion explanation over loopback (what the
slim image relies on); a gradient explanation or the heatmap PNG is refused there with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BLOCKED = ("torch", "mediapipe", "sklearn", "xgboost", "matplotlib", "av", "cv2", "captum")

SCRIPT = r'''
import io, json, sys
BLOCKED = set(json.loads(sys.argv[2]))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked in this test: {name}")
sys.meta_path.insert(0, Block())
import numpy as np, httpx
import signlang.cli  # every command module imports without the heavy stacks
from signlang.inference.predictor import Predictor
from signlang.serve.app import create_app
from signlang.serve.server import BackgroundServer
rng = np.random.default_rng(0)
clip = rng.uniform(0.2, 0.8, size=(40, 258)).astype(np.float32)
buf = io.BytesIO(); np.save(buf, clip, allow_pickle=False)
with Predictor(sys.argv[1], backend="onnx") as p, BackgroundServer(create_app(p)) as srv:
    r = httpx.post(srv.url + "/predict/landmarks", content=buf.getvalue(), headers={"content-type": "application/x-npy"}, timeout=60)
    e = httpx.post(srv.url + "/explain", json={"landmarks": clip.tolist()}, timeout=120)
    g = httpx.post(srv.url + "/explain", json={"landmarks": clip.tolist(), "frame_method": "gradcam"}, timeout=60)
    png = httpx.post(srv.url + "/explain?format=png", json={"landmarks": clip.tolist()}, timeout=120)
    print(json.dumps({"status": r.status_code, "body": r.json(), "explain": [e.status_code, e.json()],
                      "gradcam": [g.status_code, g.json()], "png": [png.status_code, png.json()],
                      "loaded": sorted(m for m in BLOCKED if m in sys.modules)}))
'''


def test_onnx_serving_needs_no_torch(tiny_onnx: Path) -> None:
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_onnx), json.dumps(BLOCKED)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["status"] == 200 and len(out["body"]["top_k"]) == 4, out
    (status, doc), (g_status, g_doc), (png_status, png_doc) = out["explain"], out["gradcam"], out["png"]
    assert status == 200 and doc["frame_method"] == "occlusion" and len(doc["frame_importance"]) == 40, out  # occlusion: forward passes only
    assert g_status == 501 and "'gradcam'" in g_doc["detail"] and "ONNX Runtime" in g_doc["detail"], out
    assert png_status == 501 and "matplotlib" in png_doc["detail"], out  # the slim install draws no PNG, and says so
    assert out["loaded"] == []

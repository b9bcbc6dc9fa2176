"""Shared by the tests of recognition in the page: the shipped model's ONNX export holding ``model.onnx``,
a real landmark stream, the Python recognizer's events on it, and the page's decoder (``static/stream.js``)
run in node on the same frames."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from conftest import require

ROOT = Path(__file__).resolve().parents[1]
STREAM_JS = ROOT / "src" / "signlang" / "serve" / "static" / "stream.js"
DECODE_MJS = Path(__file__).with_name("web") / "decode_stream.mjs"
NODE = shutil.which("node")


def shipped_export(tmp_root: Path) -> Path:
    """The shipped model's ONNX export with ``model.onnx``: the package's own ``onnx/`` once it holds one,
    else a fresh ``signlang export`` into ``tmp_root`` (about 2 minutes)."""
    from signlang._io import sha256_file
    from signlang.inference.pretrained import PRETRAINED_DIR

    bundle = PRETRAINED_DIR / "asl-cafe"
    shipped = bundle / "onnx"
    manifest = json.loads((shipped / "manifest.json").read_text(encoding="utf-8")) if (shipped / "manifest.json").is_file() else {}
    if (shipped / "model.onnx").is_file() and manifest.get("source", {}).get("bundle_manifest_sha256") == sha256_file(bundle / "manifest.json"):
        return shipped
    out = tmp_root / "asl-cafe-onnx"
    if not (out / "manifest.json").is_file():  # written last by the export
        from signlang.inference.export import export_bundle

        export_bundle(bundle, out, onegraph=True)
    return out


def real_stream(npz: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Real traduttore recordings joined by pauses, with a camera's jittered frame times (:func:`signlang.bench.web.traduttore_stream`)."""
    from signlang.bench.web import traduttore_stream

    return traduttore_stream(npz)


def python_events(predictor: Any, frames: np.ndarray, times: np.ndarray, config: Any) -> dict[str, Any]:
    """The server's recognizer, frame by frame as ``/ws/live`` pushes them: events and the latest result after each frame."""
    from signlang.inference.streaming import StreamingRecognizer

    rec = StreamingRecognizer(predictor, config)
    events, latest = [], []
    for f, t in zip(frames, times):
        events += rec.push(f, float(t))
        latest.append(None if rec.latest is None else rec.latest.to_dict())
    events += rec.finish()
    return {"mode": rec.mode, "events": [{**e.to_dict(), "prob_raw": e.prob, "start_s": e.start_s, "end_s": e.end_s} for e in events],
            "latest": latest}


def node_events(tmp: Path, config: dict[str, Any], export: Path, frames: np.ndarray, times: np.ndarray) -> dict[str, Any]:
    """The page's decoder in node 20 with onnxruntime-web on the same frames (``tests/web/decode_stream.mjs``)."""
    from signlang.serve.live import ort_assets_dir

    require(NODE is not None, "node is not installed")
    require(ort_assets_dir().is_dir(), "onnxruntime-web is not vendored (npm ci --prefix src/signlang/serve/static/vendor)")
    (tmp / "frames.f32").write_bytes(np.ascontiguousarray(frames, dtype="<f4").tobytes())
    doc = {"vendor": str(ort_assets_dir().parents[2]), "stream_js": str(STREAM_JS), "config": config, "frames": str(tmp / "frames.f32"),
           "times": [float(t) for t in times], "model": str(export / "model.onnx"), "segmenter": str(export / "segmenter.onnx")}
    (tmp / "input.json").write_text(json.dumps(doc))
    out = subprocess.run([NODE, str(DECODE_MJS), str(tmp / "input.json")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def same_events(py: list[dict[str, Any]], js: list[dict[str, Any]], prob_tol: float = 2e-3) -> None:
    """The same events: sign, start/end (1 us: the same grid times), low_confidence / unknown, top-k signs; probabilities
    within ``prob_tol``."""
    assert [e["sign"] for e in js] == [e["sign"] for e in py], (py, js)
    for p, j in zip(py, js):
        assert abs(j["start_s"] - p["start_s"]) < 1e-6 and abs(j["end_s"] - p["end_s"]) < 1e-6, (p, j)
        assert abs(j["prob"] - p["prob_raw"]) <= prob_tol, (p, j)
        assert (j["low_confidence"], j["unknown"]) == (p["low_confidence"], p["unknown"]), (p, j)
        assert [k["sign"] for k in j["top_k"]] == [k["sign"] for k in p["top_k"]], (p, j)

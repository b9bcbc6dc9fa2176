"""Recognition in the page (``static/stream.js`` + onnxruntime-web): what the page needs to run the model itself.

* ``GET /web/config`` — whether the page can recognise on the device (``available``, else ``reason``),
  and everything its decoder mirrors of the server's: the classes, the decision policy (``min_confidence``,
  the no-sign class, the open-set rule), the stream settings of ``/ws/live``
  (:func:`~signlang.serve.live.live_stream_config`, with ``window_samples``, ``hop_samples`` and
  ``min_window_frames`` as Python computes them), the landmark layout indices, the one graph's inputs
  and input length, the segmenter's settings (or null: the window gate), and the onnxruntime-web path;
* ``GET /web/model.onnx`` — the one graph (raw landmarks ``(N, T, 75, 3)`` + ``lengths (N,)`` ->
  ``probabilities (N, C)``, :mod:`signlang.inference.onegraph`) of the model answering now;
* ``GET /web/segmenter.onnx`` — its segmenter (two-stage decoding), when it has one.

The graphs come from the loaded model's ONNX export folder (the ``onnx`` backend's, or the bundle's
``onnx/`` made from this very bundle) and their sha256 is checked against the export's manifest. The
server runs nothing for a page in this mode: neither the video nor the landmarks reach it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response

from signlang.serve.deps import Slot
from signlang.serve.live import live_stream_config, ort_available
from signlang.serve.schemas import error_responses

router = APIRouter()
_GRAPH_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {"application/octet-stream": {}}, "description": "An ONNX graph."},
                                                     **error_responses(404)}

GRAPH_URL = "/web/model.onnx"
SEGMENTER_URL = "/web/segmenter.onnx"
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    from signlang._io import sha256_file

    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


def web_export(predictor: Any) -> tuple[Path | None, dict[str, Any], str | None]:
    """The loaded model's ONNX export folder holding ``model.onnx``, its manifest, and why not (None when fine)."""
    from signlang.inference.onnx_backend import ONEGRAPH_FILE

    info = getattr(predictor, "model_info", {}) or {}
    candidates = [Path(info["onnx_dir"])] if info.get("onnx_dir") else []
    if info.get("path"):
        candidates.append(Path(info["path"]) / "onnx")
    bundle_manifest = Path(info["path"]) / "manifest.json" if info.get("path") else None
    for folder in candidates:
        path = folder / "manifest.json"
        if not path.is_file():
            continue
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != "signlang-onnx":
            continue
        if folder != candidates[0] or not info.get("onnx_dir"):  # a bundle's onnx/: only an export of this very bundle
            from signlang._io import sha256_file

            src = manifest.get("source", {}).get("bundle_manifest_sha256")
            if bundle_manifest is None or not bundle_manifest.is_file() or src != sha256_file(bundle_manifest):
                continue
        entry = manifest.get("onegraph") or {}
        if entry.get("file") != ONEGRAPH_FILE:
            why = entry.get("unsupported") or f"the export {folder} has no {ONEGRAPH_FILE} (re-export with `signlang export`)"
            return None, manifest, f"this model has no one graph for the page: {why}"
        graph = folder / ONEGRAPH_FILE
        if not graph.is_file() or _sha256(graph) != entry.get("sha256"):
            return None, manifest, f"{graph}: missing or its sha256 differs from the export's manifest"
        seg = manifest.get("segmenter")
        if seg and (not (folder / seg["file"]).is_file() or _sha256(folder / seg["file"]) != seg.get("sha256")):
            return None, manifest, f"{folder / seg['file']}: missing or its sha256 differs from the export's manifest"
        return folder, manifest, None
    return None, {}, "the model answering here has no ONNX export holding model.onnx (write one with `signlang export`)"


def _layout() -> dict[str, Any]:
    from signlang.features.frames import _POSE_POINTS
    from signlang.landmarks import layout as L
    from signlang.inference.streaming import _MOTION_POINTS

    return {"n_points": L.N_POINTS, "hand_points": L.N_HAND, "hands": [[h.start, h.stop] for h in L.HANDS],
            "left_shoulder": L.LEFT_SHOULDER, "right_shoulder": L.RIGHT_SHOULDER,
            "motion_points": [int(i) for i in _MOTION_POINTS], "frame_pose_points": [int(i) for i in _POSE_POINTS],
            "tracked_dim": 2 * len(L.HANDS) + 2 * len(_POSE_POINTS)}


def web_config(predictor: Any) -> dict[str, Any]:
    """``GET /web/config``'s document for ``predictor`` (see the module docstring)."""
    from signlang.datasets.streams import TAG_B, TAG_I, TAG_O
    from signlang.inference.onnx_backend import ONEGRAPH_INPUTS, ONEGRAPH_OUTPUT
    from signlang.models.openset import ENERGY_DEFAULT_T

    folder, manifest, reason = web_export(predictor)
    if reason is None and not ort_available():
        reason = "onnxruntime-web is not vendored on this server (npm ci --prefix src/signlang/serve/static/vendor)"
    cfg = live_stream_config()
    policy = predictor.policy
    rule = policy.open_set
    seg = manifest.get("segmenter") if folder is not None else None
    doc: dict[str, Any] = {
        "available": reason is None, "reason": reason,
        "classes": list(predictor.classes),
        "policy": {"min_confidence": policy.min_confidence, "no_sign": policy.no_sign,
                   "open_set": None if rule is None else {"method": rule.method, "threshold": rule.threshold, "params": rule.params},
                   "score_defaults": {"energy_T": ENERGY_DEFAULT_T}},
        "stream": {**cfg.to_dict(), "window_samples": cfg.window_samples, "hop_samples": cfg.hop_samples,
                   "min_window_frames": cfg.min_window_frames},
        "layout": _layout(),
        "ort_path": "/static/ort/",
        "graph": None, "segmenter": None,
    }
    if folder is not None:
        entry = manifest["onegraph"]
        doc["graph"] = {"url": GRAPH_URL, "sha256": entry["sha256"], "bytes": (folder / entry["file"]).stat().st_size,
                        "inputs": list(ONEGRAPH_INPUTS), "output": ONEGRAPH_OUTPUT,
                        "input_frames": manifest.get("preprocessing", {}).get("normalize", {}).get("target_frames")}
    if seg and cfg.use_segmenter:
        c = seg["config"]
        doc["segmenter"] = {"url": SEGMENTER_URL, "sha256": seg["sha256"], "features": seg["features"], "lookahead": int(c["lookahead"]),
                            "layers": int(c["layers"]), "hidden": int(c["hidden"]), "decode": dict(seg["decode"]),
                            "tags": {"O": TAG_O, "B": TAG_B, "I": TAG_I}}
    return doc


@router.get("/web/config")
async def config(slot: Slot) -> JSONResponse:
    """What the page needs to recognise signs itself (see the module docstring)."""
    with slot.use() as predictor:
        return JSONResponse(web_config(predictor))


def _graph_file(slot: Any, which: str) -> FileResponse | JSONResponse:
    with slot.use() as predictor:
        folder, manifest, reason = web_export(predictor)
    entry = (manifest.get("onegraph") if which == "model" else manifest.get("segmenter")) if folder is not None else None
    if folder is None or not entry:
        detail = reason or "this model has no segmenter"
        return JSONResponse({"error": "not_found", "detail": detail}, status_code=404)
    return FileResponse(folder / entry["file"], media_type="application/octet-stream", headers={"Cache-Control": "no-cache"})


@router.get(GRAPH_URL, response_class=Response, responses=_GRAPH_RESPONSES)
async def graph(slot: Slot) -> Any:
    """The one graph of the model answering now (``model.onnx``)."""
    return _graph_file(slot, "model")


@router.get(SEGMENTER_URL, response_class=Response, responses=_GRAPH_RESPONSES)
async def segmenter(slot: Slot) -> Any:
    """The segmenter graph of the model answering now (404 when it has none)."""
    return _graph_file(slot, "segmenter")

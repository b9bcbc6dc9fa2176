"""The page's streaming decoder (``static/stream.js``, run in node 20 with the vendored onnxruntime-web on the
shipped model's graphs) against the server's :class:`~signlang.inference.streaming.StreamingRecognizer` on the
same real landmark stream (traduttore recordings joined by pauses, jittered frame times, dropped frames):
the same events (sign, start/end, low_confidence / unknown, top-3; probability within 2e-3), and the same
verdict after every frame, in two-stage (segmenter) decoding, the default, and with the window gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from web_fixtures import node_events, python_events, real_stream, same_events, shipped_export


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shipped_export(tmp_path_factory.getbasetemp())  # one export per session, shared by the modules


@pytest.fixture(scope="module")
def stream(traduttore_npz: Path):
    return real_stream(traduttore_npz)


# node + onnxruntime-web over 400 frames: about 12 s (segmenter, the default, in the default run) and 17 s (gate)
@pytest.mark.parametrize("use_segmenter", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["segmenter", "gate"])
def test_page_decoder_gives_the_servers_events(export: Path, stream, use_segmenter: bool, tmp_path: Path) -> None:
    from signlang.inference.predictor import Predictor
    from signlang.inference.pretrained import PRETRAINED_DIR
    from signlang.serve.live import live_stream_config
    from signlang.serve.routes.web import web_config

    frames, times, signs = stream
    predictor = Predictor(PRETRAINED_DIR / "asl-cafe", backend="onnx", onnx_dir=export, threads=1)
    cfg = web_config(predictor)
    assert cfg["available"], cfg["reason"]
    base = live_stream_config()
    config = base if use_segmenter else type(base)(**{**base.to_dict(), "use_segmenter": False})
    if not use_segmenter:  # the gate: what /web/config sends for a model without a segmenter
        cfg["stream"]["use_segmenter"], cfg["segmenter"] = False, None
    py = python_events(predictor, frames, times, config)
    js = node_events(tmp_path, cfg, export, frames, times)
    assert js["mode"] == py["mode"] == ("segmenter" if use_segmenter else "gate")
    assert len(py["events"]) >= 5 and {e["sign"] for e in py["events"]} <= set(signs), py["events"]  # real signs found
    same_events(py["events"], js["events"])
    assert len(js["latest"]) == len(py["latest"]) == len(times)
    for p, j in zip(py["latest"], js["latest"]):  # what the page shows after each frame: the same verdict
        assert (p is None) == (j is None)
        if p is not None:
            assert (j["rejected"], j["sign"], j["frames"]) == (p["rejected"], p["sign"], p["frames"]), (p, j)
            assert abs(j["end_s"] - p["end_s"]) < 1e-3 and [k["sign"] for k in j["top_k"]][:1] == [k["sign"] for k in p["top_k"]][:1]

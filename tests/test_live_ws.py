"""WebSocket ``/ws/live`` against a real uvicorn server on a free loopback port: events for a known
stream (JSON and binary frames), refused frames, limits with their close codes, /metrics."""

from __future__ import annotations

import json
import struct
import time

import httpx
import numpy as np
import pytest

from stream_fixtures import FPS, _held_sign, _stream, recognised_clips

websockets = pytest.importorskip("websockets")
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402


@pytest.fixture(scope="module")
def server(predictor):
    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.server import BackgroundServer
    from signlang.serve.settings import LiveLimits

    app = create_app(predictor, ServiceSettings(max_concurrency=2, live=LiveLimits(
        max_connections=2, max_message_bytes=16_000, max_frames_per_s=400, burst_frames=1000, max_bad_frames=5,
        max_queue=5000, topk_every_s=0.5)))
    with BackgroundServer(app) as srv:
        yield srv


def _ws_url(server) -> str:
    return server.url.replace("http://", "ws://") + "/ws/live"


def _frame_json(t: float, lm: np.ndarray) -> str:
    return json.dumps({"t": t, "landmarks": [None if np.isnan(p[0]) else [float(v) for v in p] for p in lm]})


def _frame_binary(t: float, lm: np.ndarray) -> bytes:
    return struct.pack("<d", t) + lm.astype("<f4").tobytes()


def _collect(ws, until: float) -> list[dict]:
    out = []
    while time.monotonic() < until:
        try:
            out.append(json.loads(ws.recv(timeout=max(0.05, until - time.monotonic()))))
        except TimeoutError:
            break
    return out


def test_events_for_a_known_stream_in_json_and_binary(server, predictor) -> None:
    from signlang.inference.streaming import StreamConfig

    clips, ok = recognised_clips(predictor, StreamConfig())
    frames, signs, _ = _stream(ok[:4], clips)
    with connect(_ws_url(server), open_timeout=10, max_size=2**20) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello" and hello["classes"] == len(clips.classes) and hello["binary_landmarks_bytes"] == 908
        for k, lm in enumerate(frames):
            ws.send(_frame_binary(k / FPS, lm) if k % 2 else _frame_json(k / FPS, lm))
            if k % 200 == 199:
                time.sleep(0.1)  # stay under the rate limit (400 frames/s)
        messages = _collect(ws, time.monotonic() + 30)
        events = [m for m in messages if m["type"] == "event"]
        assert [e["sign"] for e in events] == signs[:-1] or [e["sign"] for e in events] == signs  # the last closes on stream end
        assert all(set(e) >= {"sign", "prob", "top_k", "start_s", "end_s"} for e in events)
        topk = [m for m in messages if m["type"] == "topk"]
        assert len(topk) >= len(frames) / FPS / 0.5 * 0.5 and all(len(m["top_k"]) == 3 for m in topk)
        assert not [m for m in messages if m["type"] == "error"]

    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert 'signlang_live_frames_total{form="binary"} ' + f"{len(frames) // 2}.0" in metrics
    assert 'signlang_live_frames_total{form="json"} ' + f"{len(frames) - len(frames) // 2}.0" in metrics
    events_count = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("signlang_live_events_total ")))
    assert events_count >= len(signs) - 1
    assert "signlang_live_connections_total 1.0" in metrics


def test_held_sign_ends_and_sparse_frames_give_no_event(server, predictor) -> None:
    """Over the socket: hands that stay up still give an event every ``max_sign_s``; frames too sparse
    for a window (3 frames/s) give ``few_frames`` windows, said in each topk message, and no event."""
    from signlang.inference.streaming import StreamConfig

    clips, ok = recognised_clips(predictor, StreamConfig())
    held = _held_sign(clips.landmarks[ok[0]], 300)  # 10 s at 30 FPS, hands never drop
    with connect(_ws_url(server), open_timeout=10, max_size=2**20) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["min_window_frames"] == 4 and hello["idle_classes"] == [] and hello["config"]["max_sign_s"] == 2.0
        for k, lm in enumerate(held):
            ws.send(_frame_binary(k / FPS, lm))
            if k % 200 == 199:
                time.sleep(0.1)
        switch = len(held) / FPS
        for k in range(0, len(held), 10):  # the same sign again at 3 frames/s
            ws.send(_frame_binary(switch + k / FPS, held[k]))
        messages = _collect(ws, time.monotonic() + 30)
    events = [m for m in messages if m["type"] == "event"]
    assert [e["sign"] for e in events if e["end_s"] <= switch] == [clips.classes[clips.y[ok[0]]]] * 4, events
    assert not [e for e in events if e["start_s"] >= switch], events
    sparse = [m for m in messages if m["type"] == "topk" and m["t"] > switch + 1.0]
    assert sparse and all(m["rejected"] == "few_frames" and m["sign"] is None and m["frames"] < 4 for m in sparse), sparse
    dense = [m for m in messages if m["type"] == "topk" and 1.0 < m["t"] < switch]
    assert dense and all(m["frames"] >= 23 for m in dense), dense


def test_bad_frames_are_refused_and_the_stream_goes_on(server, predictor) -> None:
    clip = np.nan_to_num(np.asarray(recognised_clips.__globals__["tiny_clips"]().landmarks[0]), nan=0.5)
    with connect(_ws_url(server), open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        ws.send(json.dumps({"t": 0.0, "landmarks": [[0.1, 0.2, 0.3]] * 74}))  # 74 points
        err = json.loads(ws.recv(timeout=10))
        assert err["type"] == "error" and err["code"] == "bad_frame" and "(75, 3)" in err["detail"]
        ws.send(json.dumps({"landmarks": []}))  # no timestamp
        assert "needs 't'" in json.loads(ws.recv(timeout=10))["detail"]
        for k in range(40):  # the stream goes on
            ws.send(_frame_binary(k / FPS, clip[k % len(clip)]))
        ws.send(_frame_binary(0.5, clip[0]))  # time going backwards
        messages = _collect(ws, time.monotonic() + 10)
        assert any(m["type"] == "topk" for m in messages)
        assert any(m["type"] == "error" and "does not follow" in m["detail"] for m in messages)
        for _ in range(5):  # 5 bad frames in a row end the connection with 1007
            ws.send(json.dumps({"t": 9.0, "landmarks": "nope"}))
        with pytest.raises(ConnectionClosed) as info:
            for _ in range(20):
                ws.recv(timeout=10)
                ws.send(json.dumps({"t": 9.0, "landmarks": "nope"}))
        assert info.value.rcvd.code == 1007 and "malformed" in info.value.rcvd.reason


@pytest.mark.parametrize("payload, code, words", [
    ("this is not json", 1003, "not JSON"),
    (b"\x00" * 100, 1003, "908"),
    ("x" * 20_000, 1009, "exceeds"),
])
def test_bad_messages_close_with_a_clear_code(server, payload, code, words) -> None:
    with connect(_ws_url(server), open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        ws.send(payload)
        with pytest.raises(ConnectionClosed) as info:
            while True:
                ws.recv(timeout=10)
        assert info.value.rcvd.code == code and words in info.value.rcvd.reason


def test_connection_and_rate_limits(server) -> None:
    lm = np.full((75, 3), np.nan, np.float32)
    with connect(_ws_url(server), open_timeout=10) as a, connect(_ws_url(server), open_timeout=10) as b:
        assert json.loads(a.recv(timeout=10))["type"] == "hello" and json.loads(b.recv(timeout=10))["type"] == "hello"
        with connect(_ws_url(server), open_timeout=10) as c:  # the third is one too many
            with pytest.raises(ConnectionClosed) as info:
                c.recv(timeout=10)
            assert info.value.rcvd.code == 1013 and "too many" in info.value.rcvd.reason
        with pytest.raises(ConnectionClosed) as info:  # far past 400 frames/s with a burst of 1000
            for k in range(3000):
                a.send(_frame_binary(k / 1000, lm))
            while True:
                a.recv(timeout=10)
        assert info.value.rcvd.code == 1008 and "frames/s" in info.value.rcvd.reason
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert 'signlang_live_closed_total{code="1013"} 1.0' in metrics and 'signlang_live_closed_total{code="1008"} 1.0' in metrics


def test_api_keys_guard_the_socket(predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.server import BackgroundServer

    monkeypatch.setenv("SIGNLANG_API_KEYS", "k-live-1")
    with BackgroundServer(create_app(predictor, ServiceSettings(max_concurrency=1))) as srv:
        with connect(_ws_url(srv), open_timeout=10) as ws:  # no key: closed with a reason
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd.code == 1008 and "API key" in info.value.rcvd.reason
        with connect(_ws_url(srv), open_timeout=10, additional_headers={"Authorization": "Bearer k-live-1"}) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        with connect(_ws_url(srv) + "?token=k-live-1", open_timeout=10) as ws:  # browsers cannot set headers
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        # the page and its files load without a key (so it can ask for one); its config and the rest need one
        for path in ("/", "/static/live.js", "/static/live.css"):
            assert httpx.get(srv.url + path, timeout=10).status_code == 200, path
        assert httpx.get(srv.url + "/static/vendor/package.json", timeout=10).status_code == 404  # still only the page's files
        for path in ("/live/config", "/signs", "/metrics"):
            r = httpx.get(srv.url + path, timeout=10)
            assert r.status_code == 401 and r.json()["error"] == "unauthorized", path
        assert httpx.post(srv.url + "/", timeout=10).status_code == 401
        r = httpx.get(srv.url + "/live/config", headers={"Authorization": "Bearer k-live-1"}, timeout=10)
        assert r.status_code == 200 and r.json()["mode"] in ("browser", "server")
        assert httpx.get(srv.url + "/live/config", headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 401


def test_socket_key_stays_out_of_the_server_log(tiny_onnx, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real `signlang serve` logs each socket with its address: the ?token= value is written as ***."""
    from test_serve_faults import serve

    monkeypatch.setenv("SIGNLANG_API_KEYS", "k-secret-7")
    with serve(tiny_onnx) as (proc, url):
        ws_url = url.replace("http://", "ws://") + "/ws/live"
        with connect(ws_url + "?lite=1&token=k-secret-7", open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        with connect(ws_url + "?token=wrong-k-9", open_timeout=10) as ws:
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)
    log = proc.stdout.read() if proc.stdout else ""
    assert "/ws/live?lite=1&token=***" in log and "/ws/live?token=***" in log, log[-2000:]
    assert "k-secret-7" not in log and "wrong-k-9" not in log


def _until_quiet(ws, quiet_s: float = 2.0, limit_s: float = 60.0) -> list[dict]:
    """Messages until none came for ``quiet_s`` (the server has worked through what was sent)."""
    out, deadline = [], time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            out.append(json.loads(ws.recv(timeout=quiet_s)))
        except TimeoutError:
            break
    return out


def _active(messages: list[dict]) -> list[dict]:
    """topk messages of windows the gate let through to the model (the policy's flags apply to those only)."""
    return [m for m in messages if m["type"] == "topk" and m["rejected"] not in ("few_frames", "no_hands", "low_motion")]


def test_a_reload_reaches_live_connections_open_and_new(tiny_bundle, tmp_path) -> None:
    """``/admin/reload`` swaps the model of ``/ws/live`` too: a connection opened before it moves to the
    new model at its next frame (a new hello says ``reloaded``), one opened after starts on it. The new
    bundle differs in its manifest's ``min_confidence`` (1.0: every classified window is unsure), so
    which model answered shows in each topk message."""
    import shutil

    from signlang.inference.predictor import Predictor
    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.server import BackgroundServer
    from signlang.serve.settings import LiveLimits

    unsure = tmp_path / "unsure"
    shutil.copytree(tiny_bundle, unsure)
    manifest = json.loads((unsure / "manifest.json").read_text())
    manifest["preprocessing"]["min_confidence"] = 1.0
    (unsure / "manifest.json").write_text(json.dumps(manifest))
    clips = recognised_clips.__globals__["tiny_clips"]()
    frames, _, _ = _stream([0, 1], clips)
    half = len(frames) // 2
    settings = ServiceSettings(max_concurrency=1, live=LiveLimits(max_frames_per_s=5000, burst_frames=5000, max_queue=5000))
    with Predictor(tiny_bundle, backend="torch", threads=1) as p, BackgroundServer(create_app(p, settings)) as srv, \
            connect(_ws_url(srv), open_timeout=10, max_size=2**20) as before:
        model_id = httpx.get(srv.url + "/health", timeout=10).json()["model_id"]
        assert json.loads(before.recv(timeout=10))["reloaded"] is False
        for k in range(half):
            before.send(_frame_binary(k / FPS, frames[k]))
        first = _active(_until_quiet(before))
        assert first and not all(m["low_confidence"] for m in first), first  # the served model is sure of some windows

        r = httpx.post(srv.url + "/admin/reload", json={"model": str(unsure)}, timeout=60)
        assert r.status_code == 200 and r.json()["model_id"] != model_id, r.text
        for k in range(half, len(frames)):  # the open connection goes on
            before.send(_frame_binary(k / FPS, frames[k]))
        later = _until_quiet(before)
        assert later[0]["type"] == "hello" and later[0]["reloaded"] is True, later[:2]
        assert _active(later) and all(m["low_confidence"] for m in _active(later)), later

        with connect(_ws_url(srv), open_timeout=10, max_size=2**20) as after:  # a new connection: the new model
            assert json.loads(after.recv(timeout=10))["reloaded"] is False
            for k in range(len(frames)):
                after.send(_frame_binary(k / FPS, frames[k]))
            fresh = _active(_until_quiet(after))
            assert fresh and all(m["low_confidence"] for m in fresh), fresh
        metrics = httpx.get(srv.url + "/metrics", timeout=10).text
        assert "signlang_live_model_swaps_total 1.0" in metrics


def test_a_jpeg_frame_is_landmarked_by_the_one_frame_function(server, real_videos_dir) -> None:
    """Server-side landmarks: a JPEG camera frame on the socket gives the landmarks of
    :func:`signlang.landmarks.extract.frame_landmarks` (the function of extraction and ``signlang live``)."""
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("mediapipe")
    from signlang.landmarks.extract import frame_landmarks, new_holistic

    cap = cv2.VideoCapture(str(real_videos_dir / "wlasl_00336.mp4"))
    for _ in range(20):
        ok, bgr = cap.read()
    cap.release()
    assert ok
    jpeg = cv2.imencode(".jpg", cv2.resize(bgr, (320, 240)), [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
    assert len(jpeg) < 16_000 - 12  # under this server's message limit
    graph = new_holistic()
    try:
        expected = frame_landmarks(graph, cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), bgr=True, max_side=640)
    finally:
        graph.close()
    assert not np.isnan(expected[:33]).all()  # a person in the frame
    with connect(_ws_url(server), open_timeout=10, max_size=2**20) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        ws.send(b"JPG0" + struct.pack("<d", 0.0) + jpeg)
        got = next(m for m in _until_quiet(ws, quiet_s=20) if m["type"] == "landmarks")
    points = np.array([[np.nan] * 3 if p is None else p for p in got["landmarks"]], dtype=np.float32)
    assert got["t"] == 0.0 and points.shape == (75, 3)
    np.testing.assert_allclose(points, expected, atol=1e-4)  # NaN where it found nothing, in both

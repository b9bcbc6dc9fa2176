"""Recognition in the page, in a real headless Chromium (Debian's ``chromium`` driven by Playwright) on the
shipped model's graphs, served from 127.0.0.1:

* the page's graph (onnxruntime-web, ``model.onnx``) gives the same top-3 as the server's
  ``/predict/landmarks`` on the same real landmark clips (probabilities within 1e-4), and a real landmark
  stream fed through the page's own path gives the Python recognizer's events, written in the transcript;
* the page falls back to the server with a message when the graph cannot be loaded;
* the live page in local mode on a fake camera playing a real signing video: landmarks and results shown,
  no WebSocket opened, and the Python recognizer on the landmarks the page decoded gives the page's
  verdicts and events (slow);
* ``GET /web/config`` / ``/web/model.onnx`` themselves: the served graph is the export's (sha256), keys guard them.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from web_fixtures import python_events, real_stream, require, same_events, shipped_export

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shipped_export(tmp_path_factory.getbasetemp())  # one export per session, shared by the modules


@pytest.fixture(scope="module")
def web_predictor(export: Path):
    from signlang.inference.predictor import Predictor
    from signlang.inference.pretrained import PRETRAINED_DIR

    with Predictor(PRETRAINED_DIR / "asl-cafe", backend="onnx", onnx_dir=export, threads=1) as p:
        yield p


def _browser(pw, camera: Path | None = None):
    require(CHROMIUM is not None, "Debian's chromium is not installed (apt-get install chromium)")
    args = ["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]
    if camera is not None:
        args += ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={camera}"]
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)


def _real_clips(npz: Path, n: int = 10) -> list[np.ndarray]:
    """``n`` real traduttore recordings (20 frames, with a hand) of different signs, and one 40-frame join of two."""
    from signlang.landmarks.layout import from_258

    data = np.load(npz)
    rng = np.random.default_rng(3)
    picks = rng.choice(np.flatnonzero(~data["is_duplicate"]), 200, replace=False)
    clips, seen = [], set()
    for i in picks:
        clip = from_258(data["X"][i].astype(np.float32))[0]
        if int(data["y"][i]) in seen or not np.isfinite(clip[:, 33:, 0]).any():
            continue
        seen.add(int(data["y"][i]))
        clips.append(clip)
        if len(clips) == n:
            break
    return clips + [np.concatenate(clips[:2])]


def _server_top3(url: str, clip: np.ndarray) -> list[tuple[str, float]]:
    import httpx

    buf = io.BytesIO()
    np.save(buf, clip.astype(np.float32))
    r = httpx.post(f"{url}/predict/landmarks?k=3", content=buf.getvalue(), headers={"Content-Type": "application/x-npy"}, timeout=60)
    assert r.status_code == 200, r.text
    return [(d["sign"], d["prob"]) for d in r.json()["top_k"]]


def test_page_graph_gives_the_servers_top3_and_events(web_predictor, traduttore_npz: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.live import live_stream_config, ort_available
    from signlang.serve.server import BackgroundServer

    require(ort_available(), "onnxruntime-web is not vendored (npm ci --prefix src/signlang/serve/static/vendor)")
    clips = _real_clips(traduttore_npz)
    sockets: list[str] = []
    with BackgroundServer(create_app(web_predictor, ServiceSettings(max_concurrency=1))) as srv, sync_api.sync_playwright() as pw:
        want = [_server_top3(srv.url, c) for c in clips]
        browser = _browser(pw)  # no camera: the page loads its model, then finds no camera (not needed here)
        try:
            page = browser.new_page()
            page.set_default_timeout(120_000)
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.goto(srv.url + "/")
            page.wait_for_function("window.__device !== undefined || window.__live.recognitionNote.includes('recognising on the server')")
            assert page.evaluate("window.__live.recognition") == "device", page.evaluate("window.__live.recognitionNote")
            assert page.get_attribute("#recognition", "data-mode") == "device" and "on this device" in page.inner_text("#recognition")
            payload = [[[None if np.isnan(v) else float(v) for v in frame.ravel()] for frame in c] for c in clips]
            got = page.evaluate("""async (clips) => {
                const rows = await window.__device.model.proba(clips.map((c) => c.map((f) => Float32Array.from(f, (v) => v === null ? NaN : v))));
                const classes = window.__device.web.classes;
                return rows.map((r) => [...r.keys()].sort((a, b) => r[b] - r[a] || a - b).slice(0, 3).map((i) => [classes[i], r[i]]));
            }""", payload)
            # a real landmark stream through the page's own path (feedDevice, as the camera's frames go): events on screen
            frames, times, _ = real_stream(traduttore_npz)
            fed = [[float(t), [None if np.isnan(p[0]) else [float(v) for v in p] for p in f]] for f, t in zip(frames, times)]
            page.evaluate("""async (fed) => {
                for (const [t, pts] of fed) {
                    feedDevice(t, pts);
                    while (devicePending > 0) await new Promise((r) => setTimeout(r, 0));
                }
                for (const ev of await window.__device.recognizer.finish()) handle({ type: "event", ...ev });
            }""", fed)
            shown = json.loads(page.evaluate("JSON.stringify(window.__live)"))
            transcript = page.inner_text("#transcript")
        finally:
            browser.close()
    assert sockets == []  # the model ran in the page: no /ws/live
    assert len(got) == len(want) == len(clips)
    for w, g in zip(want, got):
        assert [s for s, _ in g] == [s for s, _ in w], (w, g)
        assert np.allclose([p for _, p in g], [p for _, p in w], atol=1e-4), (w, g)
    assert len({w[0][0] for w in want}) >= 5  # different signs, not one answer for all
    py = python_events(web_predictor, frames, times, live_stream_config())
    assert shown["framesDecoded"] == len(times) and shown["dropped"] == 0 and len(py["events"]) >= 5
    same_events(py["events"], shown["events"])
    assert transcript == " ".join("[unknown sign]" if e["unknown"] else e["sign"] for e in py["events"]), transcript


def test_page_falls_back_to_the_server_when_the_graph_cannot_load(web_predictor) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.live import ort_available
    from signlang.serve.server import BackgroundServer

    require(ort_available(), "onnxruntime-web is not vendored (npm ci --prefix src/signlang/serve/static/vendor)")
    with BackgroundServer(create_app(web_predictor, ServiceSettings(max_concurrency=1))) as srv, sync_api.sync_playwright() as pw:
        browser = _browser(pw)
        try:
            page = browser.new_page()
            page.set_default_timeout(120_000)
            page.route("**/web/model.onnx", lambda route: route.fulfill(status=200, body=b"not an onnx graph"))  # damaged in transit
            page.goto(srv.url + "/?recognize=device")
            page.wait_for_function("window.__live.recognition === 'server'")
            text, where = page.inner_text("#recognition"), page.get_attribute("#recognition", "data-mode")
            choice = page.evaluate("[...document.querySelectorAll('#controls input[name=recognize]')].map(i => [i.value, i.checked])")
        finally:
            browser.close()
    assert where == "server" and text.startswith("Recognition: on the server") and "could not be loaded in this browser" in text, text
    assert "recognising on the server instead" in text and choice == [["device", False], ["server", True]], (text, choice)


def test_web_routes_serve_the_export_and_say_why_not(web_predictor, export: Path, predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from signlang._io import sha256_file
    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.live import ort_available

    require(ort_available(), "onnxruntime-web is not vendored (npm ci --prefix src/signlang/serve/static/vendor)")
    with TestClient(create_app(web_predictor, ServiceSettings())) as client:
        cfg = client.get("/web/config").json()
        graph = client.get("/web/model.onnx")
        seg = client.get("/web/segmenter.onnx")
        ort = client.get("/static/ort/ort.wasm.min.mjs")
    assert cfg["available"] is True and cfg["reason"] is None and cfg["classes"] == list(web_predictor.classes)
    assert cfg["graph"]["sha256"] == sha256_file(export / "model.onnx") and graph.status_code == 200
    assert graph.content == (export / "model.onnx").read_bytes() and seg.content == (export / "segmenter.onnx").read_bytes()
    assert cfg["stream"]["window_samples"] == 24 and cfg["stream"]["min_window_frames"] == 4 and cfg["segmenter"]["lookahead"] >= 0
    assert cfg["policy"]["no_sign"] == "-" and cfg["policy"]["open_set"]["method"] == web_predictor.policy.open_set.method
    assert ort.status_code == 200 and ort.headers["content-type"].startswith("text/javascript")

    # a model without model.onnx (the tiny torch bundle): the page is told why, and the graph route says 404
    with TestClient(create_app(predictor, ServiceSettings())) as client:
        cfg = client.get("/web/config").json()
        missing = client.get("/web/model.onnx")
    assert cfg["available"] is False and "model.onnx" in cfg["reason"] and cfg["graph"] is None
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"

    monkeypatch.setenv("SIGNLANG_API_KEYS", "k-web-1")  # keys: the model and its settings need one, like /live/config
    with TestClient(create_app(web_predictor, ServiceSettings())) as client:
        assert client.get("/web/config").status_code == 401 and client.get("/web/model.onnx").status_code == 401
        assert client.get("/web/config", headers={"Authorization": "Bearer k-web-1"}).json()["available"] is True
        assert client.get("/static/ort/ort.wasm.min.mjs").status_code == 200  # page files stay open



@pytest.mark.slow  # MediaPipe on software WebGL: minutes on 2 cores
def test_live_page_recognises_on_the_device(web_predictor, camera_clip: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.live import browser_landmarks_available, live_stream_config, ort_available
    from signlang.serve.server import BackgroundServer

    require(browser_landmarks_available() and ort_available(), "web assets not vendored (npm ci --prefix src/signlang/serve/static/vendor)")
    sockets: list[str] = []
    errors: list[str] = []
    with BackgroundServer(create_app(web_predictor, ServiceSettings(max_concurrency=1))) as srv, sync_api.sync_playwright() as pw:
        browser = _browser(pw, camera_clip)
        try:
            page = browser.new_page()
            page.set_default_timeout(180_000)
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(srv.url + "/?lite=1")
            end = time.monotonic() + 400
            state: dict = {}
            while time.monotonic() < end:
                state = json.loads(page.evaluate("JSON.stringify({...window.__live, fed: window.__live.fed.length})") or "{}")
                if state.get("landmarksDrawn", 0) >= 3 and state.get("topk", 0) >= 3 and state.get("framesDecoded", 0) >= 20:
                    break
                time.sleep(5)
            page.evaluate("document.getElementById('pause').click()")
            page.wait_for_function("window.__live.paused === true")
            time.sleep(1)
            state = json.loads(page.evaluate("JSON.stringify(window.__live)"))
            recognition = page.inner_text("#recognition")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "live_page_device.png"), timeout=180_000)
            with page.expect_navigation():  # the user switches to recognition on the server
                page.click("#controls input[value=server][name=recognize]")
            page.wait_for_function("window.__live && window.__live.recognition === 'server' && window.__live.hello === true")
            switched = (page.evaluate("location.search"), page.inner_text("#recognition"))
        finally:
            browser.close()
    assert state["recognition"] == "device" and recognition.startswith("Recognition: on this device"), recognition
    assert state["landmarksDrawn"] >= 3 and state["topk"] >= 3 and state["framesSent"] == 0, state
    assert len(sockets) == 1 and sockets[0].endswith("/ws/live") and "recognize=server" in switched[0], (sockets, switched)
    assert switched[1].startswith("Recognition: on the server"), switched
    assert state["errors"] == [] and errors == [], (state["errors"], errors)
    # the server's recognizer on the very landmarks the page decoded: the page's verdicts and events
    fed = state["fed"]
    frames = np.array([[[np.nan] * 3 if p is None else p for p in pts] for _, pts in fed], dtype=np.float32)
    times = np.array([t for t, _ in fed])
    py = python_events(web_predictor, frames, times, live_stream_config())
    same_events(py["events"], state["events"])
    by_t = {float(t): latest for t, latest in zip(times, py["latest"])}
    shown = [w for w in state["windows"] if w["t"] in by_t]
    assert len(shown) >= 3
    for w in shown:
        p = by_t[w["t"]]
        assert (w["rejected"], w["sign"], w["frames"]) == (p["rejected"], p["sign"], p["frames"]), (w, p)

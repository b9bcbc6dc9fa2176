"""The browser page at ``/`` in a real headless Chromium (Debian's ``chromium`` driven by Playwright)
with a fake camera playing a real signing video: landmarks drawn, a prediction shown, the landmark
frame rate and lag shown, the mode control, no JavaScript error, screenshots kept in
``test-artifacts/``. Both modes: landmarks in the page (vendored ``@mediapipe/holistic``) and the
fallback that uploads JPEG frames for server-side landmarks. How the page words each server verdict
(no hands, hands still, too few frames, no sign, unknown) is checked on messages handed to it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from conftest import require

# Not slow: CI must show that the page works in a real browser (about a minute per mode on 2 cores).
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _wait_results(page, deadline_s: float) -> None:
    """Until landmarks are drawn, a window is shown and the frame rate is measured (or the deadline)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:  # software WebGL is slow: wait for a few results, not a frame rate
        state = json.loads(page.evaluate("JSON.stringify(window.__live)") or "{}")
        if state.get("landmarksDrawn", 0) >= 3 and state.get("topk", 0) >= 3 and state.get("landmarkFps") is not None:
            return
        time.sleep(5)


def _check_windows(state: dict, hello_min: int = 4) -> None:
    """Every window shown came with its real-frame count; too few frames is always a rejection, said in words."""
    windows = state["windows"]
    assert windows and all(isinstance(w["frames"], int) for w in windows), windows
    assert all(w["rejected"] == "few_frames" and w["sign"] is None for w in windows if w["frames"] < hello_min), windows
    if all(w["frames"] < hello_min for w in windows):  # no window the server could classify: no event either
        assert state["events"] == [], state["events"]


def _run_page(predictor, camera_clip: Path, mode: str, deadline_s: float, extra=None) -> dict:
    sync_api = pytest.importorskip("playwright.sync_api")
    require(CHROMIUM is not None, "Debian's chromium is not installed (apt-get install chromium)")
    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.live import browser_landmarks_available
    from signlang.serve.server import BackgroundServer

    if mode == "browser":
        require(browser_landmarks_available(), "web assets not vendored (npm ci --prefix src/signlang/serve/static/vendor)")
    app = create_app(predictor, ServiceSettings(max_concurrency=1))
    errors: list[str] = []
    with BackgroundServer(app) as srv, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={camera_clip}",
            "--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"])
        try:
            page = browser.new_page()
            page.set_default_timeout(180_000)  # MediaPipe on software WebGL can hold the page's thread for long
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("response", lambda r: errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
            page.goto(srv.url + ("/?lite=1" if mode == "browser" else "/"))
            _wait_results(page, deadline_s)
            # MediaPipe on software WebGL can keep the page from painting for minutes (a screenshot timed out
            # after 180 s at load 14): the page's own Pause button stops it first (clicked by script: no paint needed)
            page.evaluate("document.getElementById('pause').click()")
            page.wait_for_function("window.__live.paused === true")
            time.sleep(1)
            state = json.loads(page.evaluate("JSON.stringify(window.__live)"))
            state["prediction"] = page.evaluate("[...document.querySelectorAll('#top3 li')].map(li => li.textContent)")
            for key, sel in (("mode_text", "#mode"), ("verdict", "#verdict"), ("rate", "#rate"), ("transcript", "#transcript")):
                state[key] = page.inner_text(sel)
            state["mode_attr"] = page.get_attribute("#mode", "data-mode")
            state["rate_slow"] = page.get_attribute("#rate", "data-slow")
            state["choice"] = page.evaluate("[...document.querySelectorAll('#controls input')].map(i => [i.value, i.checked, i.disabled])")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"live_page_{mode}.png"), timeout=180_000)
            if extra is not None:
                state["extra"] = extra(page, srv)
        finally:
            browser.close()
    state["console_errors"] = errors
    return state


# Server verdicts handed to the page (its socket closed first) and what the "Now" panel must say.
VERDICTS = [
    ({"rejected": "no_hands", "frames": 24}, "no hands in view", 0),
    ({"rejected": "low_motion", "frames": 24}, "hands still", 0),
    ({"rejected": "few_frames", "frames": 1}, "too few frames (1 in the last 0.8 s window, 4 needed)", 0),
    ({"rejected": "idle", "frames": 24, "probs": [("-", 0.8), ("a", 0.15), ("b", 0.05)]}, "no sign", 3),
    ({"rejected": "low_confidence", "frames": 24, "probs": [("b", 0.3), ("-", 0.3), ("a", 0.2)]}, "not sure (below the confidence threshold)", 3),
    ({"rejected": None, "unknown": True, "frames": 24, "probs": [("a", 0.5), ("b", 0.3), ("-", 0.2)]}, "unknown sign", 3),
    ({"rejected": None, "frames": 24, "sign": "a", "probs": [("a", 0.9), ("-", 0.06), ("b", 0.04)]}, "a", 3),
]


def _verdicts(page, srv) -> list[tuple[str, list[str], str]]:
    """Hands the page each of :data:`VERDICTS` as the server would send it; what the page then shows."""
    page.evaluate("socket.onmessage = null; socket.onclose = null; socket.close()")
    hello = {"type": "hello", "classes": 3, "idle_classes": ["-"], "min_window_frames": 4, "config": {"window_s": 0.8}}
    page.evaluate(f"onMessage({{data: {json.dumps(json.dumps(hello))}}})")
    shown = []
    for k, (verdict, _, _) in enumerate(VERDICTS):
        probs = verdict.get("probs", [("-", 0.0), ("a", 0.0), ("b", 0.0)])
        msg = {"type": "topk", "t": k, "top_k": [{"sign": s, "prob": p} for s, p in probs], "sign": verdict.get("sign"),
               **{key: v for key, v in verdict.items() if key not in ("probs", "sign")}}
        page.evaluate(f"onMessage({{data: {json.dumps(json.dumps(msg))}}})")
        shown.append((page.inner_text("#verdict"), page.evaluate("[...document.querySelectorAll('#top3 li')].map(li => li.textContent)"),
                      page.get_attribute("#top3", "data-rejected")))
        if verdict.get("rejected") in ("no_hands", "idle"):
            page.screenshot(path=str(ARTIFACTS / f"live_page_verdict_{verdict['rejected']}.png"))
    for sign, unknown in (("a", False), ("-", False), ("b", True)):  # the transcript words them the same way
        page.evaluate(f"onMessage({{data: {json.dumps(json.dumps({'type': 'event', 'sign': sign, 'unknown': unknown, 'prob': 0.9}))}}})")
    shown.append((page.inner_text("#transcript"), [], ""))
    return shown


def test_page_in_server_landmark_mode(predictor, camera_clip: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SIGNLANG_WEB_ASSETS", str(tmp_path / "no-assets"))  # assets absent: the JPEG fallback
    state = _run_page(predictor, camera_clip, "server", deadline_s=240, extra=_verdicts)
    assert state["mode_attr"] == "server" and "server-side landmarks" in state["mode_text"]
    # browser: no assets here; recognition on the device needs landmarks in the browser
    assert state["choice"] == [["browser", False, True], ["server", True, False], ["on", False, True], ["device", False, True], ["server", True, False]]
    assert state["landmarksDrawn"] >= 3 and state["framesSent"] >= 3
    assert state["topk"] >= 3 and state["verdict"].strip(), state
    assert "frames/s" in state["rate"] and "lag: " in state["rate"] and state["landmarkFps"] > 0 and state["lagS"] is not None, state
    _check_windows(state)
    shown = state["extra"]
    for (verdict, words, n_items), (text, items, rejected) in zip(VERDICTS, shown):
        assert text == words and len(items) == n_items, (verdict, text, items)
        assert rejected == ("unknown" if verdict.get("unknown") else verdict["rejected"] or "")
        assert all(not i.startswith("- ") for i in items) and (n_items == 0 or any(i.startswith("(no sign) ") for i in items)), items
    assert shown[-1][0].endswith("a (no sign) [unknown sign]"), shown[-1]
    assert state["errors"] == [] and state["console_errors"] == []
    assert (ARTIFACTS / "live_page_server.png").stat().st_size > 10_000


def _switch_to_server(page, srv) -> dict:
    """The mode control: "on the server" reloads the page in server mode, the lighter-model choice kept."""
    with page.expect_navigation():
        page.click("#controls input[name=landmarks][value=server]")
    page.wait_for_function("window.__live && window.__live.mode === 'server' && window.__live.hello === true")
    return {"url": page.evaluate("location.search"), "mode_text": page.inner_text("#mode"),
            "choice": page.evaluate("[...document.querySelectorAll('#controls input')].map(i => [i.value, i.checked, i.disabled])")}


def test_page_in_browser_landmark_mode(predictor, camera_clip: Path) -> None:
    state = _run_page(predictor, camera_clip, "browser", deadline_s=400, extra=_switch_to_server)
    assert state["mode_attr"] == "browser" and "in your browser" in state["mode_text"]
    # ?lite=1 shown as chosen; the tiny test model has no model.onnx: recognition on the server (the device option greyed)
    assert state["choice"] == [["browser", True, False], ["server", False, False], ["on", True, False], ["device", False, True], ["server", True, False]]
    assert state["recognition"] == "server" and "not available" in state["recognitionNote"], state["recognitionNote"]
    assert state["landmarksDrawn"] >= 3 and state["framesSent"] >= 3, state  # MediaPipe ran in the page
    assert state["topk"] >= 3 and state["verdict"].strip(), state  # the server's verdict is shown
    assert "frames/s" in state["rate"] and "lag: " in state["rate"] and state["lagS"] is not None, state
    if state["landmarkFps"] < 5:  # software WebGL on a small machine: the page says it is too slow ...
        assert state["rate_slow"] == "yes" and "too slow to recognise signs" in state["rate"], state
    _check_windows(state)  # ... and the server gives no sign from windows of too few real frames
    switched = state["extra"]
    assert switched["url"] in ("?lite=1&landmarks=server", "?landmarks=server&lite=1"), switched
    assert "server-side landmarks" in switched["mode_text"] and ["server", True, False] in switched["choice"], switched
    assert state["errors"] == [] and state["console_errors"] == []
    assert (ARTIFACTS / "live_page_browser.png").stat().st_size > 10_000


def test_page_with_api_keys(predictor, camera_clip: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keys set: without a key the page says so and shows a key field (no socket); a wrong key typed
    there is refused with a message; the key in the address's fragment connects and gets results."""
    sync_api = pytest.importorskip("playwright.sync_api")
    require(CHROMIUM is not None, "Debian's chromium is not installed (apt-get install chromium)")
    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.server import BackgroundServer

    key = "k-page-1"
    monkeypatch.setenv("SIGNLANG_API_KEYS", key)
    monkeypatch.setenv("SIGNLANG_WEB_ASSETS", str(tmp_path / "no-assets"))  # the JPEG fallback: results need no in-page WebGL
    state = "JSON.stringify(window.__live)"
    with BackgroundServer(create_app(predictor, ServiceSettings(max_concurrency=1))) as srv, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={camera_clip}",
            "--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            statuses: list[tuple[int, str]] = []
            page.on("response", lambda r: statuses.append((r.status, r.url.removeprefix(srv.url))))
            page.goto(srv.url + "/")  # no key
            page.wait_for_function("window.__live.auth === 'missing'")
            assert page.is_visible("#auth") and "needs an API key" in page.inner_text("#auth-message")
            assert page.inner_text("#mode") == "API key needed" and page.get_attribute("#mode", "data-mode") == "auth"
            page.fill("#auth-key", "not-the-key")  # a wrong key typed into the field
            page.click("#auth button")
            page.wait_for_function("window.__live.auth === 'refused'")
            assert "refused this API key" in page.inner_text("#auth-message")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "live_page_key_refused.png"))
            first = json.loads(page.evaluate(state))
            assert first["hello"] is False and first["framesSent"] == 0  # no socket without a valid key
            assert [s for s, _ in statuses if s == 401] == [401, 401], statuses  # /live/config only, page files are open
            assert all(u == "/live/config" for s, u in statuses if s == 401)

            page = browser.new_page()  # a fresh tab: nothing stored, the key in the fragment only
            page.set_default_timeout(180_000)
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(srv.url + f"/#token={key}")
            page.wait_for_function("window.__live.hello === true")  # the socket took the key
            assert "token" not in page.evaluate("location.href")  # out of the address bar
            end = time.monotonic() + 180
            live: dict = {}
            while time.monotonic() < end:
                live = json.loads(page.evaluate(state))
                if live["topk"] >= 1 and live["landmarksDrawn"] >= 1:
                    break
                time.sleep(2)
            assert live["auth"] == "ok" and live["topk"] >= 1 and live["landmarksDrawn"] >= 1, live
            items = page.evaluate("[...document.querySelectorAll('#top3 li')].map(li => li.textContent)")
            rejected = page.get_attribute("#top3", "data-rejected")  # the server's verdict: a top-3, or a reason in words instead
            assert page.inner_text("#verdict").strip() and (len(items) == 3 or rejected in ("few_frames", "no_hands", "low_motion")), (items, rejected)
            assert page.is_hidden("#auth") and live["errors"] == [] and errors == []
        finally:
            browser.close()

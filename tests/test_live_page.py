"""The browser page at ``/`` in a real headless Chromium (Debian's ``chromium`` driven by Playwright)
with a fake camera playing a real signing video: landmarks drawn, a prediction shown, no JavaScript
error, a screenshot kept in ``test-artifacts/``. Both modes: landmarks in the page (vendored
``@mediapipe/holistic``) and the fallback that uploads JPEG frames for server-side landmarks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

# Not slow: CI must show that the page works in a real browser (about a minute per mode on 2 cores).
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _require(ok: bool, reason: str) -> None:
    if not ok:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def camera_clip(real_videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .y4m for Chromium's fake camera, made with ffmpeg from a real signing video."""
    _require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed (apt-get install ffmpeg)")
    out = tmp_path_factory.mktemp("camera") / "clip.y4m"
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(real_videos_dir / "slp_pose_FOOTBALL.mp4"),
                    "-vf", "scale=640:360,fps=15", "-pix_fmt", "yuv420p", str(out)], check=True, timeout=120)
    return out


def _run_page(predictor, camera_clip: Path, mode: str, deadline_s: float) -> dict:
    sync_api = pytest.importorskip("playwright.sync_api")
    _require(CHROMIUM is not None, "Debian's chromium is not installed (apt-get install chromium)")
    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.live import browser_landmarks_available
    from signlang.serve.server import BackgroundServer

    if mode == "browser":
        _require(browser_landmarks_available(), "web assets not vendored (npm ci --prefix src/signlang/serve/static/vendor)")
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
            end = time.monotonic() + deadline_s
            state: dict = {}
            while time.monotonic() < end:  # software WebGL is slow: wait for a few results, not a frame rate
                state = json.loads(page.evaluate("JSON.stringify(window.__live)", ) or "{}")
                prediction = page.evaluate("[...document.querySelectorAll('#top3 li')].map(li => li.textContent)")
                if state.get("landmarksDrawn", 0) >= 3 and state.get("topk", 0) >= 1 and any(not p.rstrip().endswith(" 0%") for p in prediction):
                    break
                time.sleep(5)
            state["prediction"] = page.evaluate("[...document.querySelectorAll('#top3 li')].map(li => li.textContent)")
            state["mode_text"] = page.inner_text("#mode")
            state["mode_attr"] = page.get_attribute("#mode", "data-mode")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"live_page_{mode}.png"), timeout=180_000)
        finally:
            browser.close()
    state["console_errors"] = errors
    return state


def test_page_in_server_landmark_mode(predictor, camera_clip: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SIGNLANG_WEB_ASSETS", str(tmp_path / "no-assets"))  # assets absent: the JPEG fallback
    state = _run_page(predictor, camera_clip, "server", deadline_s=240)
    assert state["mode_attr"] == "server" and "server-side landmarks" in state["mode_text"]
    assert state["landmarksDrawn"] >= 3 and state["framesSent"] >= 3
    assert state["prediction"] and any(not p.rstrip().endswith(" 0%") for p in state["prediction"]), state
    assert state["errors"] == [] and state["console_errors"] == []
    assert (ARTIFACTS / "live_page_server.png").stat().st_size > 10_000


def test_page_in_browser_landmark_mode(predictor, camera_clip: Path) -> None:
    state = _run_page(predictor, camera_clip, "browser", deadline_s=400)
    assert state["mode_attr"] == "browser" and "in your browser" in state["mode_text"]
    assert state["landmarksDrawn"] >= 3 and state["framesSent"] >= 3, state  # MediaPipe ran in the page
    assert state["topk"] >= 1 and len(state["prediction"]) == 3, state  # the server's top-3 is shown
    assert state["errors"] == [] and state["console_errors"] == []
    assert (ARTIFACTS / "live_page_browser.png").stat().st_size > 10_000


def test_page_with_api_keys(predictor, camera_clip: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keys set: without a key the page says so and shows a key field (no socket); a wrong key typed
    there is refused with a message; the key in the address's fragment connects and gets results."""
    sync_api = pytest.importorskip("playwright.sync_api")
    _require(CHROMIUM is not None, "Debian's chromium is not installed (apt-get install chromium)")
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
            assert len(page.evaluate("[...document.querySelectorAll('#top3 li')].map(li => li.textContent)")) == 3
            assert page.is_hidden("#auth") and live["errors"] == [] and errors == []
        finally:
            browser.close()

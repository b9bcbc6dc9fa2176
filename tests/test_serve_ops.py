"""Operating the service: reload under traffic, refused bundles, API keys, rate limits, CORS, video limits.

Every server here is a real uvicorn on a free loopback port (in a thread); loops are bounded.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bundle_fixtures import tiny_clips
from signlang.landmarks.layout import to_258


def _payload(i: int = 0) -> dict[str, Any]:
    return {"landmarks": to_258(tiny_clips().landmarks[i]).tolist()}


def _server(predictor, **settings: Any):
    from signlang.serve.app import create_app
    from signlang.serve.server import BackgroundServer
    from signlang.serve.settings import ServiceSettings

    return BackgroundServer(create_app(predictor, ServiceSettings(**settings)))


def _tampered_copy(bundle: Path, dest: Path) -> Path:
    shutil.copytree(bundle, dest)
    weights = next(dest.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the weights: the manifest's sha256 no longer matches
    weights.write_bytes(bytes(data))
    return dest


def test_reload_under_traffic_has_no_failures_and_a_tampered_bundle_is_refused(predictor, tiny_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    tampered = _tampered_copy(tiny_bundle, tmp_path / "tampered")
    statuses: list[int] = []
    stop = threading.Event()
    with _server(predictor) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        before = c.get("/health").json()

        def traffic() -> None:
            with httpx.Client(base_url=srv.url, timeout=60) as tc:
                deadline = time.monotonic() + 60
                while not stop.is_set() and time.monotonic() < deadline:
                    statuses.append(tc.post("/predict/landmarks", json=_payload(len(statuses) % 5)).status_code)

        workers = [threading.Thread(target=traffic) for _ in range(3)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 30
        while len(statuses) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        during = len(statuses)
        r = c.post("/admin/reload", json={"model": str(copy)})
        assert r.status_code == 200, r.text
        after = r.json()
        assert after["reloads"] == 1 and after["model_id"] == before["model_id"]  # same bytes, same id
        r = c.post("/admin/reload", json={"model": str(tampered)})
        assert r.status_code == 422 and r.json()["error"] == "reload_refused" and "sha256" in r.json()["detail"], r.text
        assert "previous model keeps serving" in r.json()["detail"]
        r = c.post("/admin/reload", json={"model": str(tmp_path / "missing")})
        assert r.status_code == 422, r.text
        deadline = time.monotonic() + 30
        while len(statuses) < during + 6 and time.monotonic() < deadline:  # traffic goes on after the swap
            time.sleep(0.05)
        stop.set()
        for w in workers:
            w.join(60)
        assert c.get("/health").json()["reloads"] == 1
        assert c.post("/predict/landmarks", json=_payload()).status_code == 200
        metrics = c.get("/metrics").text
    assert len(statuses) >= during + 6 and during >= 3 and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert 'signlang_model_reloads_total{outcome="refused"} 2.0' in metrics


def test_reload_refuses_a_model_that_answers_badly(predictor, tiny_bundle: Path) -> None:
    from signlang.serve.model_slot import ModelSlot, ReloadError

    class Broken:
        def __init__(self, inner) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def proba(self, clips):
            return np.full((len(clips), len(self.inner.classes)), np.nan)

        def close(self) -> None:
            pass

    slot = ModelSlot(predictor, loader=lambda path: Broken(predictor))
    with pytest.raises(ReloadError, match="not finite"):
        slot.reload(str(tiny_bundle))
    assert slot.predictor is predictor and slot.reloads == 0


def test_api_keys_guard_every_route_but_health_ready_and_the_page(predictor, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    keyfile = tmp_path / "keys"
    keyfile.write_text("# one key a line\nfile-key\n")
    monkeypatch.setenv("SIGNLANG_API_KEYS", "env-key-1, env-key-2")
    with _server(predictor, api_keys_file=str(keyfile)) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        assert c.get("/health").status_code == 200 and c.get("/ready").status_code == 200
        assert c.get("/").status_code == 200  # the live page (no data): it asks for the key itself (tests/test_live_page.py)
        for method, path in [("GET", "/signs"), ("GET", "/live/config"), ("GET", "/metrics"), ("GET", "/openapi.json"), ("POST", "/predict/landmarks"),
                             ("POST", "/admin/reload"), ("POST", "/explain"), ("POST", "/predict")]:
            r = c.request(method, path)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), (path, r.text)
            assert r.json()["error"] == "unauthorized"
        r = c.get("/signs", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and "not valid" in r.json()["detail"]
        for key in ("env-key-1", "env-key-2", "file-key"):
            r = c.post("/predict/landmarks", json=_payload(), headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200, r.text


def test_rate_limit_answers_429_per_client(predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNLANG_API_KEYS", "alice,bob")
    with _server(predictor, rate_limit_per_s=1.0, rate_limit_burst=3) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        alice = [c.get("/signs", headers={"Authorization": "Bearer alice"}) for _ in range(5)]
        assert [r.status_code for r in alice] == [200, 200, 200, 429, 429]
        assert alice[3].json()["error"] == "rate_limited" and int(alice[3].headers["retry-after"]) >= 1
        assert c.get("/signs", headers={"Authorization": "Bearer bob"}).status_code == 200  # another client, another bucket
        assert c.get("/health").status_code == 200  # probes are never limited
        assert 'signlang_rejected_total{reason="rate_limit"} 2.0' in c.get("/metrics", headers={"Authorization": "Bearer bob"}).text


def test_cors_allows_only_the_configured_origin(predictor) -> None:
    with _server(predictor, cors_origins=("https://app.example",)) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
        ok = c.options("/predict/landmarks", headers={"Origin": "https://app.example", **pre})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
        bad = c.options("/predict/landmarks", headers={"Origin": "https://evil.example", **pre})
        assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers
        r = c.get("/signs", headers={"Origin": "https://app.example"})
        assert r.headers["access-control-allow-origin"] == "https://app.example"


def _ffmpeg_video(path: Path, size: str, seconds: float, rate: int = 10) -> Path:
    import av

    w, h = (int(v) for v in size.split("x"))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((h, w, 3), np.uint8), format="rgb24")
        for _ in range(int(seconds * rate)):
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_video_limits_are_checked_from_the_header_before_decoding(predictor, tmp_path: Path) -> None:
    pytest.importorskip("av")
    uploads = tmp_path / "uploads"
    big = _ffmpeg_video(tmp_path / "big.mp4", "1280x720", 0.2)
    long = _ffmpeg_video(tmp_path / "long.mp4", "64x48", 30, rate=10)
    with _server(predictor, max_video_side=640, max_video_seconds=10, max_video_frames=100_000,
                 upload_root=str(uploads)) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        for path, fragment in [(big, "1280x720"), (long, "30.0 s")]:
            start = time.perf_counter()
            with open(path, "rb") as fh:
                r = c.post("/predict", files={"video": (path.name, fh, "video/mp4")})
            assert r.status_code == 413 and r.json()["error"] == "video_refused" and fragment in r.json()["detail"], r.text
            assert time.perf_counter() - start < 5
            assert "landmarks" not in r.text
        truncated = tmp_path / "truncated.mp4"
        truncated.write_bytes(big.read_bytes()[: big.stat().st_size // 3])
        with open(truncated, "rb") as fh:
            r = c.post("/predict", files={"video": ("t.mp4", fh, "video/mp4")})
        assert r.status_code in (413, 415, 422) and r.json()["error"] in ("video_refused", "unreadable_video", "nothing_detected"), r.text
    assert list(uploads.iterdir()) == []  # every upload folder deleted


def test_ready_goes_503_while_shutting_down(predictor) -> None:
    from signlang.serve.app import create_app
    from signlang.serve.settings import ServiceSettings
    from fastapi.testclient import TestClient

    app = create_app(predictor, ServiceSettings())
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 200
        app.state.service.shutting_down = True
        r = client.get("/ready")
        assert r.status_code == 503 and r.json() == {"ready": False, "reason": "shutting down"}
        assert client.get("/health").status_code == 200  # still alive


def test_no_import_circle_in_serve() -> None:
    code = "import signlang.serve.routes.explain, signlang.serve.routes.live, signlang.serve.app"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120).returncode == 0
    routes = Path(__file__).resolve().parents[1] / "src" / "signlang" / "serve" / "routes"
    for module in routes.glob("*.py"):  # routers share state through serve/deps.py, never through the app module
        assert "signlang.serve.app" not in module.read_text(), module.name


def test_the_service_min_confidence_also_holds_after_a_reload(tiny_bundle: Path) -> None:
    """``signlang serve --min-confidence``: every answer is flagged below the service's bar, also from a reloaded model."""
    from signlang.inference.predictor import Predictor

    with Predictor(tiny_bundle, threads=1) as p, _server(p, max_concurrency=1, min_confidence=1.0) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as c:
        for _ in range(2):
            r = c.post("/predict/landmarks", json=_payload(0))
            assert r.status_code == 200, r.text
            assert r.json()["low_confidence"] is True and r.json()["top_k"][0]["prob"] < 1.0
            r = c.post("/admin/reload", json={"model": str(tiny_bundle)})
            assert r.status_code == 200, r.text
        assert c.get("/health").json()["reloads"] == 2


def test_metrics_label_the_page_and_the_docs_by_their_route(predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    """Starlette's own routes (/docs, /openapi.json, /redoc) and requests refused before routing
    (401 under API keys) carry their route template; only a path no route matches is 'unmatched'."""
    monkeypatch.setenv("SIGNLANG_API_KEYS", "k")
    auth = {"Authorization": "Bearer k"}
    with _server(predictor) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        for path in ("/", "/docs", "/openapi.json", "/redoc", "/no-such-page"):
            c.get(path, headers=auth)
        assert c.get("/docs").status_code == 401  # refused by the key check, before routing
        lines = [ln for ln in c.get("/metrics", headers=auth).text.splitlines() if ln.startswith("signlang_requests_total")]
    counted = {(re.search(r'route="([^"]*)"', ln).group(1), re.search(r'status="(\d+)"', ln).group(1)) for ln in lines}  # type: ignore[union-attr]
    for route in ("/", "/docs", "/openapi.json", "/redoc"):
        assert (route, "200") in counted, lines
    assert ("/docs", "401") in counted and ("unmatched", "404") in counted, lines
    assert not any(r == "unmatched" and s != "404" for r, s in counted), lines


def test_settings_carry_the_live_limits_to_every_worker_and_refuse_unknown_ones() -> None:
    """``--workers N`` hands the settings to each worker as JSON: the socket's limits go with them."""
    from signlang.serve.settings import LiveLimits, ServiceSettings

    settings = ServiceSettings(max_queue=7, cors_origins=("http://a",), live=LiveLimits(max_connections=3, topk_every_s=0.5))
    assert ServiceSettings.from_json(settings.to_json()) == settings
    with pytest.raises(ValueError, match="unknown live settings: \\['max_conections'\\]"):
        ServiceSettings.from_json(json.dumps({"live": {"max_conections": 3}}))


def test_serve_cli_defaults_are_the_settings_defaults(tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``signlang serve`` without limit options serves exactly ``ServiceSettings()`` (its defaults are read
    from serve/settings.py); an option reaches its field (the socket's included)."""
    from typer.testing import CliRunner

    import signlang.serve.server as server
    from signlang.cli import app
    from signlang.serve import settings as defaults

    runs: list[dict] = []
    def fake_run(model: str, **kw: Any) -> None:  # what would be served, without serving it
        kw.pop("predictor").close()
        runs.append(kw)

    monkeypatch.setattr(server, "run", fake_run)
    res = CliRunner().invoke(app, ["serve", "--model", str(tiny_onnx)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["serve", "--model", str(tiny_onnx), "--max-queue", "9", "--live-max-connections", "2"])
    assert res.exit_code == 0, res.output
    first, second = runs
    assert first["settings"] == defaults.ServiceSettings()
    assert (first["host"], first["port"], first["backend"], first["workers"], first["threads"]) == (
        defaults.DEFAULT_HOST, defaults.DEFAULT_PORT, defaults.DEFAULT_BACKEND, defaults.DEFAULT_WORKERS, defaults.DEFAULT_THREADS)
    assert second["settings"].max_queue == 9 and second["settings"].live.max_connections == 2
    assert second["settings"].live.max_frames_per_s == defaults.LiveLimits().max_frames_per_s

"""Live recognition over a WebSocket (``/ws/live``) and the browser page (``/``) that uses it.

One :class:`~signlang.inference.streaming.StreamingRecognizer` per connection, on the served
predictor. Client -> server messages:

* text JSON ``{"t": seconds, "landmarks": 75 x 3 (or 225 / 258 numbers; null = not detected)}``;
  ``{"type": "reset"}`` starts a new stream;
* binary landmarks: exactly 908 bytes, a little-endian float64 timestamp then ``(75, 3)`` float32
  (NaN = not detected);
* binary camera frame (the page's fallback when the in-browser landmark assets are absent):
  ``b"JPG0"`` + float64 timestamp + a JPEG image; the server runs MediaPipe Holistic on it and
  answers ``{"type": "landmarks", ...}`` besides the recognition messages.

Server -> client: ``{"type": "hello", ...}`` once (with ``idle_classes``, the vocabulary's no-sign
class as a list of 0 or 1 name, and ``min_window_frames``), ``{"type": "event", "sign", "prob",
"top_k", "start_s", "end_s", "low_confidence", "unknown"}`` per recognised sign, ``{"type": "topk",
"t", "top_k", "sign", "rejected", "frames", "low_confidence", "unknown", ...}`` every
``topk_every_s`` of stream time (``rejected``: why the latest window is no sign, one of
:data:`~signlang.inference.streaming.GATE_REASONS`, or null; ``frames``: the real frames in it),
and ``{"type": "error", "code", "detail"}`` for a refused frame (the stream goes on).

Which frames count, when a sign ends: the recognizer's gate
(:mod:`signlang.inference.streaming`), the same for this socket, ``signlang live`` and ``spot``.

Limits (:class:`LiveLimits`) close the socket with a code and a reason: too many connections
1013, a message over ``max_message_bytes`` 1009, faster than ``max_frames_per_s`` (token bucket)
1008, a message that is neither JSON nor a known binary form 1003, ``max_bad_frames`` refused
frames in a row 1007. Frames are queued at most ``max_queue`` deep: past that they are dropped
(counted, the recognizer works from timestamps), never queued without bound.

API keys (when set): the socket needs one (``Authorization: Bearer`` or ``?token=``; else closed
with 1008), so does ``/live/config``; the page and its static files stay open
(:mod:`signlang.serve.security`) so that the page can load and ask for a key (``static/live.js``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import os
import struct
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from anyio import to_thread
from fastapi import APIRouter, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse
from prometheus_client import Counter, Gauge

from signlang.serve.state import service_of

STATIC_DIR = Path(__file__).with_name("static")
ENV_WEB_ASSETS = "SIGNLANG_WEB_ASSETS"  # folder holding node_modules/@mediapipe/holistic (default: static/vendor)
HOLISTIC_FILES = ("holistic.js", "holistic_solution_packed_assets.data", "holistic_solution_simd_wasm_bin.wasm", "holistic.binarypb")
BINARY_LANDMARKS_BYTES = 8 + 75 * 3 * 4
JPEG_MAGIC = b"JPG0"

CLOSE_UNSUPPORTED = 1003
CLOSE_BAD_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_LATER = 1013

router = APIRouter()


@dataclass(frozen=True)
class LiveLimits:
    """Per-app limits of ``/ws/live``."""

    max_connections: int = 16
    max_message_bytes: int = 256 * 1024
    max_frames_per_s: float = 90.0
    burst_frames: int = 180
    max_bad_frames: int = 50
    max_queue: int = 32  # landmark frames waiting for the recognizer; JPEG frames wait at most 1
    topk_every_s: float = 0.25
    jpeg_max_side: int = 640


class LiveMetrics:
    """``/metrics`` counters of the live socket, in the app's own registry."""

    def __init__(self, registry: Any) -> None:
        self.connections = Counter("signlang_live_connections_total", "WebSocket /ws/live connections accepted.", registry=registry)
        self.open = Gauge("signlang_live_open_connections", "Open /ws/live connections.", registry=registry)
        self.frames = Counter("signlang_live_frames_total", "Frames received on /ws/live by form.", ("form",), registry=registry)
        self.dropped = Counter("signlang_live_frames_dropped_total", "Frames dropped because the recognizer was behind.", registry=registry)
        self.refused = Counter("signlang_live_frames_refused_total", "Frames refused as malformed.", registry=registry)
        self.events = Counter("signlang_live_events_total", "Sign events sent on /ws/live.", registry=registry)
        self.closed = Counter("signlang_live_closed_total", "Connections closed by the server, by close code.", ("code",), registry=registry)


def web_assets_dir() -> Path:
    """Where the vendored ``@mediapipe/holistic`` files are (they may be absent)."""
    root = Path(os.environ.get(ENV_WEB_ASSETS) or STATIC_DIR / "vendor")
    return root / "node_modules" / "@mediapipe" / "holistic"


def browser_landmarks_available() -> bool:
    folder = web_assets_dir()
    return all((folder / f).is_file() for f in HOLISTIC_FILES)


def _live(conn: Any) -> dict[str, Any]:
    return service_of(conn).extras["live"]


def install(app: FastAPI, limits: LiveLimits | None = None) -> None:
    """Add ``/ws/live``, the page at ``/`` and its static files to ``app`` (after ``app.state.service`` is set).

    ``app.state.live_limits`` (a :class:`LiveLimits`) may be replaced later to change the limits.
    """
    service = app.state.service
    service.extras["live"] = {"metrics": LiveMetrics(service.metrics.registry), "open": 0}
    app.state.live_limits = limits or LiveLimits()
    app.include_router(router)


# --- the page -----------------------------------------------------------------------------
@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


def server_landmarks_available() -> bool:
    """Whether this server can landmark JPEG frames itself (MediaPipe installed)."""
    import importlib.util

    return importlib.util.find_spec("mediapipe") is not None


@router.get("/live/config")
async def live_config(request: Request) -> JSONResponse:
    """The page's modes: ``browser`` (landmarks in the page) and ``server`` (JPEG upload), which are
    available here, and ``mode``, the default (``browser`` when its assets are vendored)."""
    from signlang.landmarks.layout import skeleton_bones

    modes = {"browser": browser_landmarks_available(), "server": server_landmarks_available()}
    return JSONResponse({"mode": "browser" if modes["browser"] else "server", "modes": modes, "holistic_path": "/static/holistic/",
                         "bones": skeleton_bones(), "limits": asdict(request.app.state.live_limits)})


@router.get("/static/{name:path}", include_in_schema=False)
async def static(name: str) -> FileResponse:
    if name.startswith("holistic/"):
        base, rel = web_assets_dir(), name[len("holistic/"):]
    else:
        base, rel = STATIC_DIR, name
    path = (base / rel).resolve()
    if not path.is_relative_to(base.resolve()) or not path.is_file() or "vendor" in Path(rel).parts:
        return JSONResponse({"error": "not_found", "detail": f"no static file {name!r}"}, status_code=404)  # type: ignore[return-value]
    media = {".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css", ".html": "text/html"}.get(path.suffix)
    return FileResponse(path, media_type=media or "application/octet-stream")


# --- the socket ---------------------------------------------------------------------------
class _Refused(ValueError):
    """A message that is understood but carries a bad frame (the stream goes on)."""


def parse_message(msg: dict[str, Any]) -> tuple[str, float, Any] | None:
    """An ASGI WebSocket message -> ``(form, t, payload)``: form ``json`` | ``binary`` | ``jpeg`` | ``reset``.

    Raises :class:`_Refused` for a bad frame, ``TypeError`` for a message of no known form.
    """
    if msg.get("bytes") is not None:
        raw: bytes = msg["bytes"]
        if raw[:4] == JPEG_MAGIC and len(raw) > 12:
            (t,) = struct.unpack("<d", raw[4:12])
            return "jpeg", t, raw[12:]
        if len(raw) == BINARY_LANDMARKS_BYTES:
            (t,) = struct.unpack("<d", raw[:8])
            return "binary", t, np.frombuffer(raw, dtype="<f4", offset=8).reshape(75, 3)
        raise TypeError(f"binary message of {len(raw)} bytes: expected {BINARY_LANDMARKS_BYTES} (float64 t + 75x3 float32) or JPG0 + t + JPEG")
    try:
        doc = json.loads(msg.get("text") or "")
    except json.JSONDecodeError as exc:
        raise TypeError(f"text message is not JSON ({exc.msg})") from None
    if not isinstance(doc, dict):
        raise TypeError("a JSON message must be an object")
    if doc.get("type") == "reset":
        return "reset", 0.0, None
    if "landmarks" not in doc or "t" not in doc:
        raise _Refused("a frame needs 't' (seconds) and 'landmarks' (75 x 3)")
    try:
        points = doc["landmarks"]
        if isinstance(points, list) and points and all(p is None or isinstance(p, list) for p in points):
            points = [[math.nan] * 3 if p is None else [math.nan if v is None else v for v in p] for p in points]
        elif isinstance(points, list):
            points = [math.nan if v is None else v for v in points]  # flat 225 / 258 numbers
        arr = np.array(points, dtype=np.float32)
    except (TypeError, ValueError):
        raise _Refused("'landmarks' must be numbers (null = not detected)") from None
    return "json", doc["t"], arr


class _Bucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst, self.tokens, self.last = rate, float(burst), float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class _Extractor:
    """Server-side MediaPipe Holistic for one connection's JPEG frames."""

    def __init__(self, max_side: int) -> None:
        from signlang.landmarks.extract import new_holistic

        self.graph = new_holistic()
        self.max_side = max_side

    def __call__(self, jpeg: bytes) -> np.ndarray:
        import cv2

        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise _Refused("the JPEG frame cannot be decoded")
        h, w = img.shape[:2]
        if max(h, w) > self.max_side:
            s = self.max_side / max(h, w)
            img = cv2.resize(img, (max(2, int(w * s)), max(2, int(h * s))), interpolation=cv2.INTER_AREA)
        from signlang.landmarks.extract import results_to_frame

        return results_to_frame(self.graph.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)))

    def close(self) -> None:
        self.graph.close()


def _jsonable(lm: np.ndarray) -> list[Any]:
    return [None if np.isnan(p[0]) else [round(float(v), 5) for v in p] for p in lm]


@router.websocket("/ws/live")
async def ws_live(websocket: WebSocket) -> None:
    from signlang.inference.streaming import FrameError, StreamConfig, StreamingRecognizer

    live = _live(websocket)
    limits: LiveLimits = websocket.app.state.live_limits
    metrics: LiveMetrics = live["metrics"]
    service = service_of(websocket)
    keys = service.settings.api_keys()
    if keys:
        header = dict(websocket.headers).get("authorization", "")
        token = header.partition(" ")[2].strip() or websocket.query_params.get("token", "")
        if not any(hmac.compare_digest(token.encode(), k.encode()) for k in keys):  # constant time, as security.py
            await websocket.accept()  # accepted first so the client sees the close code and reason
            await websocket.close(code=CLOSE_POLICY, reason="this server needs an API key (Authorization: Bearer or ?token=)")
            metrics.closed.labels(str(CLOSE_POLICY)).inc()
            return
    if live["open"] >= limits.max_connections:
        await websocket.accept()
        await websocket.close(code=CLOSE_TRY_LATER, reason=f"too many live connections (limit {limits.max_connections})")
        metrics.closed.labels(str(CLOSE_TRY_LATER)).inc()
        return
    live["open"] += 1
    metrics.open.inc()
    metrics.connections.inc()
    await websocket.accept()
    predictor = service.predictor
    recognizer = StreamingRecognizer(predictor, StreamConfig(batch_size=8))
    queue: asyncio.Queue[tuple[str, float, Any]] = asyncio.Queue(maxsize=limits.max_queue)
    extractor: _Extractor | None = None
    state = {"next_topk": -math.inf, "dropped": 0, "bad": 0}

    async def send(doc: dict[str, Any]) -> None:
        await websocket.send_text(json.dumps(doc))

    async def work() -> None:
        nonlocal extractor
        while True:
            form, t, payload = await queue.get()
            if form == "reset":
                recognizer.reset()
                state["next_topk"] = -math.inf
                continue
            try:
                if form == "jpeg":
                    if extractor is None:
                        extractor = await to_thread.run_sync(_Extractor, limits.jpeg_max_side)
                    payload = await to_thread.run_sync(extractor, payload)
                    await send({"type": "landmarks", "t": t, "landmarks": _jsonable(payload)})
                events = await to_thread.run_sync(recognizer.push, payload, t)
                state["bad"] = 0
            except (FrameError, _Refused) as exc:
                metrics.refused.inc()
                state["bad"] += 1
                await send({"type": "error", "code": "bad_frame", "detail": str(exc)})
                continue
            for ev in events:
                metrics.events.inc()
                await send({"type": "event", **ev.to_dict()})
            latest = recognizer.latest
            if latest is not None and t >= state["next_topk"]:
                state["next_topk"] = t + limits.topk_every_s
                await send({"type": "topk", "t": t, **latest.to_dict(), "dropped": state["dropped"]})

    await send({"type": "hello", "classes": len(recognizer.classes), "config": recognizer.config.to_dict(),
                "idle_classes": [c for c in (recognizer.policy.no_sign,) if c is not None],
                "min_window_frames": recognizer.config.min_window_frames,
                "limits": asdict(limits), "binary_landmarks_bytes": BINARY_LANDMARKS_BYTES})
    worker = asyncio.create_task(work())
    bucket = _Bucket(limits.max_frames_per_s, limits.burst_frames)
    code, reason = 1000, ""
    try:
        while not worker.done():
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                break
            if state["bad"] >= limits.max_bad_frames:
                code, reason = CLOSE_BAD_DATA, f"{state['bad']} malformed frames in a row"
                break
            size = len(msg.get("bytes") or b"") + len((msg.get("text") or "").encode())
            if size > limits.max_message_bytes:
                code, reason = CLOSE_TOO_BIG, f"message of {size} bytes exceeds the limit of {limits.max_message_bytes}"
                break
            if not bucket.take():
                code, reason = CLOSE_POLICY, f"more than {limits.max_frames_per_s:g} frames/s (burst {limits.burst_frames})"
                break
            try:
                item = parse_message(msg)
            except TypeError as exc:
                code, reason = CLOSE_UNSUPPORTED, str(exc)[:120]
                break
            except _Refused as exc:
                metrics.refused.inc()
                state["bad"] += 1
                await send({"type": "error", "code": "bad_frame", "detail": str(exc)})
                continue
            metrics.frames.labels(item[0]).inc()
            if item[0] == "jpeg" and queue.qsize() >= 1 or queue.full():
                state["dropped"] += 1
                metrics.dropped.inc()
                continue
            queue.put_nowait(item)
    except WebSocketDisconnect:
        pass
    finally:
        worker.cancel()
        try:
            await worker
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the connection is over either way
            pass
        if code != 1000:
            metrics.closed.labels(str(code)).inc()
            try:
                await websocket.close(code=code, reason=reason)
            except (RuntimeError, WebSocketDisconnect):
                pass
        else:
            try:
                await websocket.close()
            except (RuntimeError, WebSocketDisconnect):  # the client has gone already
                pass
        if extractor is not None:
            extractor.close()
        live["open"] -= 1
        metrics.open.dec()

"""The live protocol of ``/ws/live`` (its routes and the page: :mod:`signlang.serve.routes.live`).

One :class:`~signlang.inference.streaming.StreamingRecognizer` per connection, on the model in the
app's slot: a reload reaches an open connection at its next frame (its recognizer restarts on the
new model, as after a reset, and the server sends a new ``hello`` with ``"reloaded": true``).
Client -> server messages:

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

Limits (:class:`~signlang.serve.settings.LiveLimits`, ``ServiceSettings.live``) close the socket
with a code and a reason: too many connections 1013, a message over ``max_message_bytes`` 1009, faster than ``max_frames_per_s`` (token bucket)
1008, a message that is neither JSON nor a known binary form 1003, ``max_bad_frames`` refused
frames in a row 1007. Frames are queued at most ``max_queue`` deep: past that they are dropped
(counted, the recognizer works from timestamps), never queued without bound.

API keys (when set): the socket needs one (``Authorization: Bearer`` or ``?token=``; else closed
with 1008; the same check as HTTP, :meth:`signlang.serve.security.ApiKeys.refusal`), so does
``/live/config``; the page and its static files stay open (:mod:`signlang.serve.security`) so that
the page can load and ask for a key (``static/live.js``).
"""

from __future__ import annotations

import json
import math
import os
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge

STATIC_DIR = Path(__file__).with_name("static")
ENV_WEB_ASSETS = "SIGNLANG_WEB_ASSETS"  # folder holding node_modules/@mediapipe/holistic (default: static/vendor)
HOLISTIC_FILES = ("holistic.js", "holistic_solution_packed_assets.data", "holistic_solution_simd_wasm_bin.wasm", "holistic.binarypb")
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
"""The files of ``onnxruntime-web`` (vendored beside MediaPipe) the page loads to run the model itself (``/static/ort/``)."""
BINARY_LANDMARKS_BYTES = 8 + 75 * 3 * 4
JPEG_MAGIC = b"JPG0"

CLOSE_UNSUPPORTED = 1003
CLOSE_BAD_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_LATER = 1013


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
        self.reloads = Counter("signlang_live_model_swaps_total", "Open connections moved to a reloaded model.", registry=registry)


def web_assets_dir() -> Path:
    """Where the vendored ``@mediapipe/holistic`` files are (they may be absent)."""
    root = Path(os.environ.get(ENV_WEB_ASSETS) or STATIC_DIR / "vendor")
    return root / "node_modules" / "@mediapipe" / "holistic"


def ort_assets_dir() -> Path:
    """Where the vendored ``onnxruntime-web`` files are (they may be absent)."""
    root = Path(os.environ.get(ENV_WEB_ASSETS) or STATIC_DIR / "vendor")
    return root / "node_modules" / "onnxruntime-web" / "dist"


def ort_available() -> bool:
    folder = ort_assets_dir()
    return all((folder / f).is_file() for f in ORT_FILES)


def live_stream_config() -> Any:
    """The :class:`~signlang.inference.streaming.StreamConfig` of every ``/ws/live`` connection, and of the page's
    own decoder (``static/stream.js``, sent by ``GET /web/config``)."""
    from signlang.inference.streaming import StreamConfig

    return StreamConfig(batch_size=8)


def browser_landmarks_available() -> bool:
    folder = web_assets_dir()
    return all((folder / f).is_file() for f in HOLISTIC_FILES)


def server_landmarks_available() -> bool:
    """Whether this server can landmark JPEG frames itself (MediaPipe installed)."""
    import importlib.util

    return importlib.util.find_spec("mediapipe") is not None


class FrameRefused(ValueError):
    """A message that is understood but carries a bad frame (the stream goes on)."""


def parse_message(msg: dict[str, Any]) -> tuple[str, float, Any] | None:
    """An ASGI WebSocket message -> ``(form, t, payload)``: form ``json`` | ``binary`` | ``jpeg`` | ``reset``.

    Raises :class:`FrameRefused` for a bad frame, ``TypeError`` for a message of no known form.
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
        raise FrameRefused("a frame needs 't' (seconds) and 'landmarks' (75 x 3)")
    try:
        points = doc["landmarks"]
        if isinstance(points, list) and points and all(p is None or isinstance(p, list) for p in points):
            points = [[math.nan] * 3 if p is None else [math.nan if v is None else v for v in p] for p in points]
        elif isinstance(points, list):
            points = [math.nan if v is None else v for v in points]  # flat 225 / 258 numbers
        arr = np.array(points, dtype=np.float32)
    except (TypeError, ValueError):
        raise FrameRefused("'landmarks' must be numbers (null = not detected)") from None
    return "json", doc["t"], arr


class TokenBucket:
    """``rate`` frames/s on average, bursts up to ``burst``: :meth:`take` is False past it."""

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


class JpegLandmarks:
    """Server-side MediaPipe Holistic for one connection's JPEG frames: ``bytes -> (75, 3)`` float32."""

    def __init__(self, max_side: int) -> None:
        from signlang.landmarks.extract import new_holistic

        self.graph = new_holistic()
        self.max_side = max_side

    def __call__(self, jpeg: bytes) -> np.ndarray:
        import cv2

        from signlang.landmarks.extract import frame_landmarks

        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise FrameRefused("the JPEG frame cannot be decoded")
        return frame_landmarks(self.graph, img, bgr=True, max_side=self.max_side)

    def close(self) -> None:
        self.graph.close()


def jsonable(lm: np.ndarray) -> list[Any]:
    """Landmarks ``(75, 3)`` as JSON: a point per row, ``null`` when not detected."""
    return [None if np.isnan(p[0]) else [round(float(v), 5) for v in p] for p in lm]

"""The live page (``GET /``, ``/static/...``, ``GET /live/config``) and the WebSocket ``/ws/live``.

The protocol (messages, close codes, metrics) is :mod:`signlang.serve.live`; the limits are the
``live`` part of the app's settings; the model is the one in the app's slot at each frame, so
``/admin/reload`` reaches open connections too (their recognizer restarts on the new model).
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse

from signlang.serve.deps import Service, Settings
from signlang.serve.live import (
    BINARY_LANDMARKS_BYTES,
    CLOSE_BAD_DATA,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_LATER,
    CLOSE_UNSUPPORTED,
    STATIC_DIR,
    FrameRefused,
    JpegLandmarks,
    TokenBucket,
    browser_landmarks_available,
    jsonable,
    parse_message,
    server_landmarks_available,
    live_stream_config,
    ort_assets_dir,
    web_assets_dir,
)
from signlang.serve.security import socket_token

router = APIRouter()


# --- the page -----------------------------------------------------------------------------
@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/live/config")
async def live_config(settings: Settings) -> JSONResponse:
    """The page's modes: ``browser`` (landmarks in the page) and ``server`` (JPEG upload), which are
    available here, and ``mode``, the default (``browser`` when its assets are vendored)."""
    from signlang.landmarks.layout import skeleton_bones

    modes = {"browser": browser_landmarks_available(), "server": server_landmarks_available()}
    return JSONResponse({"mode": "browser" if modes["browser"] else "server", "modes": modes, "holistic_path": "/static/holistic/",
                         "bones": skeleton_bones(), "limits": asdict(settings.live)})


@router.get("/static/{name:path}", include_in_schema=False)
async def static(name: str) -> FileResponse:
    if name.startswith("holistic/"):
        base, rel = web_assets_dir(), name[len("holistic/"):]
    elif name.startswith("ort/"):  # onnxruntime-web, for recognition in the page
        base, rel = ort_assets_dir(), name[len("ort/"):]
    else:
        base, rel = STATIC_DIR, name
    path = (base / rel).resolve()
    if not path.is_relative_to(base.resolve()) or not path.is_file() or "vendor" in Path(rel).parts:
        return JSONResponse({"error": "not_found", "detail": f"no static file {name!r}"}, status_code=404)  # type: ignore[return-value]
    media = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".css": "text/css", ".html": "text/html"}.get(path.suffix)
    return FileResponse(path, media_type=media or "application/octet-stream")


# --- the socket ---------------------------------------------------------------------------
async def _refuse(websocket: WebSocket, metrics: Any, code: int, reason: str) -> None:
    """Accept, then close with ``code``: so the client sees the code and the reason."""
    await websocket.accept()
    await websocket.close(code=code, reason=reason)
    metrics.closed.labels(str(code)).inc()


@router.websocket("/ws/live")
async def ws_live(websocket: WebSocket, service: Service) -> None:
    from signlang.inference.streaming import FrameError, StreamingRecognizer

    limits = service.settings.live
    metrics = service.live_metrics
    refusal = service.keys.refusal(socket_token(websocket.scope))  # the one key check, as HTTP's
    if refusal is not None:
        await _refuse(websocket, metrics, CLOSE_POLICY, "this server needs an API key (Authorization: Bearer or ?token=)")
        return
    if service.live_open >= limits.max_connections:
        await _refuse(websocket, metrics, CLOSE_TRY_LATER, f"too many live connections (limit {limits.max_connections})")
        return
    service.live_open += 1
    metrics.open.inc()
    metrics.connections.inc()
    await websocket.accept()
    config = live_stream_config()
    with service.slot.use() as predictor:
        recognizer = StreamingRecognizer(predictor, config)
    queue: asyncio.Queue[tuple[str, float, Any]] = asyncio.Queue(maxsize=limits.max_queue)
    extractor: JpegLandmarks | None = None
    state = {"next_topk": -math.inf, "dropped": 0, "bad": 0}

    async def send(doc: dict[str, Any]) -> None:
        await websocket.send_text(json.dumps(doc))

    async def hello(reloaded: bool = False) -> None:
        await send({"type": "hello", "classes": len(recognizer.classes), "config": recognizer.config.to_dict(),
                    "idle_classes": [c for c in (recognizer.policy.no_sign,) if c is not None],
                    "min_window_frames": recognizer.config.min_window_frames, "limits": asdict(limits),
                    "binary_landmarks_bytes": BINARY_LANDMARKS_BYTES, "reloaded": reloaded})

    async def work() -> None:
        nonlocal extractor, recognizer
        while True:
            form, t, payload = await queue.get()
            if form == "reset":
                recognizer.reset()
                state["next_topk"] = -math.inf
                continue
            try:
                if form == "jpeg":
                    if extractor is None:
                        extractor = await to_thread.run_sync(JpegLandmarks, limits.jpeg_max_side)
                    payload = await to_thread.run_sync(extractor, payload)
                    await send({"type": "landmarks", "t": t, "landmarks": jsonable(payload)})
                with service.slot.use() as predictor:  # held while it classifies: a reload closes it after
                    if predictor is not recognizer.model:  # reloaded: the stream restarts on the new model
                        recognizer = StreamingRecognizer(predictor, config)
                        state["next_topk"] = -math.inf
                        metrics.reloads.inc()
                        await hello(reloaded=True)
                    events = await to_thread.run_sync(recognizer.push, payload, t)
                state["bad"] = 0
            except (FrameError, FrameRefused) as exc:
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

    await hello()
    worker = asyncio.create_task(work())
    bucket = TokenBucket(limits.max_frames_per_s, limits.burst_frames)
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
            except FrameRefused as exc:
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
        service.live_open -= 1
        metrics.open.dec()

"""``POST /predict/landmarks`` (a landmark clip as JSON, ``.npy`` or raw float32, or a batch of clips in the
binary forms), ``POST /predict``
(a video upload) and ``GET /signs`` (the vocabulary).

Landmark clips go through the app's :class:`~signlang.serve.batching.Batcher` (dynamic batching,
503 + ``Retry-After`` when full); videos through the smaller ``heavy`` gate. Which clip is no sign
(nobody, no hands, the no-sign class), unsure or unknown is the served Predictor's policy.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from signlang.inference.policy import DetectionError, error_code
from signlang.landmarks.video import VideoReadError
from signlang.serve.deps import Service, Slot, TopK, read_body
from signlang.serve.schemas import (
    LANDMARK_SCHEMA,
    NPY_MEDIA_TYPE,
    RAW_MEDIA_TYPE,
    RAW_SHAPE_HELP,
    BatchResponse,
    PredictionResponse,
    ServiceError,
    error_responses,
    parse_landmark_json,
    parse_npy,
    parse_raw,
    validation_message,
)
from signlang.serve.upload import UploadError, UploadTooLarge, VideoRefused, check_video_limits, receive_upload

router = APIRouter()


def _code(exc: BaseException | None) -> str:
    """The JSON error code of a clip the predictor refused: its policy's (``nothing_detected``) or ``invalid_request``."""
    return error_code(exc) if isinstance(exc, DetectionError) else "invalid_request"


def _hide(message: str, path: str | None) -> str:
    return message.replace(path, "uploaded file") if path else message


def _k(slot: Any, k: int) -> int:
    return min(k, len(slot.predictor.classes))


@router.post(
    "/predict/landmarks",
    response_model=PredictionResponse | BatchResponse,
    responses=error_responses(413, 415, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": LANDMARK_SCHEMA},
        NPY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary",
                                    "description": "A .npy of one clip (T, 75, 3) | (T, 225) | (T, 258) | (T, 1662), "
                                                   "or a batch (N, T, ...) answered as {results: [...]} in order."}},
        RAW_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary",
                                    "description": "Raw little-endian float32 values in C order (no header), the shape in "
                                                   "the query: ?shape=T,75,3 (one clip) or ?shape=N,T,258 (a batch); the "
                                                   "fastest form. Same layouts and answers as the .npy body."}},
    }}},
)
async def predict_landmarks(request: Request, service: Service, k: TopK = 5,
                            shape: str | None = Query(None, description=f"Only with {RAW_MEDIA_TYPE}: {RAW_SHAPE_HELP}.",
                                                      pattern=r"^\s*\d+(\s*,\s*\d+){1,4}\s*$")) -> Any:
    """Classify a landmark clip (JSON, ``.npy`` or raw float32) or a batch of clips (``.npy`` or raw ``(N, T, ...)``)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await read_body(request, service.settings.max_upload_bytes)
    if ctype in (NPY_MEDIA_TYPE, RAW_MEDIA_TYPE):
        try:
            clips, batch = parse_npy(raw) if ctype == NPY_MEDIA_TYPE else parse_raw(raw, shape)
        except ValueError as exc:
            raise ServiceError(422, "invalid_request", str(exc)) from None
    elif ctype in ("application/json", ""):
        # orjson + one np.array call (pydantic-core's one-pass parse when orjson is missing or the body is bad:
        # its error names the field)
        try:
            clips, batch = [parse_landmark_json(raw)], False
        except ValidationError as exc:
            raise ServiceError(422, "invalid_request", validation_message(exc.errors())) from None
    else:
        raise ServiceError(415, "unsupported_media_type",
                           f"Content-Type {ctype!r}: send application/json, {NPY_MEDIA_TYPE} or {RAW_MEDIA_TYPE} (with ?shape=)")
    preds, errors = await service.batcher.submit(clips, _k(service.slot, k))  # the predictor's policy decides
    if not batch:
        if errors or preds[0] is None:
            exc = errors.get(0)
            raise ServiceError(422, _code(exc), str(exc) if exc is not None else "the clip could not be classified")
        return JSONResponse(preds[0].to_dict())
    results: list[dict[str, Any]] = []
    for i, p in enumerate(preds):
        if p is None:
            exc = errors.get(i)
            results.append({"index": i, "prediction": None, "error": {"error": _code(exc), "detail": str(exc) if exc else "failed"}})
        else:
            results.append({"index": i, "prediction": p.to_dict(), "error": None})
    return JSONResponse({"results": results})


@router.post(
    "/predict",
    response_model=PredictionResponse,
    responses=error_responses(413, 415, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["video"],
        "properties": {"video": {"type": "string", "format": "binary", "description": "The video file."}},
    }}}}},
)
async def predict_video(request: Request, service: Service, k: TopK = 5) -> Any:
    """Classify an uploaded video (multipart form field ``video``)."""
    settings, metrics = service.settings, service.metrics
    folder = Path(tempfile.mkdtemp(prefix="signlang-upload-", dir=settings.upload_root))  # mode 0700
    try:
        try:
            upload = await receive_upload(request, field="video", folder=folder, max_bytes=settings.max_upload_bytes)
            await to_thread.run_sync(lambda: check_video_limits(
                upload.path, max_side=settings.max_video_side, max_frames=settings.max_video_frames,
                max_seconds=settings.max_video_seconds))
        except UploadTooLarge as exc:
            raise ServiceError(413, "too_large", str(exc)) from None
        except VideoRefused as exc:
            raise ServiceError(exc.status, "video_refused", _hide(str(exc), str(upload.path))) from None
        except UploadError as exc:
            raise ServiceError(422, "bad_upload", str(exc)) from None
        hide = str(upload.path)
        async with service.heavy:
            metrics.in_flight.inc()
            try:
                got = await to_thread.run_sync(service.landmarker, upload.path)  # video -> landmarks, then the Predictor
                with service.slot.use() as p:
                    result = await to_thread.run_sync(lambda: p.predict_landmarks(got.landmarks, _k(service.slot, k), name=hide,
                                                                                  timings_ms=got.timings_ms))
            except DetectionError as exc:
                raise ServiceError(422, "nothing_detected", _hide(str(exc), hide)) from None
            except VideoReadError as exc:
                raise ServiceError(415, "unreadable_video", _hide(str(exc), hide)) from None
            finally:
                metrics.in_flight.dec()
        metrics.observe_timings(result.timings_ms)
        return JSONResponse(result.to_dict())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@router.get("/signs")
async def signs(slot: Slot) -> dict[str, Any]:
    """The vocabulary, in the model's class order."""
    classes = list(slot.predictor.classes)
    return {"signs": classes, "count": len(classes)}

"""Request/response schemas and errors of the HTTP service, in one place for every route.

Every error is answered as JSON ``{"error": code, "detail": message}`` (:class:`ErrorResponse`)
with the status of the :class:`ServiceError` raised. Landmark clips arrive as JSON
(:class:`LandmarkRequest`, parsed by :func:`parse_landmark_rows`) or as a binary ``.npy``
(:func:`parse_npy`: one clip ``(T, ...)`` or a batch ``(N, T, ...)``; pickles are refused).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, Field, field_validator

from signlang.landmarks.layout import FLAT_DIM, N_COORDS, N_POINTS, as_landmarks, from_258, to_258

MAX_LANDMARK_FRAMES = 10_000  # a clip longer than this is refused (about 5 minutes at 30 fps)
MAX_BATCH_CLIPS = 256  # clips in one batch request
NPY_MEDIA_TYPE = "application/x-npy"
LANDMARK_SHAPES = "(T, 75, 3), (T, 225), (T, 258) or (T, 1662)"


class ServiceError(Exception):
    """An error answered as JSON ``{"error": code, "detail": message}`` with ``status``."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


class ErrorResponse(BaseModel):
    error: str
    detail: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entry documenting the JSON error body for ``statuses``."""
    return {s: {"model": ErrorResponse} for s in statuses}


def _landmarks_field() -> Any:
    return Field(
        description="T x 75 x 3 numbers (pose 33, left hand 21, right hand 21) or T x 258 "
        "(pose 33x4 with visibility, hands 2x21x3); null or 0 for undetected points.",
        min_length=1,
        max_length=MAX_LANDMARK_FRAMES,
    )


class LandmarkRequest(BaseModel):
    """A landmark clip: ``T`` frames of 75 points x (x, y, z), or ``T`` flat 258-value rows.

    ``null`` (or a part that is all zeros, as in the 258 layout) means "not detected".
    """

    landmarks: Annotated[list[list[Any]], _landmarks_field()]

    @field_validator("landmarks", mode="after")
    @classmethod
    def _to_array(cls, value: list[list[Any]]) -> Any:
        return parse_landmark_rows(value)


class ExplainRequest(LandmarkRequest):
    """A landmark clip to explain and, optionally, the sign to explain (default: the predicted one)."""

    target: str | None = Field(None, description="Explain this sign instead of the predicted one.")


class ReloadRequest(BaseModel):
    """Which model to load: a bundle or ONNX export folder on the server (default: the one served)."""

    model: str | None = Field(None, description="Folder on the server; default: reload the path being served.")


class SignProb(BaseModel):
    sign: str
    prob: float


class PredictionResponse(BaseModel):
    top_k: list[SignProb]
    hands_detected: float = Field(description="Fraction of frames with at least one hand.")
    frames: int
    timings_ms: dict[str, float] = Field(description="decode, landmarks, features, model, total (ms).")


class BatchItem(BaseModel):
    """One clip of a batch: its prediction, or the error that clip alone got."""

    index: int
    prediction: PredictionResponse | None = None
    error: ErrorResponse | None = None


class BatchResponse(BaseModel):
    results: list[BatchItem] = Field(description="One entry per clip, in the order sent.")


class HealthResponse(BaseModel):
    status: str
    version: str = Field(description="The signlang package version.")
    model_id: str = Field(description="sha256 of the served model's manifest (first 16 hex digits).")
    model_version: str = Field(description="When the served model was created, per its manifest.")
    backend: str
    n_signs: int
    reloads: int


class ReadyResponse(BaseModel):
    ready: bool
    reason: str


LANDMARK_SCHEMA = LandmarkRequest.model_json_schema()


def parse_landmark_rows(rows: list[list[Any]]) -> np.ndarray:
    """JSON rows -> float32 ``(T, 75, 3)`` with NaN for undetected parts.

    Accepts ``T x 75 x 3`` or ``T x 258``; ``null`` becomes NaN and a part that is all zeros or
    all null counts as not detected. Raises ``ValueError`` naming the offending element.
    """
    try:
        arr = np.array(rows, dtype=np.float32)
    except (ValueError, TypeError):
        raise ValueError(_locate_bad_element(rows)) from None
    if arr.ndim == 3 and arr.shape[1:] == (N_POINTS, N_COORDS):
        arr = from_258(to_258(arr))[0]  # all-zero parts -> NaN, as in the 258 layout
    elif arr.ndim == 2 and arr.shape[1] == FLAT_DIM:
        arr = from_258(np.nan_to_num(arr, nan=0.0))[0]
    elif arr.ndim == 3 and arr.shape[1] == N_POINTS:
        raise ValueError(f"[0][0]: a point must have {N_COORDS} coordinates, got {arr.shape[2]} values")
    elif arr.ndim in (2, 3):
        raise ValueError(f"[0]: a frame must have {N_POINTS} points of {N_COORDS} coordinates or {FLAT_DIM} numbers, got {arr.shape[1]} values")
    else:
        raise ValueError(f"expected T x {N_POINTS} x {N_COORDS} or T x {FLAT_DIM} numbers, got shape {list(arr.shape)}")
    _check_finite(arr, "")
    return arr


def _check_finite(arr: np.ndarray, name: str) -> None:
    if np.isinf(arr).any():
        t = int(np.argwhere(np.isinf(arr))[0][0])
        raise ValueError(f"{name}[{t}]: infinite values are not allowed (use NaN for points that were not detected)")


def _frame_ndim(shape: tuple[int, ...]) -> int:
    """How many trailing axes make one frame: 2 for (75, 3), 1 for a flat row."""
    return 2 if len(shape) >= 3 and shape[-2:] == (N_POINTS, N_COORDS) else 1


def parse_npy(body: bytes, *, max_frames: int = MAX_LANDMARK_FRAMES, max_clips: int = MAX_BATCH_CLIPS) -> tuple[list[np.ndarray], bool]:
    """A ``.npy`` body -> (clips ``[(T, 75, 3)]``, whether it was the batch form ``(N, T, ...)``).

    One clip is ``(T, 75, 3)``, ``(T, 225)``, ``(T, 258)`` or ``(T, 1662)``; a batch adds a
    leading ``N``. The header is read with ``allow_pickle=False``: an object array (a pickle) is
    refused without unpickling anything. Raises ``ValueError`` with a reason.
    """
    try:
        arr = np.load(io.BytesIO(body), allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError("body: the .npy holds Python objects (a pickle); only numeric arrays are accepted") from None
        raise ValueError(f"body: not a readable .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"body: not a readable .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise ValueError("body: expected one .npy array, got an .npz archive")
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"body: expected a float or integer array, got dtype {arr.dtype}")
    batch = arr.ndim == 1 + _frame_ndim(arr.shape) + 1
    if arr.ndim not in (2, 3, 4) or (arr.ndim == 3 and not batch and arr.shape[1:] != (N_POINTS, N_COORDS)):
        raise ValueError(f"body: expected one clip {LANDMARK_SHAPES} or a batch (N, T, ...) of them, got shape {arr.shape}")
    clips_in = list(arr) if batch else [arr]
    if batch and not 1 <= len(clips_in) <= max_clips:
        raise ValueError(f"body: a batch must hold 1 to {max_clips} clips, got {len(clips_in)}")
    clips = []
    for i, clip in enumerate(clips_in):
        name = f"clip {i}" if batch else "body"
        if not 1 <= clip.shape[0] <= max_frames:
            raise ValueError(f"{name}: a clip must have 1 to {max_frames} frames, got {clip.shape[0]}")
        _check_finite(clip, name)
        try:
            lm = as_landmarks(clip.astype(np.float32, copy=False), name=name)
        except ValueError as exc:
            raise ValueError(f"{exc}; accepted: {LANDMARK_SHAPES}") from None
        lm = from_258(to_258(lm))[0]  # all-zero parts -> NaN, exactly as the JSON form
        clips.append(lm)
    return clips, batch


def _locate_bad_element(rows: list[list[Any]]) -> str:
    """Find the first row/element that makes the clip ragged or non-numeric (error path only)."""
    first = rows[0]
    for t, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(first):
            return f"[{t}]: every frame must have the same length as frame 0 ({len(first)} values), got {_describe(row)}"
        for j, item in enumerate(row):
            if isinstance(item, list):
                if len(item) != N_COORDS:
                    return f"[{t}][{j}]: a point must have {N_COORDS} coordinates, got {_describe(item)}"
                for c, v in enumerate(item):
                    if not _is_number(v):
                        return f"[{t}][{j}][{c}]: expected a number or null, got {v!r}"
            elif not _is_number(item):
                return f"[{t}][{j}]: expected a number, null or a list of {N_COORDS} numbers, got {item!r}"
    return "the values do not form a T x 75 x 3 or T x 258 array of numbers"


def _is_number(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _describe(v: Any) -> str:
    return f"{len(v)} values" if isinstance(v, list) else repr(v)


def validation_message(errors: Sequence[Any]) -> str:
    """One line naming the field of each pydantic error (``landmarks[3][12]: ...``)."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        field = loc[0] if loc else "body"
        field += "".join(f"[{p}]" for p in loc[1:])
        msg = str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{field}{'' if msg.startswith('[') else ': '}{msg}")
    return "; ".join(parts) or "invalid request"

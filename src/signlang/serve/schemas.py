"""Request/response schemas and errors of the HTTP service, in one place for every route.

Every error is answered as JSON ``{"error": code, "detail": message}`` (:class:`ErrorResponse`)
with the status of the :class:`ServiceError` raised. Landmark clips arrive as JSON
(:class:`LandmarkRequest`, parsed by :func:`parse_landmark_rows`; :func:`parse_landmark_json` is the
fast path), as a binary ``.npy`` (:func:`parse_npy`: one clip ``(T, ...)`` or a batch ``(N, T, ...)``;
pickles are refused) or as raw little-endian float32 (:func:`parse_raw`, the shape given apart). This
module parses the wire formats and locates what is malformed in them; the clip itself is validated
by :func:`signlang.landmarks.layout.check_clips`, the Predictor's own check.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator

from signlang.explain.explainer import FRAME_METHODS, LANDMARK_METHODS
from signlang.landmarks.layout import FLAT_DIM, N_COORDS, N_POINTS, check_clips, find_layout, layouts_help

MAX_LANDMARK_FRAMES = 10_000  # a clip longer than this is refused (about 5 minutes at 30 fps)
MAX_BATCH_CLIPS = 256  # clips in one batch request
NPY_MEDIA_TYPE = "application/x-npy"
RAW_MEDIA_TYPE = "application/octet-stream"  # raw little-endian float32, C order; the shape in ?shape=
RAW_SHAPE_HELP = ("the shape of a raw float32 body, comma separated: one clip T,75,3 | T,225 | T,258 | T,1662 "
                  "(or another layout), or a batch N,T,...")


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
    frame_method: Literal[FRAME_METHODS] = Field(  # type: ignore[valid-type]
        "occlusion", description="How the frame map is made: occlusion (any backend) or a gradient method "
        "(Grad-CAM / integrated gradients: torch backend only, 501 on ONNX).")
    landmark_method: Literal[LANDMARK_METHODS] = Field(  # type: ignore[valid-type]
        "occlusion", description="How the landmark map is made: occlusion (any backend) or 'ig' (integrated "
        "gradients: torch backend only, 501 on ONNX).")


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
    low_confidence: bool = Field(False, description="True when the top sign's probability is below the model's "
                                                    "min_confidence (default 0.5): the model is unsure.")
    unknown: bool = Field(False, description="True when the model's open-set rule says the sign is not one it knows "
                                             "(always false for a model without a rule).")
    rule: str | None = Field(None, description="Set when a rule, not the model, answered: no_person (nobody in any "
                                               "frame) or no_hands (no hand in any frame); the no-sign class answered.")


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
    worker_pid: int = Field(description="The worker process that answered (several with --workers N).")


class ReadyResponse(BaseModel):
    ready: bool
    reason: str


LANDMARK_SCHEMA = LandmarkRequest.model_json_schema()


def parse_landmark_rows(rows: list[list[Any]]) -> np.ndarray:
    """JSON rows -> float32 ``(T, 75, 3)`` with NaN for undetected parts.

    Accepts ``T x 75 x 3``, ``T x 258`` or any other layout of
    :data:`signlang.landmarks.layout.LAYOUTS` (``T x 1662``, ``T x 543 x 3``); ``null`` becomes NaN
    and a part that is all zeros or all null counts as not detected. Raises ``ValueError`` naming
    the offending element.
    """
    try:
        arr = np.array(rows, dtype=np.float32)
    except (ValueError, TypeError):
        raise ValueError(_locate_bad_element(rows)) from None
    if find_layout(arr.shape) is not None:
        return check_clips(arr, name="", zeros_missing=True)  # "[t]: ...", after the field name pydantic puts in front
    if arr.ndim == 3 and arr.shape[1] == N_POINTS:
        raise ValueError(f"[0][0]: a point must have {N_COORDS} coordinates, got {arr.shape[2]} values")
    if arr.ndim in (2, 3):
        raise ValueError(f"[0]: a frame must have {N_POINTS} points of {N_COORDS} coordinates or {FLAT_DIM} numbers, "
                         f"got {arr.shape[1]} values; {layouts_help()}")
    raise ValueError(f"expected T x {N_POINTS} x {N_COORDS} or T x {FLAT_DIM} numbers, got shape {list(arr.shape)}")


def parse_landmark_json(raw: bytes) -> np.ndarray:
    """A JSON body ``{"landmarks": rows, ...}`` -> float32 ``(T, 75, 3)``, as :class:`LandmarkRequest` reads it.

    The fast path parses with orjson (when installed) and converts the rows in one ``np.array``
    call; any body it does not take as is (not an object, rows not a list of lists, too many
    frames, malformed JSON, a bad value) goes through pydantic, whose error names the field.
    Raises ``pydantic.ValidationError``.
    """
    try:
        import orjson
    except ImportError:  # (the pydantic path alone: about 1.6x slower on a 64-frame clip)
        orjson = None
    if orjson is not None:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        rows = doc.get("landmarks") if isinstance(doc, dict) else None
        if isinstance(rows, list) and 1 <= len(rows) <= MAX_LANDMARK_FRAMES and all(type(r) is list for r in rows):
            try:
                return parse_landmark_rows(rows)
            except ValueError:
                pass  # pydantic says it again, with the field in front
    return LandmarkRequest.model_validate_json(raw).landmarks


def parse_raw(body: bytes, shape: str | None, *, max_frames: int = MAX_LANDMARK_FRAMES,
              max_clips: int = MAX_BATCH_CLIPS) -> tuple[list[np.ndarray], bool]:
    """A raw little-endian float32 body (C order) of ``shape`` (``"T,75,3"``, ``"N,T,258"``...) -> as :func:`parse_npy`.

    No header to parse and no copy before validation: the cheapest way in. Raises ``ValueError``
    naming ``shape`` or ``body`` with the reason.
    """
    if not shape:
        raise ValueError(f"shape: a raw float32 body ({RAW_MEDIA_TYPE}) needs ?shape=, {RAW_SHAPE_HELP}")
    try:
        dims = tuple(int(d) for d in shape.replace(" ", "").split(","))
    except ValueError:
        raise ValueError(f"shape: expected comma-separated integers, got {shape!r}; {RAW_SHAPE_HELP}") from None
    if not dims or any(d < 0 for d in dims):
        raise ValueError(f"shape: expected positive sizes, got {shape!r}")
    n = int(np.prod(dims, dtype=np.int64))
    if len(body) != 4 * n:
        raise ValueError(f"body: {len(body)} bytes do not hold float32 values of shape {list(dims)} "
                         f"({4 * n} bytes expected)")
    return _clips_of(np.frombuffer(body, dtype="<f4").reshape(dims), max_frames=max_frames, max_clips=max_clips)


def parse_npy(body: bytes, *, max_frames: int = MAX_LANDMARK_FRAMES, max_clips: int = MAX_BATCH_CLIPS) -> tuple[list[np.ndarray], bool]:
    """A ``.npy`` body -> (clips ``[(T, 75, 3)]``, whether it was the batch form ``(N, T, ...)``).

    One clip is ``(T, 75, 3)``, ``(T, 225)``, ``(T, 258)``, ``(T, 1662)`` or another layout of
    :data:`signlang.landmarks.layout.LAYOUTS`; a batch adds a leading ``N``. The array is read with
    ``allow_pickle=False``: an object array (a pickle) is refused without unpickling anything.
    Raises ``ValueError`` with a reason.
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
    return _clips_of(arr, max_frames=max_frames, max_clips=max_clips)


def _clips_of(arr: np.ndarray, *, max_frames: int, max_clips: int) -> tuple[list[np.ndarray], bool]:
    """One clip ``(T, ...)`` or a batch ``(N, T, ...)`` of a binary body -> (clips ``[(T, 75, 3)]``, batch?)."""
    batch = find_layout(arr.shape, 1) is None and find_layout(arr.shape, 2) is not None
    if not batch and find_layout(arr.shape, 1) is None:
        raise ValueError(f"body: expected one clip (T, ...) or a batch (N, T, ...), got shape {arr.shape}; {layouts_help()}")
    if batch and not 1 <= arr.shape[0] <= max_clips:
        raise ValueError(f"body: a batch must hold 1 to {max_clips} clips, got {arr.shape[0]}")
    frames = arr.shape[1] if batch else arr.shape[0]
    if not 1 <= frames <= max_frames:
        raise ValueError(f"body: a clip must have 1 to {max_frames} frames, got {frames}")
    lm = check_clips(arr, name="body", lead=2 if batch else 1, zeros_missing=True)
    return (list(lm) if batch else [lm]), batch


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

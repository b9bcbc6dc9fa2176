"""The 75-point landmark layout: the single source of truth for every stage.

A frame is 75 points x (x, y, z) float32, in this order:

* ``[0:33]``  MediaPipe Pose (33 points, BlazePose topology)
* ``[33:54]`` the signer's **left** hand (21 points, MediaPipe Hands topology)
* ``[54:75]`` the signer's **right** hand

"Left" and "right" are always the *signer's own* sides (MediaPipe Holistic's convention), never
the side of the image they appear on. A part that was not detected is NaN in all three
coordinates. Coordinates are MediaPipe's normalised image coordinates (x, y in about [0, 1],
z relative depth) until :mod:`signlang.features.normalize` moves them into a body frame.

Other layouts the field uses are accepted wherever a clip is (:data:`LAYOUTS`,
:func:`to_landmarks`), the face dropped:

* ``(T, 258)``: the community's flat layout (Kaggle ISLR without the face, ``../shared/data``),
  ``pose 33 x (x, y, z, visibility) | left hand 21 x 3 | right hand 21 x 3`` with zeros meaning
  "not detected"; :func:`from_258` and :func:`to_258` convert.
* ``(T, 1662)``: MediaPipe Holistic with the face as the "action detection" tutorials save it,
  ``pose 33 x 4 | face 468 x 3 | left hand 21 x 3 | right hand 21 x 3``, zeros = not detected;
  :func:`from_1662` / :func:`to_1662`.
* ``(T, 543, 3)`` (or flat ``(T, 1629)``): Kaggle's Isolated Sign Language Recognition points,
  ``face 468 | left hand 21 | pose 33 | right hand 21``, NaN = not detected;
  :func:`from_543` / :func:`to_543`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

N_POSE: Final = 33
N_HAND: Final = 21
N_POINTS: Final = N_POSE + 2 * N_HAND  # 75
N_COORDS: Final = 3
FLAT_DIM: Final = N_POSE * 4 + 2 * N_HAND * 3  # 258
N_FACE: Final = 468
HOLISTIC_FLAT_DIM: Final = N_POSE * 4 + N_FACE * 3 + 2 * N_HAND * 3  # 1662
N_KAGGLE_POINTS: Final = N_FACE + 2 * N_HAND + N_POSE  # 543

POSE: Final = slice(0, N_POSE)
LEFT_HAND: Final = slice(N_POSE, N_POSE + N_HAND)
RIGHT_HAND: Final = slice(N_POSE + N_HAND, N_POINTS)
HANDS: Final = (LEFT_HAND, RIGHT_HAND)

PART_NAMES: Final = ("pose", "left_hand", "right_hand")
PART_SLICES: Final = {"pose": POSE, "left_hand": LEFT_HAND, "right_hand": RIGHT_HAND}

# --- pose indices (MediaPipe Pose / BlazePose), signer's own sides ---------------------------
POSE_NAMES: Final = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)
NOSE: Final = 0
LEFT_EYE: Final = 2
RIGHT_EYE: Final = 5
MOUTH_LEFT: Final = 9
MOUTH_RIGHT: Final = 10
LEFT_SHOULDER: Final = 11
RIGHT_SHOULDER: Final = 12
LEFT_ELBOW: Final = 13
RIGHT_ELBOW: Final = 14
LEFT_WRIST_POSE: Final = 15
RIGHT_WRIST_POSE: Final = 16
LEFT_HIP: Final = 23
RIGHT_HIP: Final = 24

# --- hand indices (MediaPipe Hands), relative to the start of a hand block ----------------
HAND_NAMES: Final = (
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_mcp", "index_pip",
    "index_dip", "index_tip", "middle_mcp", "middle_pip", "middle_dip", "middle_tip", "ring_mcp",
    "ring_pip", "ring_dip", "ring_tip", "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
WRIST: Final = 0
THUMB_TIP: Final = 4
INDEX_MCP: Final = 5
INDEX_TIP: Final = 8
MIDDLE_MCP: Final = 9
MIDDLE_TIP: Final = 12
RING_MCP: Final = 13
RING_TIP: Final = 16
PINKY_MCP: Final = 17
PINKY_TIP: Final = 20
FINGERTIPS: Final = (THUMB_TIP, INDEX_TIP, MIDDLE_TIP, RING_TIP, PINKY_TIP)

# Absolute (0..74) indices of the hands' key points.
LEFT_WRIST: Final = LEFT_HAND.start + WRIST
RIGHT_WRIST: Final = RIGHT_HAND.start + WRIST

# Bones of one hand (parent, child), relative to the hand block: MediaPipe's HAND_CONNECTIONS.
HAND_BONES: Final = (
    (0, 1), (1, 2), (2, 3), (3, 4),
    (0, 5), (5, 6), (6, 7), (7, 8),
    (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16),
    (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)
# Upper-body bones of the pose used for drawing (absolute indices).
POSE_BONES: Final = (
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
    (0, 2), (0, 5), (2, 7), (5, 8), (9, 10),
)


def skeleton_bones() -> tuple[tuple[int, int], ...]:
    """All bones of the 75-point skeleton as absolute index pairs (for drawing)."""
    left = tuple((LEFT_HAND.start + a, LEFT_HAND.start + b) for a, b in HAND_BONES)
    right = tuple((RIGHT_HAND.start + a, RIGHT_HAND.start + b) for a, b in HAND_BONES)
    return POSE_BONES + left + right


def landmark_names() -> tuple[str, ...]:
    """Names of the 75 points: ``pose.nose`` ... ``left_hand.wrist`` ... ``right_hand.pinky_tip``."""
    return (
        tuple(f"pose.{n}" for n in POSE_NAMES)
        + tuple(f"left_hand.{n}" for n in HAND_NAMES)
        + tuple(f"right_hand.{n}" for n in HAND_NAMES)
    )


def _mirror_permutation() -> np.ndarray:
    """Index permutation that swaps the signer's left and right (pose sides and the two hands)."""
    perm = np.arange(N_POINTS)
    for i, name in enumerate(POSE_NAMES):
        if name.startswith("left_"):
            j = POSE_NAMES.index("right_" + name[len("left_"):])
            perm[i], perm[j] = j, i
    perm[LEFT_HAND] = np.arange(RIGHT_HAND.start, RIGHT_HAND.stop)
    perm[RIGHT_HAND] = np.arange(LEFT_HAND.start, LEFT_HAND.stop)
    return perm


MIRROR_PERMUTATION: Final = _mirror_permutation()
"""``mirrored = landmarks[..., MIRROR_PERMUTATION, :]`` with x negated gives the mirror image."""


def from_258(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert ``(..., 258)`` community vectors to ``(..., 75, 3)`` landmarks and pose visibility.

    A part whose coordinates are all exactly zero (the community's "not detected") becomes NaN.
    Returns ``(landmarks float32 (..., 75, 3), visibility float32 (..., 33))``.
    """
    flat = np.asarray(flat)
    if flat.shape[-1] != FLAT_DIM:
        raise ValueError(f"expected the last axis to have {FLAT_DIM} values (pose 33x4 + 2 hands 21x3), got shape {flat.shape}")
    flat = flat.astype(np.float32, copy=False)
    lead = flat.shape[:-1]
    pose4 = flat[..., : N_POSE * 4].reshape(*lead, N_POSE, 4)
    left = flat[..., N_POSE * 4 : N_POSE * 4 + N_HAND * 3].reshape(*lead, N_HAND, 3)
    right = flat[..., N_POSE * 4 + N_HAND * 3 :].reshape(*lead, N_HAND, 3)
    out = np.concatenate([pose4[..., :3], left, right], axis=-2).copy()
    visibility = pose4[..., 3].copy()
    for part in (POSE, LEFT_HAND, RIGHT_HAND):
        block = out[..., part, :]
        absent = np.all(block == 0, axis=(-2, -1))
        block[absent] = np.nan
        out[..., part, :] = block
    visibility[np.isnan(out[..., POSE, 0])] = 0.0
    return out, visibility


def to_258(landmarks: np.ndarray, visibility: np.ndarray | None = None) -> np.ndarray:
    """Convert ``(..., 75, 3)`` landmarks to the flat ``(..., 258)`` layout (NaN -> 0).

    ``visibility`` (..., 33) fills the pose's fourth value; without it a present pose point gets 1.
    """
    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.shape[-2:] != (N_POINTS, N_COORDS):
        raise ValueError(f"expected landmarks of shape (..., {N_POINTS}, {N_COORDS}), got {lm.shape}")
    lead = lm.shape[:-2]
    pose = lm[..., POSE, :]
    if visibility is None:
        vis = np.where(np.isnan(pose[..., 0]), 0.0, 1.0).astype(np.float32)
    else:
        vis = np.asarray(visibility, dtype=np.float32)
    pose4 = np.concatenate([pose, vis[..., None]], axis=-1)
    flat = np.concatenate(
        [pose4.reshape(*lead, N_POSE * 4), lm[..., LEFT_HAND, :].reshape(*lead, -1), lm[..., RIGHT_HAND, :].reshape(*lead, -1)],
        axis=-1,
    )
    return np.nan_to_num(flat, nan=0.0).astype(np.float32)


def _zero_parts_to_nan(lm: np.ndarray) -> np.ndarray:
    """``(..., 75, 3)``: a part whose coordinates are all exactly 0 becomes NaN (in place, returned)."""
    for part in (POSE, LEFT_HAND, RIGHT_HAND):
        block = lm[..., part, :]
        block[np.all(block == 0, axis=(-2, -1))] = np.nan
    return lm


# Offsets of the parts inside the 1662 vector (pose 33x4 | face 468x3 | left 21x3 | right 21x3).
_H_FACE_START: Final = N_POSE * 4  # 132
_H_HANDS_START: Final = _H_FACE_START + N_FACE * 3  # 1536

# Kaggle ISLR point order: face 468 | left hand 21 | pose 33 | right hand 21.
KAGGLE_PART_SLICES: Final = {
    "face": slice(0, N_FACE),
    "left_hand": slice(N_FACE, N_FACE + N_HAND),
    "pose": slice(N_FACE + N_HAND, N_FACE + N_HAND + N_POSE),
    "right_hand": slice(N_FACE + N_HAND + N_POSE, N_KAGGLE_POINTS),
}
KAGGLE_TO_75: Final = np.r_[
    KAGGLE_PART_SLICES["pose"], KAGGLE_PART_SLICES["left_hand"], KAGGLE_PART_SLICES["right_hand"]
]
"""``landmarks = points543[..., KAGGLE_TO_75, :]``: the 75 project points picked from Kaggle's 543."""


def from_1662(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(..., 1662)`` Holistic-with-face vectors -> ``(..., 75, 3)`` landmarks and ``(..., 33)`` visibility.

    The face is dropped; a part that is all zeros (the tutorials' "not detected") becomes NaN.
    """
    flat = np.asarray(flat)
    if flat.shape[-1] != HOLISTIC_FLAT_DIM:
        raise ValueError(f"expected the last axis to have {HOLISTIC_FLAT_DIM} values (pose 33x4 + face 468x3 + 2 hands 21x3), got shape {flat.shape}")
    return from_258(np.concatenate([flat[..., :_H_FACE_START], flat[..., _H_HANDS_START:]], axis=-1))


def to_1662(landmarks: np.ndarray, visibility: np.ndarray | None = None, face: np.ndarray | None = None) -> np.ndarray:
    """``(..., 75, 3)`` -> ``(..., 1662)`` (NaN -> 0); ``face (..., 468, 3)`` fills the face, else zeros."""
    flat = to_258(landmarks, visibility)
    lead = flat.shape[:-1]
    face_flat = np.zeros((*lead, N_FACE * 3), np.float32) if face is None else np.nan_to_num(
        np.asarray(face, np.float32).reshape(*lead, N_FACE * 3), nan=0.0)
    return np.concatenate([flat[..., :_H_FACE_START], face_flat, flat[..., _H_FACE_START:]], axis=-1)


def from_543(points: np.ndarray) -> np.ndarray:
    """``(..., 543, 3)`` Kaggle ISLR points -> ``(..., 75, 3)`` float32 landmarks (face dropped).

    NaN stays NaN; a part that is all zeros (NaN filled with 0 by some exports) becomes NaN too.
    """
    pts = np.asarray(points, dtype=np.float32)
    if pts.shape[-2:] != (N_KAGGLE_POINTS, N_COORDS):
        raise ValueError(f"expected points of shape (..., {N_KAGGLE_POINTS}, {N_COORDS}) (face, left hand, pose, right hand), got {pts.shape}")
    return _zero_parts_to_nan(pts[..., KAGGLE_TO_75, :].copy())


def to_543(landmarks: np.ndarray, face: np.ndarray | None = None) -> np.ndarray:
    """``(..., 75, 3)`` -> ``(..., 543, 3)`` float32 in Kaggle's order; the face is ``face`` or NaN."""
    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.shape[-2:] != (N_POINTS, N_COORDS):
        raise ValueError(f"expected landmarks of shape (..., {N_POINTS}, {N_COORDS}), got {lm.shape}")
    out = np.full((*lm.shape[:-2], N_KAGGLE_POINTS, N_COORDS), np.nan, dtype=np.float32)
    out[..., KAGGLE_TO_75, :] = lm
    if face is not None:
        out[..., KAGGLE_PART_SLICES["face"], :] = face
    return out


@dataclass(frozen=True)
class Layout:
    """One accepted per-frame layout: its trailing ``shape``, a description and the converter to (..., 75, 3)."""

    name: str
    shape: tuple[int, ...]
    description: str
    convert: Callable[[np.ndarray], np.ndarray]

    @property
    def shape_text(self) -> str:
        return "(T, " + ", ".join(str(d) for d in self.shape) + ")"


LAYOUTS: Final = (
    Layout("75x3", (N_POINTS, N_COORDS), "signlang: pose 33, left hand 21, right hand 21 points x (x, y, z), NaN = missing",
           lambda a: a.astype(np.float32, copy=False)),
    Layout("225", (N_POINTS * N_COORDS,), "the same 75 x 3 flattened",
           lambda a: a.reshape(*a.shape[:-1], N_POINTS, N_COORDS).astype(np.float32, copy=False)),
    Layout("258", (FLAT_DIM,), "pose 33 x 4 (with visibility) + hands 2 x 21 x 3, no face, 0 = missing",
           lambda a: from_258(a)[0]),
    Layout("1662", (HOLISTIC_FLAT_DIM,), "MediaPipe Holistic with face ('action detection' tutorials): "
           "pose 33 x 4 + face 468 x 3 + left hand 21 x 3 + right hand 21 x 3, 0 = missing; face dropped",
           lambda a: from_1662(a)[0]),
    Layout("543x3", (N_KAGGLE_POINTS, N_COORDS), "Kaggle ISLR: face 468, left hand 21, pose 33, right hand 21 points, "
           "NaN = missing; face dropped", from_543),
    Layout("1629", (N_KAGGLE_POINTS * N_COORDS,), "the same 543 x 3 flattened",
           lambda a: from_543(a.reshape(*a.shape[:-1], N_KAGGLE_POINTS, N_COORDS))),
)
"""Every per-frame layout a clip may come in (first match wins; all end as ``(..., 75, 3)``)."""


def layouts_help() -> str:
    """One line listing the accepted layouts and how to convert anything else."""
    accepted = "; ".join(f"{lay.shape_text} {lay.description}" for lay in LAYOUTS)
    return (
        f"accepted layouts: {accepted}. To convert other landmarks, stack the pose (33), left-hand (21) "
        "and right-hand (21) points of each frame, signer's own sides, into (T, 75, 3) float "
        "(NaN = not detected), e.g. np.concatenate([pose[:, :, :3], left, right], axis=1)"
    )


def find_layout(shape: tuple[int, ...], lead: int = 1) -> Layout | None:
    """The :class:`Layout` whose per-frame shape ends ``shape`` after ``lead`` leading axes (or ``None``)."""
    for lay in LAYOUTS:
        if len(shape) == lead + len(lay.shape) and tuple(shape[lead:]) == lay.shape:
            return lay
    return None


def to_landmarks(array: np.ndarray, *, name: str = "landmarks", lead: int = 1, zeros_missing: bool = False) -> np.ndarray:
    """Any layout of :data:`LAYOUTS` with ``lead`` leading axes -> float32 ``(*lead_axes, 75, 3)``.

    ``lead=1`` takes one clip ``(T, ...)``; ``lead=2`` a padded batch ``(N, T, ...)``.
    ``zeros_missing`` also turns all-zero parts of the 75 x 3 layouts into NaN (the flat
    community layouts always read zeros as "not detected"). Raises ``ValueError`` naming ``name``,
    the shape and the accepted layouts otherwise.
    """
    arr = np.asarray(array)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name}: expected numbers, got dtype {arr.dtype}")
    lay = find_layout(arr.shape, lead)
    if lay is None:
        axes = ", ".join(["N", "T"][-lead:] if lead <= 2 else ["..."] * lead)
        raise ValueError(
            f"{name}: expected shape ({axes}, ...) in one of the accepted layouts, got {tuple(arr.shape)}; {layouts_help()}"
        )
    out = lay.convert(arr)
    if zeros_missing and lay.name in ("75x3", "225"):
        out = _zero_parts_to_nan(out.copy())
    return out


def as_landmarks(array: np.ndarray, *, name: str = "landmarks") -> np.ndarray:
    """One clip in any of :data:`LAYOUTS` (``(T, 75, 3)``, ``(T, 225)``, ``(T, 258)``, ``(T, 1662)``,
    ``(T, 543, 3)``, ``(T, 1629)``) -> float32 ``(T, 75, 3)``.

    Raises ``ValueError`` naming ``name``, the offending shape and the accepted layouts otherwise.
    """
    return to_landmarks(array, name=name, lead=1)


def refuse_infinite(array: np.ndarray, name: str = "landmarks", *, batch: bool = False) -> None:
    """The one infinite-value rule for landmarks: ``ValueError`` naming where the first infinite value is.

    ``array``: ``(T, ...)``, or ``(N, T, ...)`` with ``batch`` (then named ``clip i[t]``). NaN is the
    way to say "not detected", so an infinite value is always a mistake of the sender.
    """
    arr = np.asarray(array)
    if not np.issubdtype(arr.dtype, np.floating) or not np.isinf(arr).any():
        return
    where = np.argwhere(np.isinf(arr))[0]
    at = f"clip {where[0]}[{where[1]}]" if batch and arr.ndim > 1 else f"{name}[{where[0]}]" if arr.ndim > 0 else name
    raise ValueError(f"{at}: contains infinite values (use NaN for points that were not detected)")


def check_clips(array: Any, *, name: str = "landmarks", lead: int = 1, zeros_missing: bool = False) -> np.ndarray:
    """The one validation of landmark clips (the Predictor's and the service's): any layout of
    :data:`LAYOUTS` with ``lead`` leading axes (``(T, ...)`` or a batch ``(N, T, ...)``) -> float32
    ``(*lead_axes, 75, 3)``.

    ``ValueError`` naming ``name`` when the dtype or the layout is not accepted, a clip has no
    frames, or a value is infinite (checked before any conversion, which could hide one).
    ``zeros_missing``: NaN and all-zero parts both mean "not detected" (JSON ``null`` and the
    zero-filled exports); otherwise NaN does and zeros count as coordinates in the 75 x 3 layouts.
    """
    arr = np.asarray(array)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)) or find_layout(arr.shape, lead) is None:
        to_landmarks(arr, name=name, lead=lead)  # raises, naming the dtype or the shape and the accepted layouts
    if arr.shape[lead - 1] < 1:
        raise ValueError(f"{name}: the clip has no frames")
    refuse_infinite(arr, name, batch=lead == 2)
    if zeros_missing:
        arr = np.nan_to_num(arr.astype(np.float32, copy=False), nan=0.0)
    return to_landmarks(arr, name=name, lead=lead, zeros_missing=zeros_missing)


def part_present(landmarks: np.ndarray) -> np.ndarray:
    """Which parts are detected per frame: ``(..., T, 75, 3) -> (..., T, 3)`` bool (pose, left, right)."""
    lm = np.asarray(landmarks)
    return ~np.logical_and.reduceat(np.isnan(lm[..., 0]), _PART_STARTS, axis=-1)  # each part's points all NaN: absent


_PART_STARTS = np.array([POSE.start, LEFT_HAND.start, RIGHT_HAND.start])  # the parts are consecutive and cover the 75 points

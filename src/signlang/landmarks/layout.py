"""The 75-point landmark layout: the single source of truth for every stage.

A frame is 75 points x (x, y, z) float32, in this order:

* ``[0:33]``  MediaPipe Pose (33 points, BlazePose topology)
* ``[33:54]`` the signer's **left** hand (21 points, MediaPipe Hands topology)
* ``[54:75]`` the signer's **right** hand

"Left" and "right" are always the *signer's own* sides (MediaPipe Holistic's convention), never
the side of the image they appear on. A part that was not detected is NaN in all three
coordinates. Coordinates are MediaPipe's normalised image coordinates (x, y in about [0, 1],
z relative depth) until :mod:`signlang.features.normalize` moves them into a body frame.

The community's flat 258-value layout (Kaggle ISLR without the face, ``../shared/data``) is
``pose 33 x (x, y, z, visibility) | left hand 21 x 3 | right hand 21 x 3`` with zeros meaning
"not detected"; :func:`from_258` and :func:`to_258` convert.
"""

from __future__ import annotations

from typing import Final

import numpy as np

N_POSE: Final = 33
N_HAND: Final = 21
N_POINTS: Final = N_POSE + 2 * N_HAND  # 75
N_COORDS: Final = 3
FLAT_DIM: Final = N_POSE * 4 + 2 * N_HAND * 3  # 258

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


def as_landmarks(array: np.ndarray, *, name: str = "landmarks") -> np.ndarray:
    """Accept ``(T, 75, 3)``, ``(T, 225)`` or ``(T, 258)`` and return float32 ``(T, 75, 3)``.

    Raises ``ValueError`` naming ``name`` and the offending shape otherwise.
    """
    arr = np.asarray(array, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[1:] == (N_POINTS, N_COORDS):
        return arr
    if arr.ndim == 2 and arr.shape[1] == FLAT_DIM:
        return from_258(arr)[0]
    if arr.ndim == 2 and arr.shape[1] == N_POINTS * N_COORDS:
        return arr.reshape(-1, N_POINTS, N_COORDS)
    raise ValueError(
        f"{name}: expected shape (T, 75, 3), (T, 225) or (T, 258), got {tuple(arr.shape)}"
    )


def part_present(landmarks: np.ndarray) -> np.ndarray:
    """Which parts are detected per frame: ``(..., T, 75, 3) -> (..., T, 3)`` bool (pose, left, right)."""
    lm = np.asarray(landmarks)
    return np.stack([~np.all(np.isnan(lm[..., s, 0]), axis=-1) for s in (POSE, LEFT_HAND, RIGHT_HAND)], axis=-1)

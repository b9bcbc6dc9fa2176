"""Synthetic signs: procedural bodies and articulated hands in the 75-point layout.

Used for the demo, the tests and property checks wherever real data is absent or too slow. All of
it is called "synthetic" (class names ``synthetic-...``, clip ids ``synthetic-...``, signers
``synthetic-signer-<k>``) so it can never be mistaken for real recordings.

A synthetic sign = handshape (flexion of the five fingers) x location (forehead, face, chin,
chest, ...) x movement (static, line, circle, tap, zigzag, ...) x one/two hands. Class ``i`` gets
a fixed, distinct combination (:func:`synthetic_sign`). A signer varies body proportions, camera
distance and offset, speed (clip length), tremor, dominant hand (left-handed signers mirror the
sign) and missing-hand frames (random dropouts, bursts, hands leaving the frame).

Geometry is built in a *body frame* (unit = shoulder width, origin = mid-shoulders, x towards
the signer's left = image right, y down, z towards the camera negative), then mapped to
MediaPipe's normalised image coordinates: x, y in [0, 1] with y down; pose z on the x scale;
hand z relative to that hand's wrist. Everything is vectorised over the frames of a clip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from signlang.datasets.clip import Clip, ClipSet
from signlang.landmarks.layout import (
    LEFT_ELBOW,
    LEFT_HAND,
    LEFT_SHOULDER,
    LEFT_WRIST_POSE,
    MIRROR_PERMUTATION,
    N_COORDS,
    N_POINTS,
    N_POSE,
    POSE_NAMES,
    RIGHT_ELBOW,
    RIGHT_HAND,
    RIGHT_SHOULDER,
    RIGHT_WRIST_POSE,
)

# --------------------------------------------------------------------------------------------
# the sign inventory
# --------------------------------------------------------------------------------------------

# Flexion (thumb, index, middle, ring, pinky) in [0, 1] (0 = straight) and finger spread.
HANDSHAPES: Final[dict[str, tuple[tuple[float, float, float, float, float], float]]] = {
    "flat": ((0.15, 0.0, 0.0, 0.0, 0.0), 0.3),
    "fist": ((0.65, 1.0, 1.0, 1.0, 1.0), 0.2),
    "index": ((0.75, 0.0, 1.0, 1.0, 1.0), 0.5),
    "v": ((0.75, 0.0, 0.0, 1.0, 1.0), 1.8),
    "y": ((0.0, 1.0, 1.0, 1.0, 0.0), 1.0),
    "claw": ((0.35, 0.55, 0.55, 0.55, 0.55), 1.4),
    "l": ((0.0, 0.0, 1.0, 1.0, 1.0), 0.6),
    "w": ((0.75, 0.0, 0.0, 0.0, 1.0), 1.6),
}
# Target of the dominant (right) hand's wrist in the body frame, and the hand's in-plane roll.
LOCATIONS: Final[dict[str, tuple[tuple[float, float, float], float]]] = {
    "forehead": ((-0.08, -0.85, -0.35), 0.3),
    "face": ((-0.2, -0.6, -0.35), 0.15),
    "chin": ((-0.02, -0.42, -0.4), 0.5),
    "chest": ((0.0, 0.55, -0.3), 0.9),
    "neutral": ((-0.25, 0.75, -0.7), 0.0),
    "shoulder": ((0.3, 0.3, -0.3), 0.8),
    "side": ((-0.75, 0.45, -0.3), -0.2),
    "waist": ((-0.15, 1.05, -0.45), 1.1),
}
MOVEMENTS: Final = ("static", "line", "vertical", "circle", "tap", "zigzag", "shake", "twist")
_STRIDE: Final = 389  # coprime with the number of combinations: class i -> i * stride mod N is a bijection

N_COMBINATIONS: Final = len(HANDSHAPES) * len(LOCATIONS) * len(MOVEMENTS) * 2

# rest pose of the dominant wrist (hands down by the hips)
_REST: Final = np.array([-0.58, 1.4, -0.15])
_UNIT: Final = 0.2  # image width per shoulder width at scale 1
_SHOULDER_Y: Final = 0.58


@dataclass(frozen=True)
class SyntheticSign:
    """The components of one synthetic class."""

    handshape: str
    location: str
    movement: str
    two_handed: bool

    @property
    def name(self) -> str:
        hands = "2h" if self.two_handed else "1h"
        return f"synthetic-{self.handshape}-{self.location}-{self.movement}-{hands}"


def synthetic_sign(class_index: int) -> SyntheticSign:
    """The fixed, distinct combination for class ``class_index`` (0 <= i < N_COMBINATIONS)."""
    if not 0 <= class_index < N_COMBINATIONS:
        raise ValueError(f"class_index must be in 0..{N_COMBINATIONS - 1}, got {class_index}")
    k = (class_index * _STRIDE) % N_COMBINATIONS
    shapes, locs = list(HANDSHAPES), list(LOCATIONS)
    k, hs = divmod(k, len(shapes))
    k, loc = divmod(k, len(locs))
    k, mov = divmod(k, len(MOVEMENTS))
    return SyntheticSign(shapes[hs], locs[loc], MOVEMENTS[mov], bool(k % 2))


def synthetic_class_names(n_classes: int) -> tuple[str, ...]:
    """Names of the first ``n_classes`` synthetic classes (in class-index order)."""
    return tuple(synthetic_sign(i).name for i in range(n_classes))


# --------------------------------------------------------------------------------------------
# signers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticSigner:
    """Everything that differs between synthetic signers."""

    name: str
    shoulder_width: float = 1.0  # body proportions (relative)
    head_size: float = 1.0
    arm_length: float = 1.0
    hand_size: float = 1.0
    scale: float = 1.0  # camera distance: larger = closer
    offset: tuple[float, float] = (0.0, 0.0)  # camera offset, image units
    slowness: float = 0.5  # 0 = fastest (short clips) .. 1 = slowest
    tremor: float = 0.003  # image units
    left_handed: bool = False
    missing_rate: float = 0.05  # per-frame hand dropout probability


def make_signer(index: int, *, seed: int = 0, missing_rate: float = 0.05) -> SyntheticSigner:
    """Synthetic signer ``index``, deterministic for ``(seed, index)``; about 1 in 4 is left-handed."""
    rng = np.random.default_rng([seed, index, 7919])
    return SyntheticSigner(
        name=f"synthetic-signer-{index}",
        shoulder_width=float(rng.uniform(0.88, 1.12)),
        head_size=float(rng.uniform(0.9, 1.1)),
        arm_length=float(rng.uniform(0.92, 1.08)),
        hand_size=float(rng.uniform(0.9, 1.1)),
        scale=float(rng.uniform(0.85, 1.2)),
        offset=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.05, 0.04))),
        slowness=float(rng.uniform(0.0, 1.0)),
        tremor=float(rng.uniform(0.001, 0.006)),
        left_handed=bool(rng.random() < 0.25),
        missing_rate=float(missing_rate * rng.uniform(0.5, 1.5)),
    )


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------

# static pose points (body frame) that do not depend on the arms; arms are filled per frame
_POSE_TEMPLATE: Final = {
    "nose": (0.0, -0.85, -0.28),
    "left_eye_inner": (0.05, -0.95, -0.24), "left_eye": (0.09, -0.96, -0.24), "left_eye_outer": (0.13, -0.95, -0.22),
    "right_eye_inner": (-0.05, -0.95, -0.24), "right_eye": (-0.09, -0.96, -0.24), "right_eye_outer": (-0.13, -0.95, -0.22),
    "left_ear": (0.2, -0.9, -0.05), "right_ear": (-0.2, -0.9, -0.05),
    "mouth_left": (0.06, -0.74, -0.24), "mouth_right": (-0.06, -0.74, -0.24),
    "left_shoulder": (0.5, 0.0, 0.0), "right_shoulder": (-0.5, 0.0, 0.0),
    "left_hip": (0.32, 1.45, 0.0), "right_hip": (-0.32, 1.45, 0.0),
    "left_knee": (0.33, 2.5, -0.02), "right_knee": (-0.33, 2.5, -0.02),
    "left_ankle": (0.33, 3.5, 0.05), "right_ankle": (-0.33, 3.5, 0.05),
    "left_heel": (0.34, 3.6, 0.08), "right_heel": (-0.34, 3.6, 0.08),
    "left_foot_index": (0.3, 3.65, -0.15), "right_foot_index": (-0.3, 3.65, -0.15),
}
_FACE: Final = np.array([i for i, n in enumerate(POSE_NAMES) if n in ("nose",) or "eye" in n or "ear" in n or "mouth" in n])
_HEAD_CENTRE: Final = np.array([0.0, -0.85, -0.2])
_POSE_ARRAY: Final = np.array([_POSE_TEMPLATE.get(n, (0.0, 0.0, 0.0)) for n in POSE_NAMES], dtype=np.float64)
_TRUNK: Final = np.array([i for i, n in enumerate(POSE_NAMES) if any(k in n for k in ("shoulder", "hip", "knee", "ankle", "heel", "foot"))])

# hand (right hand, palm to the camera, fingers up), unit = hand length; x towards the thumb
_FINGER_BASES: Final = np.array([[0.12, -0.45, 0.0], [0.03, -0.47, 0.0], [-0.06, -0.45, 0.0], [-0.14, -0.40, 0.0]])
_FINGER_SEGMENTS: Final = np.array([[0.22, 0.13, 0.10], [0.25, 0.15, 0.10], [0.23, 0.14, 0.10], [0.18, 0.10, 0.09]])
_FINGER_SPREAD: Final = np.array([0.10, 0.0, -0.08, -0.18])
_JOINT_RANGE: Final = np.array([1.45, 1.7, 1.0])  # max flexion (rad) of MCP, PIP, DIP
_THUMB_CMC: Final = np.array([0.1, -0.1, -0.02])
_THUMB_SEGMENTS: Final = np.array([0.19, 0.15, 0.12])
_THUMB_OPEN: Final = np.array([0.75, -0.66, -0.05])
_THUMB_CLOSED: Final = np.array([-0.55, -0.45, -0.7])
_HAND_LENGTH: Final = 0.47  # shoulder widths


def hand_points(flexion: np.ndarray, spread: float) -> np.ndarray:
    """Local 21-point right hand ``(21, 3)`` from the five flexions in [0, 1] and a spread factor.

    Each finger is a 3-segment chain whose joints bend by ``flexion * _JOINT_RANGE`` towards the
    palm (-z, the camera side); the thumb swings from open to across the palm.
    """
    flex = np.clip(np.asarray(flexion, dtype=np.float64), 0.0, 1.0)
    pts = np.zeros((21, 3))
    # thumb: directions interpolated from open to closed along its 3 segments
    w = flex[0] * np.array([0.55, 0.85, 1.0])[:, None]
    dirs = (1.0 - w) * _THUMB_OPEN + w * _THUMB_CLOSED
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    pts[1] = _THUMB_CMC
    pts[2:5] = _THUMB_CMC + np.cumsum(dirs * _THUMB_SEGMENTS[:, None], axis=0)
    # four fingers, vectorised: cumulative joint angles (4, 3)
    phi = np.cumsum(flex[1:, None] * _JOINT_RANGE[None, :], axis=1)
    sp = (_FINGER_SPREAD * spread)[:, None]
    d = np.stack([np.sin(sp) * np.cos(phi), -np.cos(sp) * np.cos(phi), -np.sin(phi)], axis=-1)  # (4, 3, 3)
    chain = _FINGER_BASES[:, None, :] + np.cumsum(d * _FINGER_SEGMENTS[..., None], axis=1)  # (4, 3, 3)
    pts[5:21] = np.concatenate([_FINGER_BASES[:, None, :], chain], axis=1).reshape(16, 3)
    return pts


def _rotation(roll: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)`` rotations: yaw about the hand's long (y) axis, then roll in the image plane."""
    cr, sr, cy, sy = np.cos(roll), np.sin(roll), np.cos(yaw), np.sin(yaw)
    zero, one = np.zeros_like(roll), np.ones_like(roll)
    rz = np.stack([np.stack([cr, -sr, zero], -1), np.stack([sr, cr, zero], -1), np.stack([zero, zero, one], -1)], -2)
    ry = np.stack([np.stack([cy, zero, sy], -1), np.stack([zero, one, zero], -1), np.stack([-sy, zero, cy], -1)], -2)
    return rz @ ry


def _path(x: np.ndarray | float, y: np.ndarray | float, z: np.ndarray | float, tau: np.ndarray) -> np.ndarray:
    """Stack a movement's x, y, z (arrays or constants) into ``(T, 3)``."""
    return np.stack(np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(z, dtype=np.float64), tau)[:3], -1)


_TWO_PI: Final = 2.0 * np.pi

# movement name -> f(tau (T,), amplitude) -> (offset (T, 3) in the body frame, yaw (T,) of the hand)
MOVEMENT_PATHS: Final[dict[str, Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]]]] = {
    "static": lambda t, a: (_path(0.0, 0.0, 0.0, t), 0.0 * t),
    "line": lambda t, a: (_path(a * (2 * t - 1), 0.0, 0.0, t), 0.0 * t),
    "vertical": lambda t, a: (_path(0.0, a * (1 - 2 * t), 0.0, t), 0.0 * t),
    "circle": lambda t, a: (_path(0.7 * a * np.cos(_TWO_PI * t), 0.7 * a * np.sin(_TWO_PI * t), 0.0, t), 0.0 * t),
    "tap": lambda t, a: (_path(0.0, -0.5 * a * np.abs(np.sin(3 * np.pi * t)), -0.3 * a * np.abs(np.sin(3 * np.pi * t)), t), 0.0 * t),
    "zigzag": lambda t, a: (_path(a * (2 * t - 1), 0.45 * a * (2.0 * np.abs(2.0 * ((2.0 * t) % 1.0) - 1.0) - 1.0), 0.0, t), 0.0 * t),
    "shake": lambda t, a: (_path(0.45 * a * np.sin(3 * _TWO_PI * t), 0.0, 0.0, t), 0.0 * t),
    "twist": lambda t, a: (_path(0.0, 0.0, 0.0, t), 1.3 * np.sin(2 * _TWO_PI * t)),
}
assert tuple(MOVEMENT_PATHS) == MOVEMENTS


def _movement(name: str, tau: np.ndarray, amp: float) -> tuple[np.ndarray, np.ndarray]:
    """Offset ``(T, 3)`` (body frame) and yaw ``(T,)`` of a movement at phase ``tau`` in [0, 1]."""
    if name not in MOVEMENT_PATHS:
        raise ValueError(f"unknown synthetic movement {name!r}; known: {MOVEMENTS}")
    return MOVEMENT_PATHS[name](tau, amp)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _elbows(shoulder: np.ndarray, wrist: np.ndarray, upper: float, fore: float, side: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-link IK in 3-D: ``(elbow (T, 3), reachable wrist (T, 3))`` from shoulder ``(3,)``, wrist ``(T, 3)``.

    The elbow lies in the plane of the arm and a pole direction (down, out, backwards), which keeps
    it continuous over time; an out-of-reach wrist is pulled back onto the sphere of reach.
    """
    v = wrist - shoulder[None]
    dist = np.linalg.norm(v, axis=1)
    reach = np.clip(dist, 1e-6, (upper + fore) * 0.999)
    u = v / np.maximum(dist, 1e-6)[:, None]
    wrist = shoulder[None] + u * reach[:, None]
    along = (upper**2 - fore**2 + reach**2) / (2.0 * reach)
    h = np.sqrt(np.maximum(upper**2 - along**2, 0.0))
    pole = np.array([side * 0.5, 1.0, 0.8])
    perp = pole[None] - (u @ pole)[:, None] * u
    perp /= np.maximum(np.linalg.norm(perp, axis=1, keepdims=True), 1e-9)
    elbow = shoulder[None] + u * along[:, None] + perp * h[:, None]
    return elbow, wrist


def make_synthetic_clip(
    class_index: int,
    signer: SyntheticSigner,
    rng: np.random.Generator,
    *,
    frames: tuple[int, int] = (32, 64),
    clip_id: str | None = None,
    seq_id: int | None = None,
) -> Clip:
    """One synthetic clip of class ``class_index`` by ``signer``: landmarks ``(T, 75, 3)`` float32.

    ``T`` lies in ``frames`` (slow signers near the top). The dominant hand approaches from rest,
    performs the movement at the location, and returns; a left-handed signer's clip is the mirror
    image of the same sign. Hands are NaN on dropout frames and when the wrist leaves the image.
    """
    lo, hi = int(frames[0]), int(frames[1])
    if not 2 <= lo <= hi:
        raise ValueError(f"frames must be (lo, hi) with 2 <= lo <= hi, got {frames}")
    sign = synthetic_sign(class_index)
    n = int(np.clip(round(lo + (hi - lo) * (0.7 * signer.slowness + 0.3 * rng.random())), lo, hi))
    t = np.linspace(0.0, 1.0, n)

    # --- timing: approach, movement, return (jittered per clip) -------------------------------
    a = 0.18 + rng.uniform(-0.05, 0.05)
    b = 0.82 + rng.uniform(-0.05, 0.05)
    envelope = _smoothstep(t / a) * _smoothstep((1.0 - t) / (1.0 - b))
    tau = np.clip((t - a) / (b - a), 0.0, 1.0)

    # --- body (body frame) ----------------------------------------------------------------------
    pose = _POSE_ARRAY.copy()
    pose[_FACE] = _HEAD_CENTRE + signer.head_size * (pose[_FACE] - _HEAD_CENTRE)
    pose[_TRUNK, 0] *= signer.shoulder_width
    body = np.repeat(pose[None], n, axis=0)  # (T, 33, 3)
    sway = 0.02 * np.sin(2 * np.pi * (t * rng.uniform(0.3, 0.8) + rng.random()))
    body[:, :, 0] += sway[:, None]

    # --- hands ----------------------------------------------------------------------------------
    flex, spread = HANDSHAPES[sign.handshape]
    local = hand_points(np.asarray(flex) + rng.normal(0.0, 0.04, 5), spread) * (_HAND_LENGTH * signer.hand_size)
    target, roll0 = LOCATIONS[sign.location]
    target = np.asarray(target) + rng.normal(0.0, 0.035, 3)
    target[[0]] *= signer.shoulder_width
    amp = 0.28 * rng.uniform(0.85, 1.15)
    off, yaw = _movement(sign.movement, tau, amp)
    upper, fore = 0.78 * signer.arm_length, 0.68 * signer.arm_length

    hands = np.full((n, 2 * 21, 3), np.nan)
    sides = [(-1.0, True)] + [(1.0, sign.two_handed)]  # (x side, active): right = dominant, left
    for h_i, (side, active) in enumerate(sides):  # two hands, each vectorised over frames
        mirror = np.array([-side, 1.0, 1.0])  # identity for the right hand, x -> -x for the left
        rest = _REST * mirror
        if active:
            goal = target * mirror + off * mirror
            w = envelope[:, None]
        else:
            goal = np.repeat(rest[None], n, 0)
            w = np.zeros((n, 1))
        wrist = rest[None] + w * (goal - rest[None])
        shoulder = body[0, RIGHT_SHOULDER if side < 0 else LEFT_SHOULDER]
        elbow, wrist = _elbows(shoulder, wrist, upper, fore, side)
        roll = (w[:, 0] * roll0 + (1 - w[:, 0]) * 0.1) * (-side)  # fingers tilt towards the midline
        rot = _rotation(roll, yaw * w[:, 0] * (-side))
        pts_local = local * mirror  # the left hand is the mirror image of the right
        pts = wrist[:, None, :] + pts_local[None] @ np.swapaxes(rot, 1, 2)  # (T, 21, 3)
        hands[:, h_i * 21 : (h_i + 1) * 21] = pts
        wrist_idx, elbow_idx = (RIGHT_WRIST_POSE, RIGHT_ELBOW) if side < 0 else (LEFT_WRIST_POSE, LEFT_ELBOW)
        body[:, elbow_idx] = elbow
        body[:, wrist_idx] = wrist
        pre = "right_" if side < 0 else "left_"
        body[:, [POSE_NAMES.index(pre + k) for k in ("pinky", "index", "thumb")]] = pts[:, [17, 5, 3]]

    # assemble: signer's left hand block holds hands[21:42], right block hands[0:21]
    lm = np.empty((n, N_POINTS, N_COORDS))
    lm[:, :N_POSE] = body
    lm[:, RIGHT_HAND] = hands[:, 0:21]
    lm[:, LEFT_HAND] = hands[:, 21:42]
    if signer.left_handed:
        lm = lm[:, MIRROR_PERMUTATION]
        lm[..., 0] *= -1.0

    # --- body frame -> image coordinates --------------------------------------------------------
    u = _UNIT * signer.scale
    centre = np.array([0.5 + signer.offset[0], _SHOULDER_Y + signer.offset[1]])
    out = np.empty_like(lm)
    out[..., :2] = centre + u * lm[..., :2]
    out[..., 2] = u * lm[..., 2]
    for block in (LEFT_HAND, RIGHT_HAND):
        out[:, block, 2] = u * (lm[:, block, 2] - lm[:, block.start : block.start + 1, 2])

    # --- tremor: smooth per-hand shake + per-point jitter ---------------------------------------
    noise = rng.normal(0.0, signer.tremor, (n + 2, 2, 3))
    shake = 0.25 * noise[:-2] + 0.5 * noise[1:-1] + 0.25 * noise[2:]
    shake[..., 2] *= 0.3
    for h_i, block in enumerate((LEFT_HAND, RIGHT_HAND)):
        out[:, block] += shake[:, None, h_i]
    jitter = np.full((N_POINTS, 1), 0.0012)  # landmark noise: pose points are shakier than hand points
    jitter[N_POSE:] = 0.0005
    out += rng.normal(0.0, 1.0, out.shape) * jitter

    # --- missing hands: dropouts, a burst, out of frame -----------------------------------------
    missing = rng.random((n, 2)) < signer.missing_rate
    if rng.random() < min(1.0, 4.0 * signer.missing_rate):
        length = int(rng.integers(3, max(4, n // 5)))
        start = int(rng.integers(0, max(1, n - length)))
        missing[start : start + length, int(rng.integers(0, 2))] = True
    for h_i, block in enumerate((LEFT_HAND, RIGHT_HAND)):
        wr = out[:, block.start, :2]
        outside = np.any((wr < 0.0) | (wr > 1.0), axis=1)
        out[missing[:, h_i] | outside, block] = np.nan

    signer_name = signer.name
    return Clip(
        landmarks=out.astype(np.float32),
        label=sign.name,
        clip_id=clip_id or f"synthetic-{class_index:04d}-{signer_name}",
        signer=signer_name,
        seq_id=seq_id,
    )


def make_synthetic_dataset(
    n_classes: int = 10,
    n_signers: int = 8,
    clips_per_signer: int = 4,
    *,
    seed: int = 0,
    frames: tuple[int, int] = (32, 64),
    missing_rate: float = 0.05,
) -> ClipSet:
    """A synthetic :class:`ClipSet`: every signer signs every class ``clips_per_signer`` times.

    ``n_classes * n_signers * clips_per_signer`` clips, deterministic per ``seed`` (each clip
    depends only on ``(seed, class, signer, repetition)``). ``seq_ids`` number each class's clips
    in recording order (signer by signer); ``classes`` are in class-index order.
    """
    if not 1 <= n_classes <= N_COMBINATIONS:
        raise ValueError(f"n_classes must be in 1..{N_COMBINATIONS}, got {n_classes}")
    if n_signers < 1 or clips_per_signer < 1:
        raise ValueError(f"n_signers and clips_per_signer must be >= 1, got {n_signers}, {clips_per_signer}")
    if not 0.0 <= missing_rate < 1.0:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate}")
    signers = [make_signer(s, seed=seed, missing_rate=missing_rate) for s in range(n_signers)]
    clips = [
        make_synthetic_clip(
            c, signers[s], np.random.default_rng([seed, c, s, k, 104729]), frames=frames,
            clip_id=f"synthetic-{c:04d}-s{s:03d}-r{k:02d}", seq_id=s * clips_per_signer + k,
        )
        for c in range(n_classes)
        for s in range(n_signers)
        for k in range(clips_per_signer)
    ]
    return ClipSet.from_clips(clips, classes=synthetic_class_names(n_classes))

"""The feature table: per-frame features of normalised landmarks, and their per-clip pooling.

Input: landmarks from :mod:`signlang.features.normalize` in the body frame, ``(..., T, 75, 3)``,
NaN = missing. :func:`frame_features` returns ``(..., T, F)`` float32 without NaN or inf
(missing values become 0; the ``presence`` block tells a model what was missing). Blocks, in this
order (``FEATURE_BLOCKS``):

| block | dim | what |
|---|---|---|
| ``hands_xyz`` | 126 | left then right hand, 21 points x (x, y, z) in the body frame |
| ``joint_angles`` | 78 | per hand (left, right) x plane (3-D, xy, yz) x 13 angle cosines (``ANGLE_PAIRS``) |
| ``velocity`` | 126 | d/dt of ``hands_xyz`` (``np.gradient`` over frames; 0 for T = 1) |
| ``acceleration`` | 126 | d/dt of ``velocity`` |
| ``hand_shape`` | 6 | per hand: circularity 4*pi*A/P^2, rectangularity A/(min-area rectangle), and hull area in palm lengths^2, of the 2-D (x, y) convex hull of its 21 points |
| ``trajectory`` | 30 | the dominant wrist's path (3-D) sampled at 10%, 20%, ..., 100% of its arc length, relative to its first position; a per-clip descriptor repeated on every frame |
| ``body_relative`` | 18 | per wrist (left, right) the vector to the nose, the mouth centre and the chest (shoulder midpoint); the pose wrist stands in when the hand is not detected |
| ``presence`` | 3 | pose, left hand, right hand detected (1/0) |

Optional blocks (``OPTIONAL_BLOCKS``): computed only when named in ``blocks``, so the default
table (``blocks=None``) and every bundle written before them are unchanged. x/y only (MediaPipe's
z is unreliable), both about the **dominant** hand (the one present in more frames, ties: right;
with ``canonical_hand`` normalisation that is the right hand):

| block | dim | what |
|---|---|---|
| ``face_relative`` | 14 | where the dominant hand is relative to the face, in face sizes (median eye-midpoint -> mouth-midpoint distance): hand centre, index tip and wrist relative to the nose (x, y), and the distances of the hand centre and the index tip to the mouth, chin, forehead and eyes; pooled, first/last/min give start, end and closest approach |
| ``finger_straightness`` | 10 | per finger (thumb .. pinky) of the dominant hand: straight-line / along-the-bones length of wrist -> tip and of MCP -> tip in x/y (1 = extended, small = folded): a handshape measure that does not depend on the palm's in-plane rotation or size |

The 13 joint angles per hand are the flexion at the 4 finger MCP joints (wrist-MCP-PIP), the 4
finger PIP joints, the thumb's MCP and IP joints, and the spread between the proximal phalanges of
index/middle, middle/ring and ring/pinky. The dominant hand is the one present in more frames
(ties: right).

The convex hull is computed for all frames and hands at once, the points of every hand sorted by (x, y).
Few hulls (one clip) take a fixed number of NumPy calls: a point is on the lower (upper) chain iff the
steepest (shallowest) slope from an earlier point to it is below (above) the shallowest (steepest) slope
from it to a later one, an ``O(n^2)`` comparison for all points at once. Many hulls (a batch) take Andrew's
monotone chain: one loop over the 21 points builds the lower and upper chains of every hull together,
popping only in the hulls that need it. The minimum-area rectangle has a side on a hull edge, so all hull
edges are tried at once. Both give the same numbers (to rounding, ~1e-16 relative).

Values are clipped to +-``FEATURE_LIMIT`` (real data stays within +-10 in body units) so a
degenerate input can never hand a model an overflowing number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from signlang.features.normalize import _interp_fill
from signlang.landmarks.layout import (
    INDEX_TIP,
    LEFT_EYE,
    LEFT_HAND,
    LEFT_SHOULDER,
    LEFT_WRIST_POSE,
    MIDDLE_MCP,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    N_COORDS,
    N_HAND,
    N_POINTS,
    NOSE,
    RIGHT_EYE,
    RIGHT_HAND,
    RIGHT_SHOULDER,
    RIGHT_WRIST_POSE,
    WRIST,
    part_present,
)

FEATURE_LIMIT: float = 1e3
_EPS = 1e-9
_CHUNK = 1024  # clips per vectorised chunk (bounds the temporaries' memory)
_HULL_CHUNK = 8192  # hulls per vectorised chunk
_RECT_CHUNK = 256  # hulls per minimum-rectangle chunk: the (V, E, 256) temporaries stay in the cache
_FEW_HULLS = 384  # up to this many hulls (one clip has at most 2T) take the fixed-call path, more the chain loop

# Pairs of hand vectors whose angle cosine is a feature: ((a0, a1), (b0, b1)) -> cos(p[a1]-p[a0], p[b1]-p[b0]).
ANGLE_PAIRS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    # MCP flexion of index, middle, ring, pinky: angle at the MCP between wrist and PIP
    ((5, 0), (5, 6)), ((9, 0), (9, 10)), ((13, 0), (13, 14)), ((17, 0), (17, 18)),
    # PIP flexion: angle at the PIP between MCP and DIP
    ((6, 5), (6, 7)), ((10, 9), (10, 11)), ((14, 13), (14, 15)), ((18, 17), (18, 19)),
    # thumb MCP and IP flexion
    ((2, 1), (2, 3)), ((3, 2), (3, 4)),
    # spread between adjacent proximal phalanges
    ((5, 6), (9, 10)), ((9, 10), (13, 14)), ((13, 14), (17, 18)),
)
TRAJECTORY_POINTS = 10

FEATURE_BLOCKS: dict[str, int] = {}
"""Block name -> dimension of the default table (``blocks=None``), in the order :func:`frame_features`
concatenates them."""

OPTIONAL_BLOCKS: dict[str, int] = {}
"""Block name -> dimension of the blocks computed only when named (see the module docstring)."""

_BLOCK_FNS: dict[str, Callable[[np.ndarray], np.ndarray]] = {}


def _block(name: str, dim: int, *, optional: bool = False) -> Callable[[Callable[[np.ndarray], np.ndarray]], Callable[[np.ndarray], np.ndarray]]:
    """Register a block function ``(M, T, 75, 3) -> (M, T, dim)`` under ``name`` (``optional``: not in the default table)."""

    def deco(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        (OPTIONAL_BLOCKS if optional else FEATURE_BLOCKS)[name] = dim
        _BLOCK_FNS[name] = fn
        return fn

    return deco


def _hands(lm: np.ndarray) -> np.ndarray:
    """``(M, T, 75, 3) -> (M, T, 2, 21, 3)`` (left, right)."""
    return np.stack([lm[..., LEFT_HAND, :], lm[..., RIGHT_HAND, :]], axis=-3)


def _gradient(x: np.ndarray) -> np.ndarray:
    """Derivative over frames (axis 1) of ``(M, T, ...)``; zero for a single frame."""
    if x.shape[1] < 2:
        return np.zeros_like(x)
    out = np.empty_like(x)  # np.gradient(x, axis=1), the same arithmetic without its per-call set-up
    np.subtract(x[:, 2:], x[:, :-2], out=out[:, 1:-1])
    out[:, 1:-1] /= 2.0
    np.subtract(x[:, 1], x[:, 0], out=out[:, 0])
    np.subtract(x[:, -1], x[:, -2], out=out[:, -1])
    return out


@_block("hands_xyz", 2 * N_HAND * N_COORDS)
def _hands_xyz(lm: np.ndarray) -> np.ndarray:
    return lm[:, :, LEFT_HAND.start : RIGHT_HAND.stop, :].reshape(*lm.shape[:2], -1)


def _angle_index() -> np.ndarray:
    """``(4, 2 * 13)`` point indices into the 75 landmarks: the head and tail of the first vector, then of the
    second, of every ``ANGLE_PAIRS`` entry, left hand's 13 then the right hand's."""
    pairs = np.asarray(ANGLE_PAIRS)  # (13, 2, 2): pair, vector, (tail, head)
    starts = np.array([LEFT_HAND.start, RIGHT_HAND.start])[:, None]
    return np.stack([(starts + pairs[None, :, vec, end]).reshape(-1) for vec in (0, 1) for end in (1, 0)])


_ANGLE_INDEX = _angle_index()


def _coords_first(lm: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``lm (M, T, 75, 3)`` at ``points (...)`` with the coordinate axis first: ``(3, M, T, ...)``. Sums over
    coordinates then add whole arrays instead of reducing a length-3 axis (the same float32 sums, far fewer
    strided passes)."""
    return np.moveaxis(lm[:, :, points.reshape(-1), :], -1, 0).reshape(3, *lm.shape[:2], *points.shape)


@_block("joint_angles", 2 * 3 * len(ANGLE_PAIRS))
def _joint_angles(lm: np.ndarray) -> np.ndarray:
    p = _coords_first(lm, _ANGLE_INDEX)  # (3, M, T, 4, 26)
    u = p[:, :, :, 0] - p[:, :, :, 1]  # (3, M, T, 26): hand x pair
    v = p[:, :, :, 2] - p[:, :, :, 3]
    m, t = lm.shape[:2]
    prods = np.stack([u * v, u * u, v * v])  # (3 products, 3 coords, M, T, 26)
    xy = prods[:, 0] + prods[:, 1]
    planes = np.stack([xy + prods[:, 2], xy, prods[:, 1] + prods[:, 2]], axis=1)  # (dot/uu/vv, plane, M, T, 26)
    dot = planes[0]
    norm = np.sqrt(planes[1] * planes[2])
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norm > _EPS, dot / np.maximum(norm, _EPS), 0.0)
    cos = np.where(np.isnan(dot), np.nan, np.maximum(np.minimum(cos, 1.0), -1.0))  # (plane, M, T, 26)
    return np.moveaxis(cos.reshape(3, m, t, 2, len(ANGLE_PAIRS)), 0, 3).reshape(m, t, -1)


@_block("velocity", 2 * N_HAND * N_COORDS)
def _velocity(lm: np.ndarray) -> np.ndarray:
    return _gradient(_hands_xyz(lm))


@_block("acceleration", 2 * N_HAND * N_COORDS)
def _acceleration(lm: np.ndarray) -> np.ndarray:
    return _gradient(_gradient(_hands_xyz(lm)))


def hull_shape(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area, perimeter and minimum-area bounding rectangle of 2-D convex hulls.

    ``points (B, n, 2)`` (NaN rows are ignored) -> ``(area, perimeter, rect_area)`` each ``(B,)``;
    fewer than 3 valid points give 0 (collinear points: area 0, perimeter twice their extent).
    Vectorised over B (see the module docstring).
    """
    pts = np.asarray(points, dtype=np.float64)
    return hull_shape_xy(pts[..., 0], pts[..., 1])


def hull_shape_xy(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`hull_shape` of the points ``(px[b, i], py[b, i])``, ``px, py (B, n)`` float64: the coordinates as two
    arrays, so that no step reduces or gathers along a length-2 axis."""
    valid = ~(np.isnan(px) | np.isnan(py))
    count = valid.sum(axis=1)
    area, perimeter, rect = (np.zeros(px.shape[0]) for _ in range(3))
    todo = np.flatnonzero(count >= 3)  # only these have a hull with an area (a missing hand costs nothing)
    few = todo.size <= _FEW_HULLS  # e.g. one clip: a fixed number of NumPy calls beats the chain loop's hundreds
    for i in range(0, todo.size, _HULL_CHUNK):
        rows = todo[i : i + _HULL_CHUNK]
        area[rows], perimeter[rows], rect[rows] = (_few_hulls_shape if few else _hull_shape)(px[rows], py[rows], valid[rows], count[rows])
    return area, perimeter, rect


def _sorted_rel(px: np.ndarray, py: np.ndarray, valid: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The points of each row ``(B, n)`` relative to their centroid (a missing point at the centroid), sorted by
    (x, y): ``(B, n)`` complex, ``x + iy`` (complex numbers sort by real, then imaginary part: no lexsort)."""
    rx = np.where(valid, px - (np.where(valid, px, 0.0).sum(axis=1) / count)[:, None], 0.0)
    ry = np.where(valid, py - (np.where(valid, py, 0.0).sum(axis=1) / count)[:, None], 0.0)
    return np.sort(rx + 1j * ry, axis=1)


@lru_cache(maxsize=8)
def _later(n: int) -> np.ndarray:
    """``(n, n, 1)`` bool: ``[j, i]`` is True where j comes before i."""
    return np.triu(np.ones((n, n), dtype=bool), 1)[..., None]


def _few_hulls_shape(px: np.ndarray, py: np.ndarray, valid: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_hull_shape` in a fixed number of calls, ``O(n^2)`` work per hull (for few hulls).

    With the points sorted by (x, y), point i is a vertex of the lower chain iff the steepest slope from an
    earlier point to it is below the shallowest slope from it to a later one (a supporting line with a slope in
    between exists), and of the upper chain iff the shallowest slope from an earlier point is above the steepest
    to a later one; the first and last points are on both. Repeated points (slope 0/0) are ignored by the
    comparisons; a kept repeat or collinear point adds a zero-length edge or a straight angle, which changes no
    area, perimeter or rectangle. The polygon (lower chain, then the upper chain back) is padded with its first
    vertex; the rectangle as in :func:`_chain_shape`, every vertex projected on every edge."""
    srt = _sorted_rel(px, py, valid, count).T  # (n, b)
    n, b = srt.shape
    x, y = np.ascontiguousarray(srt.real), np.ascontiguousarray(srt.imag)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (y[None] - y[:, None]) / (x[None] - x[:, None])  # (n, n, b): s[i, j] the slope i -> j (its sign right for j > i)
    later = _later(n)
    steep = np.where(later, s, -np.inf)
    shallow = np.where(later, s, np.inf)
    lower = np.fmax.reduce(steep, axis=0) < np.fmin.reduce(shallow, axis=1)  # (n, b)
    upper = np.fmin.reduce(shallow, axis=0) > np.fmax.reduce(steep, axis=1)
    lower[0] = lower[-1] = True
    upper[0] = upper[-1] = False  # the upper chain's own vertices (its ends are the lower chain's)
    rank_lo = np.cumsum(lower, axis=0) - 1
    n_lo = rank_lo[-1] + 1
    rank_up = n_lo + np.cumsum(upper[::-1], axis=0)[::-1] - 1  # the upper chain from right to left
    v = int((n_lo + upper.sum(axis=0)).max())
    cols = np.broadcast_to(np.arange(b), (n, b))
    vx, vy = np.empty((v + 1, b)), np.empty((v + 1, b))
    vx[:], vy[:] = x[0], y[0]  # padding: the first vertex, which also closes the polygon
    for chain, rank in ((lower, rank_lo), (upper, rank_up)):  # row v collects the points on neither
        r = np.where(chain, rank, v)
        vx[r, cols], vy[r, cols] = x, y
    vx[v], vy[v] = x[0], y[0]
    ex, ey = vx[1:] - vx[:-1], vy[1:] - vy[:-1]  # (V, b)
    area = 0.5 * np.abs((vx[:-1] * vy[1:] - vy[:-1] * vx[1:]).sum(axis=0))
    length = np.hypot(ex, ey)
    inv = 1.0 / np.maximum(length, _EPS)
    ux, uy = ex * inv, ey * inv
    along = ux * vx[:-1, None] + uy * vy[:-1, None]  # (V, E, b)
    across = ux * vy[:-1, None] - uy * vx[:-1, None]
    rect = (along.max(axis=0) - along.min(axis=0)) * (across.max(axis=0) - (ux * vy[:-1] - uy * vx[:-1]))
    rect = np.where(length > _EPS, rect, np.inf).min(axis=0)
    return area, length.sum(axis=0), np.where(np.isfinite(rect), rect, 0.0)


def _lower_chains(x: np.ndarray, y: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Andrew's monotone chain for R point sets at once.

    ``x, y (m, R)``: column r holds ``count[r] >= 2`` points sorted by (x, y) -> the lower chains as
    stacks ``sx, sy (m + 1, R)`` (row 0 NaN, rows 1..k[r] the chain from left to right) and ``k (R,)``.
    The loop runs over the m points; each step works on the columns that still have points (longest
    first, so a prefix) and pops only in the columns that need it.
    """
    m, r = x.shape
    perm = np.argsort(-count, kind="stable")
    x, y, count = x[:, perm], y[:, perm], count[perm]
    active = (count[None, :] > np.arange(m)[:, None]).sum(axis=1)  # columns with a point at step i
    sx, sy = np.empty((m + 1, r)), np.empty((m + 1, r))
    sx[0] = sy[0] = np.nan  # below the bottom of every stack: no turn is ever tested against it
    sx[1:3], sy[1:3] = x[:2], y[:2]
    fx, fy = sx.reshape(-1), sy.reshape(-1)
    top = np.arange(r) + 2 * r  # flat index of each stack's top
    t2x, t2y = x[0].copy(), y[0].copy()  # the point below the top
    t1x, t1y = x[1].copy(), y[1].copy()  # the top
    for i in range(2, m):
        a = int(active[i])
        px, py = x[i, :a], y[i, :a]
        # pop while the top does not make a strict left turn (collinear and repeated points go too)
        idx = np.flatnonzero((t1x[:a] - t2x[:a]) * (py - t2y[:a]) - (t1y[:a] - t2y[:a]) * (px - t2x[:a]) <= 0)
        while idx.size:
            top[idx] -= r
            ax, ay = t2x[idx], t2y[idx]
            t1x[idx], t1y[idx] = ax, ay
            below = top[idx] - r
            bx, by = fx[below], fy[below]
            t2x[idx], t2y[idx] = bx, by
            idx = idx[(ax - bx) * (py[idx] - by) - (ay - by) * (px[idx] - bx) <= 0]
        top[:a] += r
        fx[top[:a]], fy[top[:a]] = px, py
        t2x[:a], t2y[:a] = t1x[:a], t1y[:a]
        t1x[:a], t1y[:a] = px, py
    inv = np.empty_like(perm)
    inv[perm] = np.arange(r)
    return sx[:, inv], sy[:, inv], ((top - np.arange(r)) // r)[inv]


def _hull_shape(px: np.ndarray, py: np.ndarray, valid: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`hull_shape_xy` for rows with at least 3 valid points."""
    b = px.shape[0]
    srt = _sorted_rel(px, py, valid, count)
    x, y = srt.real, srt.imag
    # lower chains of the hulls (columns :b) and of the hulls turned by 180 degrees (their upper chains, b:)
    # (no Akl-Toussaint pre-filter here: with thousands of hulls it costs more than the pops it saves)
    n = x.shape[1]
    sx, sy, k = _lower_chains(np.concatenate([x.T, -x.T[::-1]], axis=1), np.concatenate([y.T, -y.T[::-1]], axis=1), np.full(2 * b, n))
    area, perimeter, rect = np.empty(b), np.empty(b), np.empty(b)
    by_size = np.argsort(np.maximum(k[:b], k[b:]), kind="stable")  # similar hull sizes share a padded width
    for i in range(0, b, _RECT_CHUNK):
        rows = by_size[i : i + _RECT_CHUNK]
        both = np.concatenate([rows, rows + b])
        area[rows], perimeter[rows], rect[rows] = _chain_shape(sx[:, both], sy[:, both], k[both])
    return area, perimeter, rect


def _chain_shape(sx: np.ndarray, sy: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area, perimeter and minimum-area rectangle of hulls given as chain stacks ``(m + 1, 2b)`` of
    :func:`_lower_chains`: columns :b the lower chains, b: the upper chains turned by 180 degrees."""
    b = k.size // 2
    width = int(k.max())
    cols = np.arange(2 * b)
    pad = np.arange(1, width + 1)[:, None] > k
    cx = np.where(pad, sx[k, cols], sx[1 : width + 1])  # (K, 2b) each chain padded with its last vertex
    cy = np.where(pad, sy[k, cols], sy[1 : width + 1])
    ex, ey = cx[1:] - cx[:-1], cy[1:] - cy[:-1]
    length = np.hypot(ex, ey)
    # the two chains close the polygon; a turn by 180 degrees keeps cross products and lengths
    area2 = (cx[:-1] * cy[1:] - cy[:-1] * cx[1:]).sum(axis=0)
    area = np.abs(0.5 * (area2[:b] + area2[b:]))
    perimeter = length.sum(axis=0)
    perimeter = perimeter[:b] + perimeter[b:]
    # minimum-area rectangle: one side lies on a hull edge; every hull vertex is projected on every hull edge
    # (both chains in the hull's own frame: the upper chain turned back, its edges with it)
    flip = np.concatenate([np.ones(b), -np.ones(b)])
    vx, vy = (cx * flip).reshape(-1, b), (cy * flip).reshape(-1, b)  # (V, b): the two chains' vertices, interleaved
    inv = flip / np.maximum(length, _EPS)
    ux, uy = (ex * inv).reshape(-1, b), (ey * inv).reshape(-1, b)  # (E, b) unit edges, interleaved the same way
    along = ux * vx[:, None] + uy * vy[:, None]  # (V, E, b)
    across = ux * vy[:, None] - uy * vx[:, None]
    # every vertex lies left of (or on) each counter-clockwise edge: the smallest distance across is the edge's own
    ax, ay = (cx[:-1] * flip).reshape(-1, b), (cy[:-1] * flip).reshape(-1, b)
    rect = (along.max(axis=0) - along.min(axis=0)) * (across.max(axis=0) - (ux * ay - uy * ax))
    rect = np.where(length.reshape(-1, b) > _EPS, rect, np.inf).min(axis=0)
    rect = np.where(np.isfinite(rect), rect, 0.0)
    return area, perimeter, rect


_HAND_POINTS = np.r_[LEFT_HAND, RIGHT_HAND]  # (42,) the two hands' points, left first


@_block("hand_shape", 6)
def _hand_shape(lm: np.ndarray) -> np.ndarray:
    m, t = lm.shape[:2]
    xy = np.moveaxis(lm[:, :, _HAND_POINTS, :2], -1, 0).astype(np.float64)  # (2, M, T, 42)
    area, perim, rect = (a.reshape(m, t, 2) for a in hull_shape_xy(xy[0].reshape(-1, N_HAND), xy[1].reshape(-1, N_HAND)))
    hands = lm[:, :, _HAND_POINTS].reshape(m, t, 2, N_HAND, N_COORDS)
    palm = np.linalg.norm(hands[..., MIDDLE_MCP, :] - hands[..., WRIST, :], axis=-1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        circ = np.where(perim > _EPS, 4.0 * np.pi * area / np.maximum(perim, _EPS) ** 2, 0.0)
        rectangularity = np.where(rect > _EPS, area / np.maximum(rect, _EPS), 0.0)
        area_palm = np.where(palm > _EPS, area / np.maximum(palm, _EPS) ** 2, 0.0)
    out = np.stack([circ, rectangularity, area_palm], axis=-1)  # (M, T, 2, 3)
    missing = np.all(np.isnan(xy[0].reshape(m, t, 2, N_HAND)), axis=-1)  # (M, T, 2)
    out = np.where(missing[..., None], np.nan, out)
    return out.reshape(m, t, -1)


def _right_dominant(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(M, T, 75, 3) -> (right (M,) bool, counts (M, 2))``: the dominant hand is the one present in
    more frames (ties: right); ``counts`` = frames with the left / right hand."""
    counts = part_present(lm)[..., 1:].sum(axis=1)  # (M, 2)
    return counts[:, 1] >= counts[:, 0], counts


def _dominant_hand(lm: np.ndarray) -> np.ndarray:
    """The dominant hand's 21 points ``(M, T, 21, 3)`` (see :func:`_right_dominant`)."""
    right, _ = _right_dominant(lm)
    return np.where(right[:, None, None, None], lm[:, :, RIGHT_HAND, :], lm[:, :, LEFT_HAND, :])


@_block("trajectory", N_COORDS * TRAJECTORY_POINTS)
def _trajectory(lm: np.ndarray) -> np.ndarray:
    m, t = lm.shape[:2]
    right, counts = _right_dominant(lm)
    wrist = np.where(right[:, None, None], lm[:, :, RIGHT_HAND.start + WRIST, :], lm[:, :, LEFT_HAND.start + WRIST, :])
    track = np.moveaxis(_interp_fill(np.moveaxis(wrist, 1, -1).astype(np.float64), None, hold_edges=True), -1, 1)  # (M, T, 3)
    if t < 2:
        rel = np.zeros((m, TRAJECTORY_POINTS, N_COORDS))
    else:
        d = track[:, 1:] - track[:, :-1]
        seg = np.sqrt(np.add.reduce(d * d, axis=-1))  # (M, T-1): np.linalg.norm's own arithmetic
        s = np.concatenate([np.zeros((m, 1)), np.cumsum(seg, axis=1)], axis=1)  # (M, T)
        target = s[:, -1:] * (np.arange(1, TRAJECTORY_POINTS + 1) / TRAJECTORY_POINTS)  # (M, K)
        i0 = np.clip((s[:, None, :] <= target[..., None]).sum(axis=-1) - 1, 0, t - 2)  # (M, K)
        rows = np.arange(m)[:, None]
        s0, s1 = s[rows, i0], s[rows, i0 + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.clip(np.where(s1 - s0 > _EPS, (target - s0) / np.maximum(s1 - s0, _EPS), 0.0), 0.0, 1.0)
        p0, p1 = track[rows, i0], track[rows, i0 + 1]  # (M, K, 3)
        rel = p0 + frac[..., None] * (p1 - p0) - track[:, :1, :]
    rel = np.where(counts.max(axis=1)[:, None, None] > 0, rel, 0.0)
    return np.broadcast_to(rel.reshape(m, 1, -1), (m, t, rel.shape[1] * N_COORDS))


@_block("body_relative", 2 * 3 * N_COORDS)
def _body_relative(lm: np.ndarray) -> np.ndarray:
    hand_wrist = np.stack([lm[:, :, LEFT_HAND.start + WRIST, :], lm[:, :, RIGHT_HAND.start + WRIST, :]], axis=2)
    pose_wrist = lm[:, :, [LEFT_WRIST_POSE, RIGHT_WRIST_POSE], :]
    wrist = np.where(np.isnan(hand_wrist), pose_wrist, hand_wrist)  # (M, T, 2, 3)
    nose = lm[:, :, NOSE, :]
    mouth = 0.5 * (lm[:, :, MOUTH_LEFT, :] + lm[:, :, MOUTH_RIGHT, :])
    chest = 0.5 * (lm[:, :, LEFT_SHOULDER, :] + lm[:, :, RIGHT_SHOULDER, :])
    targets = np.stack([nose, mouth, chest], axis=2)  # (M, T, 3, 3)
    vec = targets[:, :, None, :, :] - wrist[:, :, :, None, :]  # (M, T, 2, 3, 3)
    return vec.reshape(*lm.shape[:2], -1)


@_block("presence", 3)
def _presence(lm: np.ndarray) -> np.ndarray:
    return part_present(lm).astype(lm.dtype)


FACE_POINTS = ("mouth", "chin", "forehead", "eyes")
"""Where :func:`_face_relative` measures the hand's distance to, in this order. Chin and forehead are
placed from the eye -> mouth axis of the pose (MediaPipe Pose has no chin or forehead point)."""


def _clip_median(x: np.ndarray) -> np.ndarray:
    """NaN-ignoring median over frames (axis 1) of ``(M, T, ...)``; all-NaN stays NaN."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(x, axis=1)


@_block("face_relative", 2 * 3 + 2 * len(FACE_POINTS), optional=True)
def _face_relative(lm: np.ndarray) -> np.ndarray:
    xy = lm[..., :2].astype(np.float64)
    nose = _clip_median(xy[:, :, NOSE])  # (M, 2): one face position per clip, like the body frame
    eyes = _clip_median(0.5 * (xy[:, :, LEFT_EYE] + xy[:, :, RIGHT_EYE]))
    mouth = _clip_median(0.5 * (xy[:, :, MOUTH_LEFT] + xy[:, :, MOUTH_RIGHT]))
    size = np.linalg.norm(eyes - mouth, axis=-1)  # (M,)
    size = np.where(size > _EPS, size, np.nan)[:, None, None]
    axis = eyes - mouth  # mouth -> eyes
    targets = np.stack([mouth, mouth - 0.7 * axis, eyes + axis, eyes], axis=1)  # (M, 4, 2), FACE_POINTS order
    hand = _dominant_hand(lm)[..., :2].astype(np.float64)  # (M, T, 21, 2)
    right, _ = _right_dominant(lm)
    pose_wrist = np.where(right[:, None, None], xy[:, :, RIGHT_WRIST_POSE], xy[:, :, LEFT_WRIST_POSE])
    wrist = np.where(np.isnan(hand[:, :, WRIST]), pose_wrist, hand[:, :, WRIST])
    centre = hand.mean(axis=2)  # (M, T, 2), NaN where the hand is missing
    points = np.stack([centre, hand[:, :, INDEX_TIP], wrist], axis=2)  # (M, T, 3, 2)
    rel = (points - nose[:, None, None, :]) / size[..., None]
    dist = np.linalg.norm(points[:, :, :2, None, :] - targets[:, None, None, :, :], axis=-1) / size[..., None]  # (M, T, 2, 4)
    return np.concatenate([rel.reshape(*lm.shape[:2], -1), dist.reshape(*lm.shape[:2], -1)], axis=-1)


FINGER_CHAINS: tuple[tuple[int, ...], ...] = ((0, 1, 2, 3, 4), (0, 5, 6, 7, 8), (0, 9, 10, 11, 12), (0, 13, 14, 15, 16), (0, 17, 18, 19, 20))
"""Wrist -> tip chains of the hand points, thumb to pinky (MediaPipe Hands topology)."""


@_block("finger_straightness", 2 * len(FINGER_CHAINS), optional=True)
def _finger_straightness(lm: np.ndarray) -> np.ndarray:
    hand = _dominant_hand(lm)[..., :2].astype(np.float64)  # (M, T, 21, 2)
    chains = np.asarray(FINGER_CHAINS)  # (5, 5)
    bones = np.linalg.norm(np.diff(hand[:, :, chains, :], axis=-2), axis=-1)  # (M, T, 5, 4)
    out = []
    for first in (0, 1):  # from the wrist, from the MCP
        path = bones[..., first:].sum(axis=-1)
        direct = np.linalg.norm(hand[:, :, chains[:, -1], :] - hand[:, :, chains[:, first], :], axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(path > _EPS, direct / np.maximum(path, _EPS), np.nan))
    return np.concatenate(out, axis=-1)


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def _resolve(blocks: Sequence[str] | None) -> list[str]:
    if blocks is None:
        return list(FEATURE_BLOCKS)
    if isinstance(blocks, str):
        raise ValueError(f"blocks must be a sequence of block names, got the string {blocks!r}")
    unknown = [b for b in blocks if b not in _BLOCK_FNS]
    if unknown:
        raise ValueError(f"unknown feature blocks {unknown}; known blocks are {list(FEATURE_BLOCKS) + list(OPTIONAL_BLOCKS)}")
    if len(set(blocks)) != len(blocks):
        raise ValueError(f"feature blocks listed twice: {list(blocks)}")
    return list(blocks)


def feature_dim(blocks: Sequence[str] | None = None) -> int:
    """Width F of :func:`frame_features` for ``blocks`` (default: all of ``FEATURE_BLOCKS``)."""
    dims = {**FEATURE_BLOCKS, **OPTIONAL_BLOCKS}
    return sum(dims[b] for b in _resolve(blocks))


def block_slices(blocks: Sequence[str] | None = None) -> dict[str, slice]:
    """Where each block lies along the feature axis of :func:`frame_features`."""
    out, start = {}, 0
    for b in _resolve(blocks):
        out[b] = slice(start, start + block_dim(b))
        start += block_dim(b)
    return out


def block_dim(name: str) -> int:
    """Width of one block, default or optional (``ValueError`` for an unknown name)."""
    return feature_dim([name])


def _check_norm(norm: np.ndarray) -> np.ndarray:
    arr = np.asarray(norm)
    if arr.ndim < 3 or arr.shape[-2:] != (N_POINTS, N_COORDS):
        raise ValueError(f"normalised landmarks: expected shape (..., T, {N_POINTS}, {N_COORDS}), got {tuple(arr.shape)}")
    if arr.shape[-3] < 1:
        raise ValueError("normalised landmarks: clip has no frames (T = 0)")
    return arr.astype(np.float32, copy=False)


def frame_features(norm: np.ndarray, blocks: Sequence[str] | None = None) -> np.ndarray:
    """Per-frame features ``(..., T, 75, 3) -> (..., T, F)`` float32, finite, missing -> 0.

    ``blocks`` picks and orders blocks of ``FEATURE_BLOCKS`` (default: all, F = ``feature_dim()``).
    """
    names = _resolve(blocks)
    arr = _check_norm(norm)
    lead, t = arr.shape[:-3], arr.shape[-3]
    flat = arr.reshape(-1, t, N_POINTS, N_COORDS)
    slices = _layout(tuple(names))
    f = slices[names[-1]].stop if names else 0
    out = np.empty((flat.shape[0], t, f), dtype=np.float32)
    for start in range(0, flat.shape[0], _CHUNK):
        chunk = flat[start : start + _CHUNK]
        dst = out[start : start + _CHUNK]
        with np.errstate(invalid="ignore", over="ignore"):
            for b in names:  # each block straight into its columns (casting to float32 on the way)
                dst[..., slices[b]] = _BLOCK_FNS[b](chunk)
        _finite(dst)
    return out.reshape(*lead, t, f)


@lru_cache(maxsize=64)
def _layout(names: tuple[str, ...]) -> dict[str, slice]:
    """:func:`block_slices` of resolved block names, computed once per selection."""
    return block_slices(list(names))


_LIMIT32 = np.float32(FEATURE_LIMIT)
_ZERO32 = np.float32(0.0)


def _finite(x: np.ndarray) -> None:
    """In place on float32 ``x``: NaN -> 0, then clipped to +-``FEATURE_LIMIT`` (inf -> the limit); the values of
    ``np.clip(np.nan_to_num(x, nan=0, posinf=L, neginf=-L), -L, L)`` in four plain passes instead of masked
    writes: the positive part ``fmin(fmax(x, 0), L)`` plus the negative part ``fmax(fmin(x, 0), -L)`` (``fmax``
    and ``fmin`` drop a NaN, and ``x + 0`` is ``x`` exactly)."""
    neg = np.fmin(x, _ZERO32)
    np.fmax(neg, -_LIMIT32, out=neg)
    np.fmax(x, _ZERO32, out=x)
    np.fmin(x, _LIMIT32, out=x)
    x += neg


def frame_mask(norm: np.ndarray) -> np.ndarray:
    """``(..., T, 75, 3) -> (..., T)`` bool: True where the pose or either hand is present."""
    return part_present(_check_norm(norm)).any(axis=-1)


POOL_STATS: tuple[str, ...] = ("mean", "std", "min", "max", "first", "last")


def pooled_dim(f: int) -> int:
    """Width of :func:`pool_features` for F frame features: ``len(POOL_STATS) * F``."""
    return len(POOL_STATS) * int(f)


def pool_features(feats: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked per-clip statistics ``(..., T, F), (..., T) -> (..., 6F)`` float32.

    Concatenates the mean, std, min, max, first and last valid frame (``POOL_STATS``) over the
    frames where ``mask`` is True. A clip with no valid frame gets zeros (always finite).
    """
    x = np.asarray(feats, dtype=np.float32)
    m = np.asarray(mask, dtype=bool)
    if x.ndim < 2 or m.shape != x.shape[:-1]:
        raise ValueError(f"pool_features: mask shape {m.shape} must equal the features' shape without F, {x.shape[:-1]}")
    if x.shape[-2] < 1:
        raise ValueError("pool_features: clip has no frames (T = 0)")
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=FEATURE_LIMIT, neginf=-FEATURE_LIMIT)
    lead, (t, f) = x.shape[:-2], x.shape[-2:]
    x, m = x.reshape(-1, t, f), m.reshape(-1, t)
    out = np.empty((x.shape[0], len(POOL_STATS) * f), dtype=np.float32)  # each statistic straight into its columns
    for i in range(0, x.shape[0], _POOL_CHUNK):  # chunks small enough for the temporaries to stay in the cache
        _pool_into(x[i : i + _POOL_CHUNK], m[i : i + _POOL_CHUNK], out[i : i + _POOL_CHUNK])
    return out.reshape(*lead, -1)


_POOL_CHUNK = 64  # clips per pooling chunk


def _pool_into(x: np.ndarray, m: np.ndarray, out: np.ndarray) -> None:
    """:func:`pool_features` of finite ``x (M, T, F)`` float32 and ``m (M, T)`` into ``out (M, 6F)``."""
    t, f = x.shape[1:]
    mean_o, std_o, min_o, max_o, first_o, last_o = (out[:, i * f : (i + 1) * f] for i in range(len(POOL_STATS)))
    mm = m[..., None]
    full = bool(m.all())  # every frame valid (the common case): the same numbers without the masking passes
    n = m.sum(axis=-1)[:, None]  # (M, 1)
    any_ = n > 0
    denom = np.maximum(n, 1).astype(np.float64)
    w = None if full else mm.astype(np.float32)
    mean = (x if full else x * w).sum(axis=-2, dtype=np.float64) / denom
    mean_o[...] = mean
    dev = x - mean[:, None, :].astype(np.float32)
    dev *= dev
    if not full:
        dev *= w
    std_o[...] = np.sqrt(np.maximum(dev.sum(axis=-2, dtype=np.float64) / denom, 0.0))
    if full:
        np.min(x, axis=-2, out=min_o)
        np.max(x, axis=-2, out=max_o)
    else:
        min_o[...] = np.where(any_, np.where(mm, x, np.inf).min(axis=-2), 0.0)
        max_o[...] = np.where(any_, np.where(mm, x, -np.inf).max(axis=-2), 0.0)
    rows = np.arange(x.shape[0])
    first_o[...] = np.where(any_, x[rows, np.argmax(m, axis=-1)], 0.0)
    last_o[...] = np.where(any_, x[rows, t - 1 - np.argmax(m[:, ::-1], axis=-1)], 0.0)

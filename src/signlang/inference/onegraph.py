"""One ONNX graph from raw landmarks to probabilities (``model.onnx`` of an ONNX export).

``landmarks (N, T, 75, 3)`` float32 (NaN = not detected; frames at or after a clip's length are
ignored) + ``lengths (N,)`` int64 -> normalisation -> the feature table(s) -> every base model ->
the combiner -> the temperature -> ``probabilities (N, C)`` in the bundle's class order, plus
``probs__<base>`` ``(N, C)`` for each base model (what :meth:`OnnxBackend.run` returns as ``by_model``).

How it is built (:func:`write_onegraph`):

* :class:`FrontEnd` is a torch re-implementation of :func:`~signlang.features.normalize.normalize_clips`
  and :func:`~signlang.inference.plan.compute_features`, vectorised over clips of different lengths
  (every per-clip quantity, the smoothing window and the resampling positions included, is computed
  from ``lengths`` inside the graph) and using float64 where the numpy code does, in numpy's rounding
  order, so the numbers are the same up to rounding (the joint angles of nearly straight fingers move in
  the third digit with one ulp of the coordinates, so the order matters). It is exported with the
  TorchScript exporter, dynamic N and T.
* Written for ONNX Runtime's costs (per element, per node): gap filling per body part (MediaPipe's parts
  are all or nothing) with whole frames gathered as rows; the fill of ``fill_gaps`` and the smoothing's
  own as one fill; the Savitzky-Golay smoothing as one ``(T, T)`` operator per clip and one batched
  MatMul; arithmetic instead of broadcasting ``Where`` (several times slower per element there).
* The convex-hull block (``hand_shape``) has no ONNX operator and the numpy monotone chain pops a
  data-dependent number of points; the same quantity is computed in a fixed number of vectorised steps
  (:func:`_hull_shape`): a pairwise ``(B, 21, 21)`` corner test, the corners in angular order around the
  centroid, the shoelace area, the perimeter and the minimum-area rectangle over the hull's edges, for
  the hands that have 3 or more points only.
* The per-model graphs written by :mod:`signlang.inference.export` (networks, XGBoost through the
  ONNX-ML tree ensemble, the linear or XGBoost combiner) are prefixed and wired to the front end's
  outputs; the column placement, the temperature (``softmax(log p / T)``, float64) and the output
  columns are a few nodes written here.
"""

from __future__ import annotations

import contextlib
import json
import io
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from signlang.features.engineering import ANGLE_PAIRS, FEATURE_BLOCKS, FEATURE_LIMIT, POOL_STATS, TRAJECTORY_POINTS
from signlang.features.normalize import SHOULDER_PER_PALM, NormalizeConfig, _savgol_weights
from signlang.inference.onnx_backend import ONEGRAPH_FILE, ONEGRAPH_INPUTS, ONEGRAPH_OUTPUT, pad_clips
from signlang.inference.plan import EnsemblePlan, blocks_from_key
from signlang.landmarks.layout import (
    LEFT_HAND,
    LEFT_SHOULDER,
    LEFT_WRIST_POSE,
    MIDDLE_MCP,
    MIRROR_PERMUTATION,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    N_HAND,
    N_POINTS,
    NOSE,
    POSE,
    RIGHT_HAND,
    RIGHT_SHOULDER,
    RIGHT_WRIST_POSE,
    WRIST,
)

BY_MODEL_PREFIX = "probs__"
_EPS_NORM = 1e-12  # signlang.features.normalize._EPS
_EPS_FEAT = 1e-9  # signlang.features.engineering._EPS
SUPPORTED_BLOCKS = tuple(FEATURE_BLOCKS)
"""Feature blocks the graph computes (the default table); a bundle using an optional block gets no ``model.onnx``."""


class OneGraphUnsupported(ValueError):
    """The bundle uses a setting the one graph does not implement (the split files still work)."""


# ----------------------------------------------------------------------------------------------
# normalisation
# ----------------------------------------------------------------------------------------------
def _neighbours(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Previous / next valid index (inclusive) along the last axis of ``valid (M, T)``: -1 / T where none.

    A max over a ``(M, T, T)`` product with a triangular table (no scatter, no Where): M is a few series per clip."""
    t = valid.shape[-1]
    idx = torch.arange(t, dtype=torch.int64)
    s_le_t = (idx[None, :] <= idx[:, None]).to(torch.float32)  # (t, s)
    s_ge_t = (idx[None, :] >= idx[:, None]).to(torch.float32)
    v = valid.to(torch.float32)[:, None, :]  # (M, 1, s)
    prev = (v * (s_le_t * (idx + 1).to(torch.float32))).amax(dim=-1).to(torch.int64) - 1  # none: -1
    nxt = t - (v * (s_ge_t * (t - idx).to(torch.float32))).amax(dim=-1).to(torch.int64)  # none: t
    return prev, nxt


def _interp_fill(x: torch.Tensor, max_gap: int | None, hold_edges: bool) -> torch.Tensor:
    """``signlang.features.normalize._interp_fill`` of ``x (M, T)`` float64 (NaN runs filled linearly)."""
    t = x.shape[-1]
    valid = ~torch.isnan(x)
    prev, nxt = _neighbours(valid)
    has_prev, has_next = prev >= 0, nxt < t
    xp = torch.gather(x, 1, torch.clamp(prev, 0, t - 1))
    xn = torch.gather(x, 1, torch.clamp(nxt, 0, t - 1))
    idx = torch.arange(t, dtype=torch.int64).expand_as(prev)
    w = (idx - prev).to(torch.float64) / torch.clamp(nxt - prev, min=1).to(torch.float64)
    interior = ~valid & has_prev & has_next
    if max_gap is not None:
        interior = interior & ((nxt - prev - 1) <= max_gap)
    out = torch.where(interior, xp + (xn - xp) * w, x)
    if hold_edges:
        out = torch.where(~valid & ~has_prev, xn, out)
        out = torch.where(~valid & ~has_next, xp, out)
    return out


def _series(lm: torch.Tensor) -> torch.Tensor:
    """``(N, T, P, C) -> (N*P*C, T)``."""
    return lm.permute(0, 2, 3, 1).reshape(-1, lm.shape[1])


def _unseries(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    n, t, p, c = like.shape
    return x.reshape(n, p, c, t).permute(0, 3, 1, 2)


def _nanmedian(x: torch.Tensor) -> torch.Tensor:
    """NaN-ignoring median over the last axis (all-NaN -> NaN), as ``normalize._nanmedian``."""
    nan = torch.isnan(x)
    n = (~nan).sum(dim=-1, keepdim=True)
    srt = torch.sort(torch.where(nan, torch.full_like(x, math.inf), x), dim=-1).values
    lo = torch.gather(srt, -1, torch.clamp(torch.div(n - 1, 2, rounding_mode="floor"), min=0))
    hi = torch.gather(srt, -1, torch.clamp(torch.div(n, 2, rounding_mode="floor"), min=0))
    med = torch.where(n % 2 == 1, lo, (lo + hi) / 2)
    return torch.where(n > 0, med, torch.full_like(med, math.nan))[..., 0]


def _norm(v: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((v * v).sum(dim=-1))


class Normalizer(nn.Module):
    """:func:`~signlang.features.normalize.normalize_clips` in torch: ``(N, T, 75, 3), (N,) -> (N, target, 75, 3)`` float32."""

    def __init__(self, cfg: NormalizeConfig) -> None:
        super().__init__()
        if cfg.target_frames is None:
            raise OneGraphUnsupported("the one graph needs NormalizeConfig.target_frames (clips of any length in one batch)")
        if cfg.level_shoulders:
            raise OneGraphUnsupported("NormalizeConfig.level_shoulders is not implemented in the one graph (atan2 median)")
        self.cfg = cfg
        window, order = int(cfg.smooth_window), int(cfg.smooth_order)
        # One (window x window) coefficient table per possible effective window w (odd, w > order, w >= 3):
        # row r is the weight of sample s0 + j for output t, r = t - s0 (edges: the least-squares fit; middle:
        # the Savitzky-Golay kernel). Table 0 is the identity (clips too short to smooth).
        tables = [np.zeros((window, window))]
        tables[0][0, 0] = 1.0
        windows = [1]
        for w in range(3, window + 1, 2):
            if w <= order:
                continue
            from scipy.signal import savgol_coeffs

            _, left, right = _savgol_weights(w, order)
            g = np.zeros((window, window))
            half = w // 2
            g[:half, :w] = left
            g[half, :w] = savgol_coeffs(w, order)[::-1]
            g[w - half : w, :w] = right
            tables.append(g)
            windows.append(w)
        self.register_buffer("tables", torch.tensor(np.stack(tables), dtype=torch.float64), persistent=False)
        self.register_buffer("windows", torch.tensor(windows, dtype=torch.int64), persistent=False)
        self.register_buffer("mirror", torch.tensor(np.asarray(MIRROR_PERMUTATION), dtype=torch.int64), persistent=False)
        self.register_buffer("negate_x", torch.tensor([-1.0, 1.0, 1.0] * N_POINTS, dtype=torch.float32), persistent=False)
        self.register_buffer("coord_sum", torch.tensor(np.tile(np.eye(3), (N_POINTS, 1)), dtype=torch.float32), persistent=False)  # (225, 3)
        self.register_buffer("part_points", torch.tensor([POSE.stop - POSE.start, N_HAND, N_HAND], dtype=torch.float64), persistent=False)
        self.part_cols = [slice(3 * part.start, 3 * part.stop) for part in (POSE, LEFT_HAND, RIGHT_HAND)]

    def forward(self, lm: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        n, t = lm.shape[0], lm.shape[1]
        frame = torch.arange(t, dtype=torch.int64)
        inside = frame[None, :] < lengths[:, None]  # (N, T)
        x = lm.reshape(n, t, -1)  # (N, T, 225); frames at or after a clip's length are never read (present is False)
        # Per part, not per series: a part is present in a frame when all its values are (MediaPipe's parts are
        # all or nothing, and the data's converters make them so), so every (point, coordinate) series of a part
        # has the part's gaps, and neighbours and weights are found once per part.
        present = torch.stack([~torch.isnan(x[:, :, c]).any(dim=-1) for c in self.part_cols], dim=1) & inside[:, None, :]  # (N, 3, T)
        x, kept = self._smooth(x, present, lengths)
        x = x.reshape(lm.shape)  # (N, T, 75, 3) float32, NaN where missing
        centre, scale = self._body_frame(x, kept)
        # float64, then float32, then resampled: numpy's order, so that every value rounds the same way (the
        # joint angles of nearly straight fingers change in the third digit with an ulp of the coordinates)
        n, t = x.shape[0], x.shape[1]
        c225 = centre.repeat(1, N_POINTS)[:, None, :]  # (N, 1, 225): ONNX Runtime broadcasts a long inner axis fast
        x = ((x.reshape(n, t, -1).to(torch.float64) - c225) / scale[:, None, None]).to(torch.float32).reshape(lm.shape)
        flip = self._left_dominant(x) if self.cfg.canonical_hand else None
        x = self._resample(x, lengths, int(self.cfg.target_frames))
        if flip is not None:  # mirroring is exact, so it commutes with the resampling: done on target frames
            mirrored = (x[:, :, self.mirror].reshape(x.shape[0], x.shape[1], -1) * self.negate_x).reshape(x.shape)  # -x is exact
            x = torch.where(flip[:, None, None, None], mirrored, x)
        return x

    def _fill(self, x: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The gap filling of ``normalize_clip`` followed by the smoothing's own (``_interp_fill`` with ``max_gap``,
        then with no limit and the edges held) on ``x (N, T, 225)`` whose parts are ``present (N, 3, T)``, as one
        fill: the second fill's neighbours are frames present from the start (a run of missing frames is filled
        whole or not at all), so both together are a fill of every gap with the edges held. Returns the filled
        series (float64, zero where a part is never present) and ``(N, 3, T)`` where the first fill alone leaves
        values (the frames the smoothing gives back)."""
        n, t = x.shape[0], x.shape[1]
        prev, nxt = _neighbours(present.reshape(n * 3, t))
        prev, nxt = prev.reshape(n, 3, t), nxt.reshape(n, 3, t)
        has_prev, has_next = prev >= 0, nxt < t
        idx = torch.arange(t, dtype=torch.int64)
        w = (idx - prev).to(torch.float64) / torch.clamp(nxt - prev, min=1).to(torch.float64)  # (N, 3, T)
        interior = ~present & has_prev & has_next
        kept = present | (interior & ((nxt - prev - 1) <= self.cfg.max_gap))
        src0 = torch.where(has_prev, prev, nxt)  # held edges: both neighbours are the one that exists
        src1 = torch.where(has_next, nxt, prev)
        w = torch.where(interior, w, torch.zeros_like(w))
        # Only present frames are read (a part never present reads anything: its columns stay apart through the
        # smoothing and are NaN at the end), so NaN needs no replacing.
        x64 = x.to(torch.float64)  # numpy's arithmetic
        out = []
        base = (torch.arange(n, dtype=torch.int64) * t)[:, None]  # row of frame 0 of each clip in (N*T, ...)
        for part, c in enumerate(self.part_cols):  # pose (N*T, 99), left and right hand (N*T, 63): whole rows
            rows = x64[:, :, c].reshape(n * t, -1)
            xp = rows[(base + torch.clamp(src0[:, part], 0, t - 1)).reshape(-1)]
            xn = rows[(base + torch.clamp(src1[:, part], 0, t - 1)).reshape(-1)]
            out.append((xp + (xn - xp) * w[:, part].reshape(-1, 1)).reshape(n, t, -1))
        return torch.cat(out, dim=-1), kept

    def _smooth(self, x: torch.Tensor, present: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``normalize.fill_gaps`` then ``normalize._smooth`` of ``x (N, T, 225)`` (``present (N, 3, T)``: where
        its parts have values): the filled series times one ``(T, T)`` smoothing operator per clip (the
        Savitzky-Golay kernel inside, the edge fits at both ends, for the clip's own length), one batched MatMul
        in float64; NaN where the gap filling leaves none. Returns it (float32) and ``kept (N, 3, T)``."""
        window = int(self.cfg.smooth_window)
        n, t = x.shape[0], x.shape[1]
        filled, kept = self._fill(x, present)  # (N, T, 225) float64
        w = torch.clamp(lengths, max=window)
        w = w - (w % 2 == 0).to(torch.int64)
        which = (self.windows[None, :] == w[:, None]).to(torch.int64)  # (N, n_tables)
        table = which.argmax(dim=1) * which.amax(dim=1)  # no table for w: identity
        w_eff = self.windows[table]  # (N,)
        half = torch.div(w_eff, 2, rounding_mode="floor")
        frame = torch.arange(t, dtype=torch.int64)[None, :]
        s0 = torch.minimum(torch.clamp(frame - half[:, None], min=0), torch.clamp(lengths - w_eff, min=0)[:, None])  # (N, T)
        r = torch.clamp(frame - s0, max=window - 1)
        coef = self.tables[table[:, None], r]  # (N, T, window): output t's weight of sample s0 + j
        d = frame[:, None, :] - s0[:, :, None]  # (N, T, T): sample s as offset j from s0
        inside = (d >= 0) & (d < window)
        op = torch.where(inside, torch.gather(coef, 2, torch.clamp(d, 0, window - 1)), torch.zeros_like(d, dtype=torch.float64))
        y = torch.matmul(op, filled).to(torch.float32)
        nan = torch.full_like(y[:, :, :1], math.nan)
        return torch.cat([torch.where(kept[:, part, :, None], y[:, :, c], nan) for part, c in enumerate(self.part_cols)], dim=-1), kept

    def _body_frame(self, x: torch.Tensor, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``normalize._body_frame_params`` of ``x (N, T, 75, 3)`` float32 whose parts have values where ``kept
        (N, 3, T)``: centre ``(N, 3)`` and scale ``(N,)`` float64. The fallbacks for clips without shoulders
        (centroid, spread) sum in float32 and are rounded differently from numpy (about 1e-7 relative)."""
        sh = x[:, :, [LEFT_SHOULDER, RIGHT_SHOULDER]].to(torch.float64)  # (N, T, 2, 3)
        ls, rs = sh[:, :, 0], sh[:, :, 1]
        centre = _nanmedian((0.5 * (ls + rs)).transpose(1, 2))  # (N, 3)
        # the fallbacks (no shoulders) from sums done as MatMuls over the 225 values of a frame, NaN as 0
        n, t = x.shape[0], x.shape[1]
        z = x.reshape(n, t, -1)
        z = torch.where(torch.isnan(z), torch.zeros_like(z), z)  # (N, T, 225)
        total = torch.matmul(z, self.coord_sum).to(torch.float64)  # (N, T, 3): per coordinate over the present points
        count = torch.matmul(kept.transpose(1, 2).to(torch.float64), self.part_points)  # (N, T): present points
        centroid = torch.where(count[..., None] > 0, total / torch.clamp(count, min=1)[..., None], torch.full_like(total, math.nan))
        fallback = _nanmedian(centroid.transpose(1, 2))
        centre = torch.where(torch.isnan(centre).any(dim=-1, keepdim=True), fallback, centre)
        scale = _nanmedian(_norm(ls - rs))  # (N,)
        hands = x[:, :, [LEFT_HAND.start + MIDDLE_MCP, RIGHT_HAND.start + MIDDLE_MCP, LEFT_HAND.start + WRIST, RIGHT_HAND.start + WRIST]].to(torch.float64)
        palms = _norm(hands[:, :, :2] - hands[:, :, 2:])  # (N, T, 2)
        palm = _nanmedian(palms.reshape(palms.shape[0], -1))
        scale = torch.where(~(scale > _EPS_NORM), SHOULDER_PER_PALM * palm, scale)
        # RMS distance of the present points from the centre: sum |p|^2 - 2 c . sum p + n |c|^2 over them
        sq = torch.matmul(z * z, self.coord_sum).sum(dim=(1, 2)).to(torch.float64)  # (N,)
        c0 = torch.where(torch.isnan(centre), torch.zeros_like(centre), centre)
        npts = count.sum(dim=1)
        sq = sq - 2 * (c0 * total.sum(dim=1)).sum(dim=-1) + npts * (c0 * c0).sum(dim=-1)
        spread = torch.sqrt(torch.clamp(sq, min=0.0) / npts)  # 0/0 = NaN
        scale = torch.where(~(scale > _EPS_NORM), spread, scale)
        scale = torch.where(~(scale > _EPS_NORM) & ~torch.isnan(centre[:, 0]), torch.ones_like(scale), scale)
        return centre, scale

    @staticmethod
    def _left_dominant(x: torch.Tensor) -> torch.Tensor:
        """``normalize.left_dominant`` of body-frame ``x (N, T, 75, 3)``: ``(N,)`` bool."""
        stats = []
        for hand in (LEFT_HAND, RIGHT_HAND):
            y = x[:, :, hand.start + WRIST, 1]  # (N, T)
            present = ~torch.isnan(y)
            cnt = present.sum(dim=-1)
            mean = torch.where(present, y, torch.zeros_like(y)).sum(dim=-1) / torch.clamp(cnt, min=1).to(y.dtype)
            stats.append((cnt, torch.where(cnt > 0, mean, torch.full_like(mean, math.inf))))
        (n_left, y_left), (n_right, y_right) = stats
        return (n_left > n_right) | ((n_left == n_right) & (y_left < y_right))

    @staticmethod
    def _resample(x: torch.Tensor, lengths: torch.Tensor, target: int) -> torch.Tensor:
        last = (lengths - 1).to(torch.float64)  # (N,)
        k = torch.arange(target, dtype=torch.float64)
        step = last / max(target - 1, 1)
        pos = k[None, :] * step[:, None]  # np.linspace(0, L - 1, target)
        if target > 1:
            pos = torch.cat([pos[:, :-1], last[:, None]], dim=1)
        pos = torch.minimum(torch.clamp(pos, min=0.0), last[:, None])
        i0 = torch.floor(pos).to(torch.int64)
        i1 = torch.minimum(i0 + 1, (lengths - 1)[:, None])
        w = (pos - i0.to(torch.float64)).to(torch.float32).reshape(-1, 1)
        n, t = x.shape[0], x.shape[1]
        rows = x.reshape(n * t, -1)  # whole frames: a Gather of rows, not an element-wise gather
        base = (torch.arange(n, dtype=torch.int64) * t)[:, None]
        a, b = rows[(base + i0).reshape(-1)], rows[(base + i1).reshape(-1)]  # (N * target, 225)
        return torch.where(w == 0, a, a * (1 - w) + b * w).reshape(n, target, x.shape[2], x.shape[3])


# ----------------------------------------------------------------------------------------------
# features
# ----------------------------------------------------------------------------------------------
def _hands(lm: torch.Tensor) -> torch.Tensor:
    """``(N, T, 75, 3) -> (N, T, 2, 21, 3)``."""
    return torch.stack([lm[:, :, LEFT_HAND], lm[:, :, RIGHT_HAND]], dim=2)


def _part_present(lm: torch.Tensor) -> torch.Tensor:
    """``(N, T, 75, 3) -> (N, T, 3)`` bool: pose, left hand, right hand."""
    return torch.stack([~torch.isnan(lm[:, :, s, 0]).all(dim=-1) for s in (POSE, LEFT_HAND, RIGHT_HAND)], dim=-1)


def _gradient(x: torch.Tensor) -> torch.Tensor:
    """``np.gradient(x, axis=1)`` of ``(N, T, F)`` (T static)."""
    if x.shape[1] < 2:
        return torch.zeros_like(x)
    mid = (x[:, 2:] - x[:, :-2]) / 2.0
    return torch.cat([x[:, 1:2] - x[:, :1], mid, x[:, -1:] - x[:, -2:-1]], dim=1)


def _diamond(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A monotone stand-in for the angle of the vector ``(a, b)``: 0 along +a, increasing counter-clockwise, in [0, 4)."""
    s = torch.clamp(torch.abs(a) + torch.abs(b), min=1e-300)
    return torch.where(b >= 0, torch.where(a >= 0, b / s, 1 - a / s), torch.where(a < 0, 2 - b / s, 3 + a / s))


def _hull_shape(pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Area, perimeter and minimum-area rectangle of the 2-D convex hulls of ``pts (B, n, 2)`` float64 (NaN rows
    ignored): ``engineering.hull_shape`` in a fixed number of vectorised steps (see the module docstring).

    1. A point is a hull corner when the other points, seen from it, lie within less than half a turn: from each
       point, the most clockwise and the most counter-clockwise of the others (angles measured from the direction
       to the centroid, which lies inside the hull) are found with one ``(B, n, n)`` pass, and the corner test is
       the sign of their cross product (same direction: the end of a collinear set). Points in the middle of an
       edge and inside the hull are not corners.
    2. The corners sorted by angle around the centroid are the hull polygon: shoelace area and perimeter over
       consecutive corners, and the minimum-area rectangle over its edges (one side of it lies on a hull edge),
       on the first ``max corners`` columns only.
    A repeated corner adds a zero-length edge, which changes nothing."""
    n = pts.shape[1]
    missing = torch.isnan(pts)  # (B, n, 2); a point's coordinates are missing together (``engineering`` drops rows)
    valid = ~missing[..., 0]
    count = valid.sum(dim=-1, keepdim=True)
    # a missing point takes the place of the first present one: a repeated point changes no hull (one same-shape
    # Where: ONNX Runtime's broadcasting Where is slow)
    first = valid.to(torch.int64).argmax(dim=-1, keepdim=True)[..., None].expand(-1, 1, 2)
    p = torch.where(missing, torch.gather(torch.where(missing, torch.zeros_like(pts), pts), 1, first).expand_as(pts), pts)
    # the reference point: the mean of the points (the first counted again for each missing one), inside the hull
    centre = p.mean(dim=1, keepdim=True)
    x, y = p[..., 0], p[..., 1]
    rx, ry = x - centre[..., 0], y - centre[..., 1]  # (B, n): from the centroid
    # 1. corners, decided in float32 (a wrong decision needs a corner within ~1e-7 of a straight angle, where
    # either answer gives the same area to that precision)
    fx, fy = rx.to(torch.float32), ry.to(torch.float32)
    vx, vy = fx[:, None, :] - fx[:, :, None], fy[:, None, :] - fy[:, :, None]  # (B, i, k): p_k - p_i
    ox, oy = -fx[:, :, None], -fy[:, :, None]  # reference direction: p_i -> centroid
    a = ox * vx + oy * vy  # |o||v| cos(angle)
    vv = vx * vx + vy * vy
    r2 = ox * ox + oy * oy
    z = (vv == 0).to(vv.dtype)  # p_i itself and its repeats: they never count
    q = a * torch.abs(a) / (vv + z)  # |o|^2 cos|cos|, increasing with cos
    left = (ox * vy - oy * vx >= 0).to(q.dtype)
    # increasing with the angle in (-pi, pi]: -q on the left (angles [0, pi]), q - 2|o|^2 on the right; arithmetic,
    # not Where (ONNX Runtime's Where is several times slower per element)
    key = q - 2 * r2 + left * (2 * (r2 - q))
    same = z * 1e30
    lo = (key + same).argmin(dim=-1)  # (B, n): the most clockwise other point
    hi = (key - same).argmax(dim=-1)  # the most counter-clockwise
    ax, ay = torch.gather(fx, 1, lo) - fx, torch.gather(fy, 1, lo) - fy  # the same differences as vx, vy
    bx, by = torch.gather(fx, 1, hi) - fx, torch.gather(fy, 1, hi) - fy
    cross, dot = ax * by - ay * bx, ax * bx + ay * by
    others = (ax != 0) | (ay != 0)  # some other point differs from p_i
    corner = others & (r2[..., 0] > 0) & ((cross > 0) | ((cross == 0) & (dot > 0))) & (count >= 3)
    # 2. the polygon: corners in angular order around the centroid, the others after them
    order_key = torch.where(corner, _diamond(rx, ry), torch.full_like(rx, 10.0))
    order = torch.topk(order_key, n, dim=-1, largest=False, sorted=True).indices
    k = corner.sum(dim=-1, keepdim=True)  # (B, 1) corners per hull
    sx, sy = torch.gather(rx, 1, order), torch.gather(ry, 1, order)
    pos = torch.arange(n, dtype=torch.int64)[None, :]
    nxt = torch.where(pos + 1 < k, pos + 1, torch.zeros_like(pos))
    tx, ty = torch.gather(sx, 1, nxt), torch.gather(sy, 1, nxt)
    edge = pos < k
    ex, ey = tx - sx, ty - sy
    length = torch.sqrt(ex * ex + ey * ey)
    zero = torch.zeros_like(sx)
    area2 = torch.where(edge, sx * ty - sy * tx, zero).sum(dim=-1)
    perimeter = torch.where(edge, length, zero).sum(dim=-1)
    ux, uy = ex / torch.clamp(length, min=_EPS_FEAT), ey / torch.clamp(length, min=_EPS_FEAT)  # (B, n) edges
    # the rectangle: each hull edge's extent along and across it, over the corners (the other sorted places hold
    # the first corner again, so no mask is needed), on the first max(k) places only
    kmax = torch.clamp(k.max(), min=1)
    cx, cy = torch.where(edge, sx, sx[:, :1])[:, :kmax], torch.where(edge, sy, sy[:, :1])[:, :kmax]
    ex_, ey_ = ux[:, :kmax, None], uy[:, :kmax, None]
    along = ex_ * cx[:, None, :] + ey_ * cy[:, None, :]  # (B, edge, corner)
    across = ex_ * cy[:, None, :] - ey_ * cx[:, None, :]
    span = (along.amax(dim=-1) - along.amin(dim=-1)) * (across.amax(dim=-1) - across.amin(dim=-1))  # (B, kmax)
    span = torch.cat([span, torch.zeros_like(sx)], dim=1)[:, :n]
    rect = torch.where(edge & (length > _EPS_FEAT), span, torch.full_like(span, math.inf)).amin(dim=-1)
    rect = torch.where(torch.isfinite(rect), rect, torch.zeros_like(rect))
    return torch.abs(0.5 * area2), perimeter, rect


class Features(nn.Module):
    """The default feature blocks of :func:`~signlang.features.engineering.frame_features`, the frame mask and
    :func:`~signlang.features.engineering.pool_features`, on normalised ``(N, T, 75, 3)`` float32 (T static)."""

    def __init__(self) -> None:
        super().__init__()
        pairs = np.asarray(ANGLE_PAIRS)
        for name, arr in (("a0", pairs[:, 0, 0]), ("a1", pairs[:, 0, 1]), ("b0", pairs[:, 1, 0]), ("b1", pairs[:, 1, 1])):
            self.register_buffer(name, torch.tensor(arr, dtype=torch.int64), persistent=False)

    def blocks(self, lm: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
        fns = {"hands_xyz": self._hands_xyz, "joint_angles": self._joint_angles, "velocity": self._velocity,
               "acceleration": self._acceleration, "hand_shape": self._hand_shape, "trajectory": self._trajectory,
               "body_relative": self._body_relative, "presence": self._presence}
        out: dict[str, torch.Tensor] = {}
        for b in names:
            if b not in fns:
                raise OneGraphUnsupported(f"feature block {b!r} is not implemented in the one graph (implemented: {sorted(fns)})")
            out[b] = fns[b](lm)
        return out

    @staticmethod
    def finish(parts: list[torch.Tensor]) -> torch.Tensor:
        """Concatenate blocks, NaN -> 0, clip to +-FEATURE_LIMIT: ``(N, T, F)`` float32."""
        f = torch.cat([p.to(torch.float32) for p in parts], dim=-1)
        f = torch.where(torch.isnan(f), torch.zeros_like(f), f)
        return torch.clamp(f, -FEATURE_LIMIT, FEATURE_LIMIT)

    @staticmethod
    def mask(lm: torch.Tensor) -> torch.Tensor:
        return _part_present(lm).any(dim=-1)

    @staticmethod
    def pool(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """``pool_features``: ``(N, T, F), (N, T) -> (N, 6F)``."""
        t = x.shape[1]
        mm = m[:, :, None]
        w = mm.to(torch.float32)
        n = m.sum(dim=1, keepdim=True)  # (N, 1)
        any_ = n > 0
        denom = torch.clamp(n, min=1).to(torch.float64)
        mean = (x * w).to(torch.float64).sum(dim=1) / denom
        dev = x - mean[:, None, :].to(torch.float32)
        var = (dev * dev * w).to(torch.float64).sum(dim=1) / denom
        std = torch.sqrt(torch.clamp(var, min=0.0))
        off = (1.0 - w) * 1e30  # frames outside the mask: far beyond every value (features are clipped to 1e3)
        zero = torch.zeros_like(x[:, 0])
        mn = torch.where(any_, (x + off).amin(dim=1), zero)
        mx = torch.where(any_, (x - off).amax(dim=1), zero)
        frames = torch.arange(t, dtype=torch.int64)[None, :]
        first_i = torch.where(m, frames, torch.full_like(frames, t)).amin(dim=1)
        last_i = torch.where(m, frames, torch.full_like(frames, -1)).amax(dim=1)
        first = torch.gather(x, 1, torch.clamp(first_i, 0, t - 1)[:, None, None].expand(-1, 1, x.shape[2]))[:, 0]
        last = torch.gather(x, 1, torch.clamp(last_i, 0, t - 1)[:, None, None].expand(-1, 1, x.shape[2]))[:, 0]
        first = torch.where(any_, first, zero)
        last = torch.where(any_, last, zero)
        assert len(POOL_STATS) == 6
        return torch.cat([mean.to(torch.float32), std.to(torch.float32), mn, mx, first, last], dim=-1)

    @staticmethod
    def _hands_xyz(lm: torch.Tensor) -> torch.Tensor:
        return lm[:, :, LEFT_HAND.start : RIGHT_HAND.stop].reshape(lm.shape[0], lm.shape[1], -1)

    def _joint_angles(self, lm: torch.Tensor) -> torch.Tensor:
        h = _hands(lm)
        u = h[..., self.a1, :] - h[..., self.a0, :]  # (N, T, 2, 13, 3)
        v = h[..., self.b1, :] - h[..., self.b0, :]
        uu, vv, uv = u * u, v * v, u * v

        def planes(q: torch.Tensor) -> torch.Tensor:
            return torch.stack([q[..., 0] + q[..., 1] + q[..., 2], q[..., 0] + q[..., 1], q[..., 1] + q[..., 2]], dim=-2)

        dot, nu, nv = planes(uv), planes(uu), planes(vv)
        norm = torch.sqrt(nu * nv)
        cos = torch.where(norm > _EPS_FEAT, dot / torch.clamp(norm, min=_EPS_FEAT), torch.zeros_like(dot))
        cos = torch.where(torch.isnan(dot), dot, torch.clamp(cos, -1.0, 1.0))
        return cos.reshape(lm.shape[0], lm.shape[1], -1)

    def _velocity(self, lm: torch.Tensor) -> torch.Tensor:
        return _gradient(self._hands_xyz(lm))

    def _acceleration(self, lm: torch.Tensor) -> torch.Tensor:
        return _gradient(_gradient(self._hands_xyz(lm)))

    @staticmethod
    def _hand_shape(lm: torch.Tensor) -> torch.Tensor:
        h = _hands(lm)  # (N, T, 2, 21, 3)
        lead = h.shape[:3]
        pts = h[..., :2].reshape(-1, N_HAND, 2).to(torch.float64)  # (B, 21, 2)
        # only the hands with a hull (3 or more points) go through it (a missing hand costs nothing, as in numpy):
        # their rows are gathered, and the results scattered back into zeros; one spare row (the last) keeps the
        # hull's input non-empty when no hand is present
        b = pts.shape[0]
        has = (~torch.isnan(pts).any(dim=-1)).sum(dim=-1) >= 3
        rows = torch.cat([torch.nonzero(has)[:, 0], torch.full((1,), 0, dtype=torch.int64)])
        dest = torch.cat([torch.nonzero(has)[:, 0], torch.full((1,), b, dtype=torch.int64)])
        got = _hull_shape(pts[rows])
        area, perim, rect = (torch.zeros(b + 1, dtype=torch.float64).scatter(0, dest, g)[:b].reshape(lead) for g in got)
        palm = _norm(h[..., MIDDLE_MCP, :] - h[..., WRIST, :]).to(torch.float64)
        zero = torch.zeros_like(area)
        circ = torch.where(perim > _EPS_FEAT, 4.0 * math.pi * area / torch.clamp(perim, min=_EPS_FEAT) ** 2, zero)
        rectangularity = torch.where(rect > _EPS_FEAT, area / torch.clamp(rect, min=_EPS_FEAT), zero)
        area_palm = torch.where(palm > _EPS_FEAT, area / torch.clamp(palm, min=_EPS_FEAT) ** 2, zero)
        out = torch.stack([circ, rectangularity, area_palm], dim=-1)
        missing = torch.isnan(h[..., 0]).all(dim=-1)
        out = torch.where(missing[..., None], torch.full_like(out, math.nan), out)
        return out.reshape(lead[0], lead[1], -1)

    @staticmethod
    def _trajectory(lm: torch.Tensor) -> torch.Tensor:
        m, t = lm.shape[0], lm.shape[1]
        counts = _part_present(lm)[..., 1:].sum(dim=1)  # (N, 2)
        right = counts[:, 1] >= counts[:, 0]
        wrist = torch.where(right[:, None, None], lm[:, :, RIGHT_HAND.start + WRIST], lm[:, :, LEFT_HAND.start + WRIST])  # (N, T, 3)
        track = _interp_fill(wrist.transpose(1, 2).reshape(-1, t).to(torch.float64), None, True).reshape(m, 3, t).transpose(1, 2)
        if t < 2:
            rel = torch.zeros(m, TRAJECTORY_POINTS, 3, dtype=torch.float64)
        else:
            seg = _norm(track[:, 1:] - track[:, :-1])  # (N, T-1)
            s = torch.cat([torch.zeros_like(seg[:, :1]), torch.cumsum(seg, dim=1)], dim=1)  # (N, T)
            frac_k = torch.arange(1, TRAJECTORY_POINTS + 1, dtype=torch.float64) / TRAJECTORY_POINTS
            target = s[:, -1:] * frac_k[None, :]  # (N, K)
            i0 = torch.clamp((s[:, None, :] <= target[..., None]).sum(dim=-1) - 1, 0, t - 2)
            s0 = torch.gather(s, 1, i0)
            s1 = torch.gather(s, 1, i0 + 1)
            gap = s1 - s0
            frac = torch.clamp(torch.where(gap > _EPS_FEAT, (target - s0) / torch.clamp(gap, min=_EPS_FEAT), torch.zeros_like(gap)), 0.0, 1.0)
            p0 = torch.gather(track, 1, i0[..., None].expand(-1, -1, 3))
            p1 = torch.gather(track, 1, (i0 + 1)[..., None].expand(-1, -1, 3))
            rel = p0 + frac[..., None] * (p1 - p0) - track[:, :1, :]
        rel = torch.where(counts.amax(dim=1)[:, None, None] > 0, rel, torch.zeros_like(rel))
        return rel.reshape(m, 1, -1).expand(m, t, TRAJECTORY_POINTS * 3)

    @staticmethod
    def _body_relative(lm: torch.Tensor) -> torch.Tensor:
        hand_wrist = torch.stack([lm[:, :, LEFT_HAND.start + WRIST], lm[:, :, RIGHT_HAND.start + WRIST]], dim=2)
        pose_wrist = torch.stack([lm[:, :, LEFT_WRIST_POSE], lm[:, :, RIGHT_WRIST_POSE]], dim=2)
        wrist = torch.where(torch.isnan(hand_wrist), pose_wrist, hand_wrist)  # (N, T, 2, 3)
        nose = lm[:, :, NOSE]
        mouth = 0.5 * (lm[:, :, MOUTH_LEFT] + lm[:, :, MOUTH_RIGHT])
        chest = 0.5 * (lm[:, :, LEFT_SHOULDER] + lm[:, :, RIGHT_SHOULDER])
        targets = torch.stack([nose, mouth, chest], dim=2)  # (N, T, 3, 3)
        vec = targets[:, :, None, :, :] - wrist[:, :, :, None, :]
        return vec.reshape(lm.shape[0], lm.shape[1], -1)

    @staticmethod
    def _presence(lm: torch.Tensor) -> torch.Tensor:
        return _part_present(lm).to(lm.dtype)


class FrontEnd(nn.Module):
    """Raw landmarks -> every feature table a plan needs: ``forward(landmarks (N, T, 75, 3), lengths (N,))`` returns,
    per key of :meth:`FrontEnd.keys`, the frame features ``(N, T', F)`` and mask ``(N, T')`` (network keys) and
    the pooled features ``(N, 6F)`` (tree keys), in that order."""

    def __init__(self, cfg: NormalizeConfig, plan: EnsemblePlan) -> None:
        super().__init__()
        self.normalizer = Normalizer(cfg)
        self.features = Features()
        self.frame_keys = sorted(plan.frame_keys)
        self.pooled_keys = sorted(plan.pooled_keys)
        self.names = {k: list(blocks_from_key(k) or FEATURE_BLOCKS) for k in set(self.frame_keys) | set(self.pooled_keys)}
        unknown = sorted({b for v in self.names.values() for b in v} - set(SUPPORTED_BLOCKS))
        if unknown:
            raise OneGraphUnsupported(f"feature blocks {unknown} are not implemented in the one graph (implemented: {list(SUPPORTED_BLOCKS)})")

    def output_names(self) -> list[str]:
        names = []
        for i, _ in enumerate(self.frame_keys):
            names += [f"frame_{i}", f"mask_{i}"]
        names += [f"pooled_{i}" for i, _ in enumerate(self.pooled_keys)]
        return names

    def forward(self, landmarks: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        norm = self.normalizer(landmarks, lengths)
        needed = sorted({b for v in self.names.values() for b in v}, key=list(FEATURE_BLOCKS).index)
        blocks = self.features.blocks(norm, needed)
        mask = self.features.mask(norm)
        tables = {k: self.features.finish([blocks[b] for b in self.names[k]]) for k in self.names}
        outs: list[torch.Tensor] = []
        for k in self.frame_keys:
            outs += [tables[k], mask]
        outs += [self.features.pool(tables[k], mask) for k in self.pooled_keys]
        return tuple(outs)


# ----------------------------------------------------------------------------------------------
# export and composition
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet() -> Any:
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def frontend_to_onnx(front: FrontEnd, opset: int = 17) -> Any:
    """The front end as an ONNX ``ModelProto``: inputs ``landmarks (N, T, 75, 3)``, ``lengths (N,)``; dynamic N and T.

    The TorchScript exporter: it traces the unrolled hull loop in seconds where the dynamo exporter takes
    minutes, and the shapes it records stay symbolic (checked by the parity tests at other N and T).
    """
    import onnx

    front = front.eval()
    rng = np.random.default_rng(0)
    lm = torch.tensor(rng.normal(0.5, 0.2, (5, 29, 75, 3)).astype(np.float32))
    lm[1, :, LEFT_HAND] = math.nan
    lengths = torch.tensor([29, 7, 1, 12, 29], dtype=torch.int64)
    buf = io.BytesIO()
    names = front.output_names()
    with _quiet(), torch.no_grad():
        torch.onnx.export(front, (lm, lengths), buf, dynamo=False, opset_version=opset, input_names=list(ONEGRAPH_INPUTS),
                          output_names=names, dynamic_axes={"landmarks": {0: "batch", 1: "frames"}, "lengths": {0: "batch"},
                                                            **{n: {0: "batch"} for n in names}})
    return onnx.load_from_string(buf.getvalue())


def _default_opset(model: Any) -> int | None:
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _prefixed(model: Any, prefix: str, opset: int) -> Any:
    """``model`` with every name prefixed and its default-domain opset converted to ``opset``."""
    import onnx
    from onnx import compose, version_converter

    current = _default_opset(model)
    if current is not None and current != opset:
        model = version_converter.convert_version(model, opset)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    return compose.add_prefix(model, prefix)


def compose_onegraph(folder: str | Path, manifest: dict[str, Any], front: Any) -> Any:
    """Wire the front end ``front`` (ModelProto of :func:`frontend_to_onnx`) to the per-model graphs listed in
    ``manifest`` (files in ``folder``) and the combiner: the one graph as a ``ModelProto``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder = Path(folder)
    plan = EnsemblePlan.from_json(manifest["plan"], source=str(folder / "manifest.json"))
    models = {name: onnx.load(str(folder / entry["file"])) for name, entry in manifest["models"].items()}
    opset = max([_default_opset(front) or 17] + [v for v in (_default_opset(m) for m in models.values()) if v is not None])
    parts = {"front": _prefixed(front, "front__", opset)}
    parts.update({name: _prefixed(m, f"m{i}__", opset) for i, (name, m) in enumerate(models.items())})
    prefix = {name: f"m{i}__" for i, name in enumerate(models)}
    nodes: list[Any] = []
    inits: list[Any] = []
    for part in parts.values():
        inits.extend(part.graph.initializer)
    nodes += [helper.make_node("Identity", [n], [f"front__{n}"]) for n in ONEGRAPH_INPUTS]
    nodes += parts["front"].graph.node
    frame_keys, pooled_keys = sorted(plan.frame_keys), sorted(plan.pooled_keys)
    sources = {"frame_features": lambda key: f"front__frame_{frame_keys.index(key)}",
               "frame_mask": lambda key: f"front__mask_{frame_keys.index(key)}",
               "pooled_features": lambda key: f"front__pooled_{pooled_keys.index(key)}"}

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(arr, f"og__{name}"))
        return f"og__{name}"

    def place(src: str, columns: tuple[int, ...], width: int, name: str) -> str:
        """``place_columns``: ``src (N, len(columns))`` -> ``(N, width)``, zeros elsewhere (a Gather, exact)."""
        if tuple(columns) == tuple(range(width)):
            return src
        index = np.full(width, len(columns), dtype=np.int64)
        index[np.asarray(columns, dtype=np.int64)] = np.arange(len(columns))
        padded = f"og__{name}_padded"
        nodes.append(helper.make_node("Pad", [src, const(f"{name}_pads", np.array([0, 0, 0, 1], dtype=np.int64))], [padded]))
        nodes.append(helper.make_node("Gather", [padded, const(f"{name}_index", index)], [f"og__{name}_placed"], axis=1))
        return f"og__{name}_placed"

    by_model: dict[str, str] = {}
    outputs = []
    for i, base in enumerate(plan.bases):
        entry = manifest["models"][base.name]
        for inp in entry["inputs"]:
            nodes.append(helper.make_node("Identity", [sources[inp["source"]](base.blocks)], [prefix[base.name] + inp["name"]]))
        nodes += parts[base.name].graph.node
        out = prefix[base.name] + entry["outputs"][0]["name"]
        placed = place(out, base.columns, plan.n_ensemble, f"base{i}")
        by_model[base.name] = f"{BY_MODEL_PREFIX}{i}"
        nodes.append(helper.make_node("Identity", [placed], [by_model[base.name]]))
        outputs.append(helper.make_tensor_value_info(by_model[base.name], TensorProto.FLOAT, ["batch", plan.n_ensemble]))
    if plan.has_meta:
        meta_name = next(n for n in manifest["models"] if n not in {b.name for b in plan.bases})
        stack = [by_model[b.name] for b in plan.bases]
        if plan.passthrough_pooled:
            stack.append(sources["pooled_features"](plan.passthrough_blocks))
        entry = manifest["models"][meta_name]
        nodes.append(helper.make_node("Concat", stack, [prefix[meta_name] + entry["inputs"][0]["name"]], axis=1))
        nodes += parts[meta_name].graph.node
        ens = place(prefix[meta_name] + entry["outputs"][0]["name"], plan.meta_columns, plan.n_ensemble, "meta")
        if plan.temperature != 1.0:  # softmax(log(p) / T) in float64, as models.temperature.apply_temperature
            nodes += [helper.make_node("Cast", [ens], ["og__p64"], to=TensorProto.DOUBLE),
                      helper.make_node("Log", ["og__p64"], ["og__logp"]),
                      helper.make_node("Div", ["og__logp", const("temperature", np.array(plan.temperature, dtype=np.float64))], ["og__z"]),
                      helper.make_node("Softmax", ["og__z"], ["og__tempered64"], axis=1),
                      helper.make_node("Cast", ["og__tempered64"], ["og__tempered"], to=TensorProto.FLOAT)]
            ens = "og__tempered"
    else:
        ens = by_model[plan.bases[0].name]
    final = place(ens, plan.output_columns, len(plan.classes), "output")
    nodes.append(helper.make_node("Identity", [final], [ONEGRAPH_OUTPUT]))
    outputs.insert(0, helper.make_tensor_value_info(ONEGRAPH_OUTPUT, TensorProto.FLOAT, ["batch", len(plan.classes)]))
    inputs = [helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["batch", "frames", 75, 3]),
              helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"])]
    graph = helper.make_graph(nodes, "signlang_onegraph", inputs, outputs, initializer=inits)
    opsets: dict[str, int] = {}
    for part in parts.values():
        for o in part.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), int(o.version))
    opsets[""] = opset
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()], producer_name="signlang")
    model.ir_version = max(int(p.ir_version) for p in parts.values())
    functions = {(f.domain, f.name): f for part in parts.values() for f in part.functions}
    model.functions.extend(functions.values())
    onnx.checker.check_model(model)
    model.metadata_props.add(key="by_model", value=json.dumps(by_model))
    return model


def reference_clips(rng: np.random.Generator) -> list[np.ndarray]:
    """Raw clips for the export's parity check: several lengths in one batch, a one-frame clip, missing hands,
    a short gap, a mirrored (left-handed) clip and an empty one."""
    def clip(t: int) -> np.ndarray:  # smooth motion around a random pose, image-like coordinates
        base = rng.normal(0.5, 0.1, size=(1, 75, 3))
        return (base + np.cumsum(rng.normal(0.0, 0.006, size=(t, 75, 3)), axis=0)).astype(np.float32)

    clips = [clip(t) for t in (1, 3, 9, 17, 40, 64)]
    clips[3][4:7] = np.nan  # a gap of every part
    clips[4][:, LEFT_HAND.start :] = np.nan
    clips[4][:, LEFT_HAND.start : RIGHT_HAND.start] = clips[5][:40, RIGHT_HAND]  # only the left hand
    clips.append(np.full((12, 75, 3), np.nan, dtype=np.float32))
    return clips


def write_onegraph(out_dir: str | Path, manifest: dict[str, Any], torch_backend: Any) -> dict[str, Any]:
    """Build ``out_dir/model.onnx`` from the split files of ``manifest`` and return its manifest entry, with the
    largest probability difference against ``torch_backend`` (normalise + features + PyTorch) on
    :func:`reference_clips` as ``parity``. ``OneGraphUnsupported`` when the preprocessing has a setting the graph
    does not implement."""
    import onnx
    import onnxruntime as ort

    from signlang._io import atomic_write, sha256_file
    from signlang.features.normalize import normalize_clips
    from signlang.inference.plan import compute_features

    out = Path(out_dir)
    prep = manifest.get("preprocessing", {})
    if prep.get("feature_blocks") not in (None, list(FEATURE_BLOCKS)):
        raise OneGraphUnsupported(f"preprocessing.feature_blocks {prep.get('feature_blocks')!r}: the one graph computes the default table only")
    cfg = NormalizeConfig.from_dict(dict(prep.get("normalize", {})))
    plan = EnsemblePlan.from_json(manifest["plan"])
    front = FrontEnd(cfg, plan)
    opsets = [_default_opset(onnx.load(str(out / e["file"]), load_external_data=False)) for e in manifest["models"].values()]
    opset = min(20, max([17] + [v for v in opsets if v is not None]))
    model = compose_onegraph(out, manifest, frontend_to_onnx(front, opset))
    by_model = json.loads(next(p.value for p in model.metadata_props if p.key == "by_model"))
    path = out / ONEGRAPH_FILE
    with atomic_write(path) as fh:
        fh.write(model.SerializeToString())
    clips = reference_clips(np.random.default_rng(0))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    landmarks, lengths = pad_clips(clips)
    got = session.run([ONEGRAPH_OUTPUT], {"landmarks": landmarks, "lengths": lengths})[0]
    want = torch_backend.run(compute_features(normalize_clips(clips, cfg), plan))[0]
    return {
        "file": ONEGRAPH_FILE,
        "sha256": sha256_file(path),
        "inputs": [{"name": "landmarks", "shape": ["batch", "frames", 75, 3], "dtype": "float32"},
                   {"name": "lengths", "shape": ["batch"], "dtype": "int64"}],
        "outputs": [{"name": ONEGRAPH_OUTPUT, "shape": ["batch", len(plan.classes)], "dtype": "float32"}],
        "by_model": by_model,
        "opset": opset,
        "parity": {"clip_lengths": [int(n) for n in lengths], "max_abs_diff": float(np.abs(got - want).max())},
    }

"""Pictures of an explanation, rendered to bytes (PNG / GIF) with matplotlib's Agg backend.

Nothing here touches the file system: every function returns the encoded image, and the CLI or
the service writes or sends it (through :func:`signlang._io.atomic_write` for files).

* :func:`render_heatmap` -- a time x landmark heatmap ``(T, 75)`` with the three body parts
  (pose, left hand, right hand) labelled and separated, under a per-frame importance curve.
* :func:`render_curve` -- the per-frame importance curve alone.
* :func:`render_contact_sheet` -- the most important video frames with the skeleton
  (:func:`signlang.landmarks.layout.skeleton_bones`) drawn over each real frame and every
  landmark coloured by its importance in that frame.
* :func:`render_gif` -- the same overlay for every frame, as an animated GIF.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from signlang.landmarks.layout import N_POINTS, PART_NAMES, PART_SLICES, skeleton_bones  # noqa: E402

CMAP = "inferno"
_PART_LABELS = {"pose": "pose", "left_hand": "left hand", "right_hand": "right hand"}


def _check_map(landmark_importance: np.ndarray, frame_importance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    lm = np.nan_to_num(np.asarray(landmark_importance, dtype=np.float32))
    if lm.ndim != 2 or lm.shape[1] != N_POINTS or lm.shape[0] < 1:
        raise ValueError(f"landmark_importance: expected shape (T, {N_POINTS}), got {lm.shape}")
    fr = lm.sum(axis=1) if frame_importance is None else np.nan_to_num(np.asarray(frame_importance, dtype=np.float32))
    if fr.shape != (lm.shape[0],):
        raise ValueError(f"frame_importance: expected shape ({lm.shape[0]},) to match the map, got {fr.shape}")
    return lm, fr


def _png(fig: Figure, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def render_heatmap(
    landmark_importance: np.ndarray,
    frame_importance: np.ndarray | None = None,
    title: str = "",
    dpi: int = 100,
) -> bytes:
    """PNG: per-frame curve on top, time x landmark heatmap ``(T, 75)`` below, parts labelled."""
    lm, fr = _check_map(landmark_importance, frame_importance)
    t = lm.shape[0]
    fig, (ax_c, ax_h) = plt.subplots(
        2, 1, figsize=(max(6.0, min(16.0, 4.0 + t * 0.08)), 7.5), sharex=True,
        gridspec_kw={"height_ratios": [1, 3.2]}, layout="constrained",
    )
    frames = np.arange(t)
    ax_c.fill_between(frames, fr, color="tab:orange", alpha=0.35, step="mid")
    ax_c.plot(frames, fr, color="tab:orange", drawstyle="steps-mid")
    ax_c.set_ylabel("frame\nimportance")
    ax_c.set_ylim(bottom=0)
    if title:
        ax_c.set_title(title)
    im = ax_h.imshow(lm.T, aspect="auto", origin="upper", cmap=CMAP, interpolation="nearest",
                     extent=(-0.5, t - 0.5, N_POINTS - 0.5, -0.5))
    ticks, labels = [], []
    for part in PART_NAMES:
        sl = PART_SLICES[part]
        if sl.start > 0:
            ax_h.axhline(sl.start - 0.5, color="white", lw=1.2)
        ticks.append((sl.start + sl.stop - 1) / 2.0)
        labels.append(_PART_LABELS[part])
    ax_h.set_yticks(ticks, labels)
    ax_h.set_xlabel("frame (input order)")
    ax_h.set_ylabel("landmark")
    fig.colorbar(im, ax=ax_h, label="importance", fraction=0.04, pad=0.01)
    return _png(fig, dpi)


def render_curve(frame_importance: np.ndarray, title: str = "", dpi: int = 100) -> bytes:
    """PNG of the per-frame importance curve ``(T,)``."""
    fr = np.nan_to_num(np.asarray(frame_importance, dtype=np.float32))
    if fr.ndim != 1 or fr.size < 1:
        raise ValueError(f"frame_importance: expected shape (T,), got {fr.shape}")
    fig, ax = plt.subplots(figsize=(7, 2.6), layout="constrained")
    ax.plot(np.arange(fr.size), fr, color="tab:orange", marker=".")
    ax.set_xlabel("frame (input order)")
    ax.set_ylabel("importance")
    ax.set_ylim(bottom=0)
    if title:
        ax.set_title(title)
    return _png(fig, dpi)


def key_frames(frame_importance: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` most important frames, in time order ``(min(k, T),)``."""
    fr = np.nan_to_num(np.asarray(frame_importance, dtype=np.float64))
    k = int(min(max(k, 1), fr.size))
    top = np.argsort(-fr, kind="stable")[:k]
    return np.sort(top)


def _draw_overlay(ax: plt.Axes, image: np.ndarray, points: np.ndarray, importance: np.ndarray, vmax: float) -> None:
    """Image, skeleton bones and landmarks coloured by importance; ``points (75, 3)`` image-normalised."""
    h, w = image.shape[:2]
    ax.imshow(image)
    xy = np.asarray(points[:, :2], dtype=np.float64) * np.array([w, h])
    bones = np.asarray(skeleton_bones())
    seg = np.stack([xy[bones[:, 0]], xy[bones[:, 1]]], axis=1)  # (B, 2, 2)
    ok = np.isfinite(seg).all(axis=(1, 2))
    ax.add_collection(LineCollection(seg[ok], colors="white", linewidths=1.0, alpha=0.8))
    vis = np.isfinite(xy).all(axis=1)
    ax.scatter(xy[vis, 0], xy[vis, 1], c=importance[vis], cmap=CMAP, vmin=0.0, vmax=vmax, s=14,
               edgecolors="black", linewidths=0.3, zorder=3)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_axis_off()


def _check_video(frames: np.ndarray, landmarks: np.ndarray, importance: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected RGB images (K, H, W, 3), got {frames.shape}")
    k = frames.shape[0]
    if landmarks.shape != (k, N_POINTS, 3):
        raise ValueError(f"landmarks: expected ({k}, {N_POINTS}, 3) image-normalised points, got {landmarks.shape}")
    if importance.shape != (k, N_POINTS):
        raise ValueError(f"importance: expected ({k}, {N_POINTS}), got {importance.shape}")


def render_contact_sheet(
    frames: np.ndarray,
    landmarks: np.ndarray,
    importance: np.ndarray,
    frame_indices: np.ndarray,
    frame_importance: np.ndarray | None = None,
    title: str = "",
    cols: int = 4,
    dpi: int = 100,
) -> bytes:
    """PNG grid of key frames ``frames (K, H, W, 3)`` uint8 RGB with the skeleton drawn over them.

    ``landmarks (K, 75, 3)`` are the raw image-normalised points of those frames (NaN = missing),
    ``importance (K, 75)`` the landmark map at those frames (one colour scale for the sheet),
    ``frame_indices (K,)`` and optional ``frame_importance (K,)`` label the panels.
    """
    frames = np.asarray(frames)
    landmarks = np.asarray(landmarks, dtype=np.float32)
    importance = np.nan_to_num(np.asarray(importance, dtype=np.float32))
    _check_video(frames, landmarks, importance)
    k = frames.shape[0]
    if k < 1:
        raise ValueError("render_contact_sheet: no frames to draw")
    cols = max(1, min(cols, k))
    rows = int(np.ceil(k / cols))
    h, w = frames.shape[1:3]
    panel_w = 3.2
    fig, axes = plt.subplots(rows, cols, figsize=(panel_w * cols, panel_w * h / w * rows + 0.6), squeeze=False,
                             layout="constrained")
    vmax = float(importance.max()) or 1.0
    for i, ax in enumerate(axes.ravel()):
        if i >= k:
            ax.set_axis_off()
            continue
        _draw_overlay(ax, frames[i], landmarks[i], importance[i], vmax)
        label = f"frame {int(frame_indices[i])}"
        if frame_importance is not None:
            label += f"  ({float(frame_importance[i]):.3f})"
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title)
    return _png(fig, dpi)


def render_gif(
    frames: np.ndarray,
    landmarks: np.ndarray,
    importance: np.ndarray,
    fps: float = 10.0,
    dpi: int = 60,
) -> bytes:
    """Animated GIF of every frame ``(K, H, W, 3)`` with its importance-coloured skeleton."""
    from PIL import Image

    frames = np.asarray(frames)
    landmarks = np.asarray(landmarks, dtype=np.float32)
    importance = np.nan_to_num(np.asarray(importance, dtype=np.float32))
    _check_video(frames, landmarks, importance)
    if frames.shape[0] < 1:
        raise ValueError("render_gif: no frames to draw")
    h, w = frames.shape[1:3]
    vmax = float(importance.max()) or 1.0
    fig = plt.figure(figsize=(4.0, 4.0 * h / w), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    images = []
    for img, pts, imp in zip(frames, landmarks, importance):
        ax.clear()
        _draw_overlay(ax, img, pts, imp, vmax)
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()))
    plt.close(fig)
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=int(round(1000.0 / max(fps, 1e-3))), loop=0)
    return buf.getvalue()

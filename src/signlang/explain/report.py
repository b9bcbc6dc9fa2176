"""An explanation's deliverables as bytes: ``explanation.json``, ``heatmap.png``, ``curve.png``,
``frames.png`` (videos) and optionally ``explanation.gif``.

Pure: video frames come in through a ``frame_source`` callable (the CLI decodes them), and the
caller writes the returned ``{file name: bytes}`` (atomically) or sends it. matplotlib is imported
only to draw, so the JSON document needs numpy alone (the landmarks-only ONNX server).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from signlang.explain.explainer import Explanation

N_KEY_FRAMES = 8
MAX_GIF_FRAMES = 48

FrameSource = Callable[[np.ndarray], np.ndarray]
"""``frame_source(indices (K,)) -> RGB frames (K, H, W, 3) uint8`` of the input video."""


def explanation_json(exp: Explanation, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document: ``sign``, ``prob``, ``frame_importance`` (T), ``landmark_importance`` (T x 75), ..."""
    doc = exp.to_dict()
    doc["top_frames"] = [int(i) for i in exp.top_frames(N_KEY_FRAMES)]
    if extra:
        doc.update(extra)
    return doc


def title_for(exp: Explanation) -> str:
    return f"{exp.sign}  (p = {exp.prob:.3f})"


def explanation_files(
    exp: Explanation,
    raw_landmarks: np.ndarray,
    frame_source: FrameSource | None = None,
    gif: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, bytes]:
    """Render everything for one explanation; ``raw_landmarks (T_in, 75, 3)`` in image coordinates.

    ``frames.png`` (and ``explanation.gif`` with ``gif``) need ``frame_source``; the GIF uses at
    most :data:`MAX_GIF_FRAMES` evenly spaced frames.
    """
    from signlang.explain.plots import key_frames, render_contact_sheet, render_curve, render_gif, render_heatmap  # matplotlib

    raw = np.asarray(raw_landmarks, dtype=np.float32)
    t = exp.frame_importance.shape[0]
    if raw.shape[0] != t:
        raise ValueError(f"raw_landmarks: {raw.shape[0]} frames but the explanation has {t}")
    files = {
        "explanation.json": (json.dumps(explanation_json(exp, extra)) + "\n").encode("utf-8"),
        "heatmap.png": render_heatmap(exp.landmark_importance, exp.frame_importance, title=title_for(exp)),
        "curve.png": render_curve(exp.frame_importance, title=title_for(exp)),
    }
    if frame_source is not None:
        idx = key_frames(exp.frame_importance, N_KEY_FRAMES)
        files["frames.png"] = render_contact_sheet(
            frame_source(idx), raw[idx], exp.landmark_importance[idx], idx, exp.frame_importance[idx],
            title=f"key frames: {title_for(exp)}",
        )
        if gif:
            idx_all = np.unique(np.linspace(0, t - 1, min(t, MAX_GIF_FRAMES)).round().astype(np.int64))
            files["explanation.gif"] = render_gif(frame_source(idx_all), raw[idx_all], exp.landmark_importance[idx_all])
    return files

"""Interop with the ``pose-format`` package (``.pose`` files, sign-language-processing/pose).

Writing uses pose-format's own MediaPipe Holistic components (``POSE_LANDMARKS``,
``LEFT_HAND_LANDMARKS``, ``RIGHT_HAND_LANDMARKS``, point format ``XYZC``), so files open in its
tools. As in pose-format's ``video_to_pose``, x and y are pixels (normalised x times the header
width, y times the height) and z is MediaPipe's relative depth; confidence 0 marks a part that
was not detected.

Reading accepts any ``.pose`` file holding those three components (extra components such as
``FACE_LANDMARKS`` are ignored; the first person is used) and returns ``(T, 75, 3)`` float32 in
normalised image coordinates with NaN for parts whose confidences are all zero.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from signlang._io import atomic_write
from signlang.landmarks.layout import HANDS, N_COORDS, N_HAND, N_POINTS, N_POSE, POSE

COMPONENTS: tuple[tuple[str, int], ...] = (
    ("POSE_LANDMARKS", N_POSE),
    ("LEFT_HAND_LANDMARKS", N_HAND),
    ("RIGHT_HAND_LANDMARKS", N_HAND),
)


def write_pose(
    path: str | os.PathLike[str], landmarks: np.ndarray, fps: float, width: int, height: int
) -> Path:
    """Write ``landmarks`` (T, 75, 3) (normalised, NaN = missing) as a ``.pose`` file, atomically."""
    from pose_format import Pose
    from pose_format.numpy.pose_body import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderDimensions
    from pose_format.utils.holistic import holistic_components

    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.ndim != 3 or lm.shape[1:] != (N_POINTS, N_COORDS):
        raise ValueError(f"{path}: landmarks must be (T, 75, 3), got {lm.shape}")
    by_name = {c.name: c for c in holistic_components("XYZC")}
    header = PoseHeader(
        version=0.2,
        dimensions=PoseHeaderDimensions(width=int(width), height=int(height), depth=0),
        components=[by_name[name] for name, _ in COMPONENTS],
    )
    present = ~np.isnan(lm).any(axis=-1)  # (T, 75)
    data = np.nan_to_num(lm * np.array([width, height, 1.0], dtype=np.float32), nan=0.0)
    body = NumPyPoseBody(fps=float(fps), data=data[:, None], confidence=present[:, None].astype(np.float32))
    buf = io.BytesIO()
    Pose(header, body).write(buf)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())
    return Path(path)


def read_pose(path: str | os.PathLike[str]) -> tuple[np.ndarray, float]:
    """Read a ``.pose`` file into ``(landmarks (T, 75, 3) float32, fps)``.

    Raises ``ValueError`` naming the file when it is not a readable ``.pose`` file or lacks the
    Holistic pose/hand components.
    """
    from pose_format import Pose

    p = Path(path)
    try:
        pose = Pose.read(p.read_bytes())
    except Exception as exc:  # pose-format raises assorted struct/value errors on bad bytes
        raise ValueError(f"{p}: not a readable .pose file ({' '.join(str(exc).split()) or type(exc).__name__})") from exc
    found = {c.name: len(c.points) for c in pose.header.components}
    wanted = dict(COMPONENTS)
    if any(found.get(name) != n for name, n in wanted.items()):
        raise ValueError(
            f"{p}: .pose file lacks MediaPipe Holistic components {', '.join(f'{k}({v})' for k, v in wanted.items())};"
            f" it has {', '.join(f'{k}({v})' for k, v in found.items()) or 'none'}"
        )
    sub = pose.get_components([name for name, _ in COMPONENTS])
    data = np.asarray(sub.body.data.data, dtype=np.float32)  # (T, people, 75, D)
    conf = np.asarray(sub.body.confidence, dtype=np.float32)  # (T, people, 75)
    if data.ndim != 4 or data.shape[1] == 0 or data.shape[-1] < 2:
        raise ValueError(f"{p}: .pose body has unexpected shape {data.shape}")
    xyz = np.zeros((data.shape[0], N_POINTS, N_COORDS), dtype=np.float32)
    xyz[..., : min(3, data.shape[-1])] = data[:, 0, :, :3]
    dims = sub.header.dimensions
    scale = np.array([dims.width or 1, dims.height or 1, 1], dtype=np.float32)
    xyz /= scale
    conf0 = conf[:, 0]
    for part in (POSE, *HANDS):
        missing = np.all(conf0[:, part] <= 0, axis=1)  # (T,)
        xyz[missing, part, :] = np.nan
    return xyz, float(sub.body.fps)

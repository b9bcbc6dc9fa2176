"""Seeded, composable augmentation of normalised landmarks ``(T, 75, 3)`` (NaN stays NaN).

Each transform is a small dataclass registered by name with :func:`register_transform`; it holds
its parameters and a probability ``p`` and is called as ``transform(lm, rng) -> lm`` with a
``numpy.random.Generator``, so a run is reproducible from its seed. Time transforms may change T.
Configs list transforms as dicts, turned into a :class:`Compose` by :func:`build_augmentation`::

    build_augmentation([{"name": "rotate", "max_degrees": 15, "p": 0.5}, {"name": "mirror", "p": 0.5}])

The transforms expect the body frame of :mod:`signlang.features.normalize` (origin between the
shoulders, unit = shoulder width), so rotations, scalings and mirroring act about the chest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np
from scipy.ndimage import gaussian_filter1d

from signlang._registry import Registry
from signlang.features.normalize import _interp_at
from signlang.landmarks.layout import HANDS, MIRROR_PERMUTATION, N_COORDS, N_POINTS

TRANSFORMS: Registry[type["Transform"]] = Registry("augmentation transform")
"""Transform name -> class, filled by :func:`register_transform`."""


def register_transform(name: str) -> Callable[[type["Transform"]], type["Transform"]]:
    """Class decorator: make a :class:`Transform` subclass available to configs as ``name``."""

    def deco(cls: type[Transform]) -> type[Transform]:
        TRANSFORMS.register(name, cls)
        cls.name = name
        return cls

    return deco


def _check_lm(lm: np.ndarray) -> np.ndarray:
    arr = np.asarray(lm)
    if arr.ndim != 3 or arr.shape[1:] != (N_POINTS, N_COORDS):
        raise ValueError(f"augmentation: expected landmarks of shape (T, {N_POINTS}, {N_COORDS}), got {tuple(arr.shape)}")
    if arr.shape[0] < 1:
        raise ValueError("augmentation: clip has no frames (T = 0)")
    return arr.astype(np.float32, copy=False)


def _require(cond: bool, cls: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"{cls}: {msg}")


@dataclass
class Transform:
    """Base class: ``p`` is the probability of applying; subclasses implement :meth:`apply`."""

    p: float = 1.0
    name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        _require(0.0 <= float(self.p) <= 1.0, self.name, f"p must be in [0, 1], got {self.p}")

    def __call__(self, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        arr = _check_lm(lm)
        if rng.random() >= self.p:
            return arr.copy()
        return self.apply(arr, rng).astype(np.float32, copy=False)

    def apply(self, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The spec dict :func:`build_augmentation` accepts."""
        return {"name": self.name, **asdict(self)}


def _linear(lm: np.ndarray, matrix: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
    """``lm @ matrix.T + shift`` for ``(T, 75, 3)``; NaN stays NaN."""
    out = lm @ matrix.T.astype(np.float32)
    if shift is not None:
        out = out + shift.astype(np.float32)
    return out


@register_transform("rotate")
@dataclass
class Rotate(Transform):
    """Rotation about the z axis (in the image plane) by up to ``max_degrees``, plus an optional
    tilt about x and y by up to ``max_tilt_degrees``."""

    max_degrees: float = 15.0
    max_tilt_degrees: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0 <= self.max_degrees <= 180, self.name, f"max_degrees must be in [0, 180], got {self.max_degrees}")
        _require(0 <= self.max_tilt_degrees <= 90, self.name, f"max_tilt_degrees must be in [0, 90], got {self.max_tilt_degrees}")

    def apply(self, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        z, x, y = np.deg2rad(rng.uniform(-1, 1, 3) * [self.max_degrees, self.max_tilt_degrees, self.max_tilt_degrees])
        rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
        rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
        ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
        return _linear(lm, rz @ rx @ ry)


@register_transform("scale")
@dataclass
class Scale(Transform):
    """Scaling by a factor in ``[min_scale, max_scale]`` (one per axis when ``per_axis``)."""

    min_scale: float = 0.85
    max_scale: float = 1.15
    per_axis: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0 < self.min_scale <= self.max_scale, self.name, f"need 0 < min_scale <= max_scale, got {self.min_scale}, {self.max_scale}")

    def apply(self, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        f = rng.uniform(self.min_scale, self.max_scale, 3 if self.per_axis else 1)
        return lm * np.broadcast_to(f, (3,)).astype(np.float32)


@register_transform("shear")
@dataclass
class Shear(Transform):
    """Shear in the image plane: ``x += a*y, y += b*x`` with ``|a|, |b| <= max_shear``."""

    max_shear: float = 0.15

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0 <= self.max_shear < 1, self.name, f"max_shear must be in [0, 1), got {self.max_shear}")

    def apply(self, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a, b = rng.uniform(-self.max_shear, self.max_shear, 2)
        return _linear(lm, np.array([[1, a, 0], [b, 1, 0], [0, 0, 1]]))


@register_transform("translate")
@dataclass
class Translate(Transform):
    """Shift in x and y by up to ``max_shift`` body units (z is left alone)."""

    max_shift: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.max_shift >= 0, self.name, f"max_shift must be >= 0, got {self.max_shift}")

    def apply(self, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        dx, dy = rng.uniform(-self.max_shift, self.max_shift, 2)
        return lm + np.array([dx, dy, 0.0], dtype=np.float32)


@register_transform("kinematic_noise")
@dataclass
class KinematicNoise(Transform):
    """Temporally correlated jitter: Gaussian noise smoothed along time (Gaussian kernel of
    ``correlation_frames`` frames), rescaled to standard deviation ``sigma``."""

    sigma: float = 0.01
    correlation_frames: float = 3.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.sigma >= 0, self.name, f"sigma must be >= 0, got {self.sigma}")
        _require(self.correlation_frames >= 0, self.name, f"correlation_frames must be >= 0, got {self.correlation_frames}")

    def apply(self, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal(lm.shape)
        if self.correlation_frames > 0 and lm.shape[0] > 1:
            noise = gaussian_filter1d(noise, self.correlation_frames, axis=0, mode="reflect")
            noise /= max(float(noise.std()), 1e-12)
        return lm + (self.sigma * noise).astype(np.float32)


@register_transform("time_warp")
@dataclass
class TimeWarp(Transform):
    """Speed change by a factor in ``[min_speed, max_speed]`` (T' = round(T / speed)) composed with
    a smooth monotone warp ``u + a sin(pi u) / pi`` (|a| <= ``warp_strength`` < 1) of normalised
    time; linear resampling keeps the first and last frames."""

    min_speed: float = 0.5
    max_speed: float = 1.5
    warp_strength: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0 < self.min_speed <= self.max_speed, self.name, f"need 0 < min_speed <= max_speed, got {self.min_speed}, {self.max_speed}")
        _require(0 <= self.warp_strength < 1, self.name, f"warp_strength must be in [0, 1) to stay monotone, got {self.warp_strength}")

    def apply(self, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        t = lm.shape[0]
        speed = rng.uniform(self.min_speed, self.max_speed)
        a = rng.uniform(-self.warp_strength, self.warp_strength)
        if t == 1:
            return lm.copy()
        new_t = max(2, int(round(t / speed)))
        u = np.linspace(0.0, 1.0, new_t)
        warped = u + a * np.sin(np.pi * u) / np.pi
        return _interp_at(lm, warped * (t - 1))


@register_transform("mirror")
@dataclass
class Mirror(Transform):
    """Left-right mirror image: swap the signer's sides (``MIRROR_PERMUTATION``) and negate x."""

    def apply(self, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return mirror(lm)


def mirror(lm: np.ndarray) -> np.ndarray:
    """Mirror ``(..., 75, 3)`` landmarks about x = 0; mirroring twice gives the input back."""
    out = np.array(lm, dtype=np.float32)[..., MIRROR_PERMUTATION, :]
    out[..., 0] *= -1.0
    return out


@register_transform("frame_drop")
@dataclass
class FrameDrop(Transform):
    """Drop a random fraction (up to ``max_fraction``) of the frames, keeping order and at least
    ``min_frames`` (or all frames of a shorter clip)."""

    max_fraction: float = 0.2
    min_frames: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0 <= self.max_fraction < 1, self.name, f"max_fraction must be in [0, 1), got {self.max_fraction}")
        _require(self.min_frames >= 1, self.name, f"min_frames must be >= 1, got {self.min_frames}")

    def apply(self, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        t = lm.shape[0]
        n_drop = min(int(np.floor(rng.uniform(0, self.max_fraction) * t)), max(t - self.min_frames, 0))
        if n_drop == 0:
            return lm.copy()
        keep = np.sort(rng.permutation(t)[n_drop:])
        return lm[keep]


@register_transform("landmark_dropout")
@dataclass
class LandmarkDropout(Transform):
    """Set single points to NaN with probability ``point_p`` per point and frame, and a whole hand
    with probability ``hand_p`` per hand and frame (simulating missed detections)."""

    point_p: float = 0.02
    hand_p: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(0 <= self.point_p <= 1, self.name, f"point_p must be in [0, 1], got {self.point_p}")
        _require(0 <= self.hand_p <= 1, self.name, f"hand_p must be in [0, 1], got {self.hand_p}")

    def apply(self, lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        t = lm.shape[0]
        drop = rng.random((t, N_POINTS)) < self.point_p
        hand_drop = rng.random((t, 2)) < self.hand_p
        for k, part in enumerate(HANDS):
            drop[:, part] |= hand_drop[:, k : k + 1]
        out = lm.copy()
        out[drop] = np.nan
        return out


class Compose:
    """Apply transforms in order: ``Compose([...])(lm, rng)``; ``rng`` may also be an int seed."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        for t in transforms:
            if not isinstance(t, Transform):
                raise ValueError(f"Compose: expected Transform instances, got {type(t).__name__}")
        self.transforms = list(transforms)

    def __call__(self, lm: np.ndarray, rng: np.random.Generator | int) -> np.ndarray:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        out = _check_lm(lm)
        for t in self.transforms:
            out = t(out, gen)
        return out

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"

    def to_spec(self) -> list[dict[str, Any]]:
        """The spec list that rebuilds this pipeline with :func:`build_augmentation`."""
        return [t.to_dict() for t in self.transforms]


def build_transform(spec: dict[str, Any]) -> Transform:
    """One transform from ``{"name": ..., **params}``; unknown names/parameters raise ``ValueError``."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"augmentation spec must be a dict with a 'name' key, got {spec!r}")
    name = spec["name"]
    cls = TRANSFORMS.get(name)
    params = {k: v for k, v in spec.items() if k != "name"}
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"augmentation transform {name!r}: unknown parameters {unknown}; allowed are {sorted(allowed)}")
    return cls(**params)


def build_augmentation(spec: Sequence[dict[str, Any]] | None) -> Compose:
    """A :class:`Compose` from a config's list of transform dicts (``None`` or ``[]``: identity)."""
    return Compose([build_transform(s) for s in (spec or [])])


def default_augmentation() -> list[dict[str, Any]]:
    """A sensible default spec for isolated-sign training (mirror off: handedness can matter)."""
    return [
        {"name": "rotate", "max_degrees": 12.0, "max_tilt_degrees": 5.0, "p": 0.5},
        {"name": "scale", "min_scale": 0.9, "max_scale": 1.1, "p": 0.5},
        {"name": "shear", "max_shear": 0.1, "p": 0.3},
        {"name": "translate", "max_shift": 0.05, "p": 0.3},
        {"name": "kinematic_noise", "sigma": 0.01, "correlation_frames": 3.0, "p": 0.5},
        {"name": "time_warp", "min_speed": 0.8, "max_speed": 1.25, "warp_strength": 0.3, "p": 0.5},
        {"name": "frame_drop", "max_fraction": 0.1, "p": 0.2},
        {"name": "landmark_dropout", "point_p": 0.01, "hand_p": 0.05, "p": 0.3},
    ]

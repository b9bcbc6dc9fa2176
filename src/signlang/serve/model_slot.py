"""The served model and its replacement without downtime.

:class:`ModelSlot` holds the :class:`~signlang.inference.predictor.Predictor` that answers now.
:meth:`ModelSlot.reload` loads a new one beside it (the loaders check every file's sha256 and
refuse pickles), verifies it (:func:`verify_predictor`), then swaps the reference in one
assignment: a batch already running keeps the predictor it started with, the next batch takes
the new one, and the old one is closed when its last batch ends. A bundle that fails to load or
verify is refused with the reason and the old model keeps serving.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

PARITY_ATOL = 1e-5


class ReloadError(ValueError):
    """The new model was refused (it does not load or does not verify); the old one keeps serving."""


@dataclass(frozen=True)
class ModelIdentity:
    """What /health reports: the manifest's sha256 (16 hex digits) and its creation time."""

    model_id: str
    model_version: str
    path: str

    @classmethod
    def of(cls, folder: str | Path) -> "ModelIdentity":
        manifest = Path(folder) / "manifest.json"
        raw = manifest.read_bytes()
        try:
            d = json.loads(raw)
        except json.JSONDecodeError:
            d = {}
        created = str(d.get("created_utc") or d.get("created") or "unknown") if isinstance(d, dict) else "unknown"
        return cls(hashlib.sha256(raw).hexdigest()[:16], created, str(folder))


def probe_clips(n: int = 3, frames: int = 48, seed: int = 1234) -> list[np.ndarray]:
    """Deterministic clips ``[(T, 75, 3)]`` with every part present, for verifying a model."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.2, 0.8, size=(frames - 8 * i, 75, 3)).astype(np.float32) for i in range(n)]


def verify_predictor(predictor: Any) -> None:
    """Refuse a model that would answer badly: raise :class:`ReloadError` naming the check.

    * its ONNX export's recorded parity (ONNX vs PyTorch) is within the recorded tolerance;
    * on probe clips its probabilities are finite, in [0, 1], sum to 1 per clip;
    * batched and one-by-one answers agree to ``PARITY_ATOL`` (dynamic batching must not change answers).
    """
    runner = getattr(predictor, "runner", None)
    parity = getattr(runner, "manifest", {}).get("parity") if runner is not None else None
    if parity is not None:
        diff, tol = parity.get("max_abs_diff_all"), parity.get("tolerance")
        if diff is None or tol is None or not float(diff) <= float(tol):
            raise ReloadError(f"ONNX parity record fails: max_abs_diff_all={diff} > tolerance={tol}")
    clips = probe_clips()
    batched = np.asarray(predictor.proba(clips), dtype=np.float64)
    n_classes = len(predictor.classes)
    if batched.shape != (len(clips), n_classes):
        raise ReloadError(f"probe: expected probabilities of shape {(len(clips), n_classes)}, got {batched.shape}")
    if not np.isfinite(batched).all() or (batched < -1e-6).any() or (batched > 1 + 1e-6).any():
        raise ReloadError("probe: probabilities are not finite numbers in [0, 1]")
    if not np.allclose(batched.sum(axis=1), 1.0, atol=1e-3):
        raise ReloadError(f"probe: probabilities do not sum to 1 (sums {batched.sum(axis=1).round(4).tolist()})")
    single = np.concatenate([np.asarray(predictor.proba([c]), dtype=np.float64) for c in clips])
    worst = float(np.abs(single - batched).max())
    if worst > PARITY_ATOL:
        raise ReloadError(f"probe: batched and single-clip answers differ by {worst:.2e} (> {PARITY_ATOL})")


class ModelSlot:
    """The predictor answering now, swapped atomically by :meth:`reload`.

    ``loader(path)`` builds a Predictor (the service passes its backend and thread settings).
    """

    def __init__(self, predictor: Any, loader: Callable[[str], Any] | None = None, *, path: str | None = None) -> None:
        self.predictor = predictor
        self.loader = loader
        self.identity = ModelIdentity.of(path or predictor.model_dir)
        self.reloads = 0
        self._reload_lock = threading.Lock()
        self._users: dict[int, int] = {}
        self._retired: dict[int, Any] = {}
        self._count_lock = threading.Lock()

    @contextmanager
    def use(self) -> Iterator[Any]:
        """The current predictor, held until the block ends (a swapped-out one closes after)."""
        with self._count_lock:
            p = self.predictor
            self._users[id(p)] = self._users.get(id(p), 0) + 1
        try:
            yield p
        finally:
            with self._count_lock:
                self._users[id(p)] -= 1
                done = self._users[id(p)] == 0 and id(p) in self._retired
                if done:
                    self._retired.pop(id(p))
                    self._users.pop(id(p))
            if done:
                p.close()

    def reload(self, path: str | None = None) -> ModelIdentity:
        """Load ``path`` (default: the folder served now), verify it, swap it in; blocking.

        Raises :class:`ReloadError` (the old model keeps serving) or ``RuntimeError`` when a
        reload is already running.
        """
        if self.loader is None:
            raise ReloadError("this service was started without a model loader; reload is not available")
        if not self._reload_lock.acquire(blocking=False):
            raise RuntimeError("a reload is already running")
        try:
            target = path or self.identity.path
            try:
                identity = ModelIdentity.of(target)
                new = self.loader(target)
            except (OSError, ValueError) as exc:
                raise ReloadError(f"{target}: refused: {exc}") from None
            try:
                verify_predictor(new)
            except ReloadError as exc:
                new.close()
                raise ReloadError(f"{target}: refused: {exc}") from None
            with self._count_lock:
                old, self.predictor = self.predictor, new
                self.identity = identity
                self.reloads += 1
                idle = self._users.get(id(old), 0) == 0
                if not idle:
                    self._retired[id(old)] = old
                else:
                    self._users.pop(id(old), None)
            if idle:
                old.close()
            return identity
        finally:
            self._reload_lock.release()

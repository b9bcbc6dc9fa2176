"""Experiment tracking: an MLflow tracker and a null tracker with the same interface.

:func:`make_tracker` returns an :class:`MLflowTracker` when tracking is on (params, per-epoch
metrics, artifacts; a local sqlite store ``sqlite:///<out_dir or ~/.signlang>/mlflow.db`` unless
a ``tracking_uri`` names a server) and a :class:`NullTracker` otherwise. ``mlflow`` is imported
lazily, so the core runs without it. Both are context managers: ``with make_tracker(...) as t``
starts the run and ends it (as FAILED when the block raises).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from signlang.training.config import TrackingConfig

_MAX_PARAM_LEN = 6000  # MLflow's limit on a param value's length


class Tracker(Protocol):
    """What the training code calls; :class:`NullTracker` and :class:`MLflowTracker` implement it."""

    run_id: str | None

    def start(self, run_name: str | None = None) -> "Tracker": ...
    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...


class _ContextMixin:
    def __enter__(self) -> Any:
        return self.start()  # type: ignore[attr-defined]

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.end("FAILED" if exc_type is not None else "FINISHED")  # type: ignore[attr-defined]


class NullTracker(_ContextMixin):
    """Tracking off: accepts every call and records nothing, so callers need no ``if tracker``."""

    run_id: str | None = None

    def start(self, run_name: str | None = None) -> "NullTracker":
        return self

    def log_params(self, params: Mapping[str, Any]) -> None:
        return None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        return None

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        return None

    def set_tags(self, tags: Mapping[str, str]) -> None:
        return None

    def end(self, status: str = "FINISHED") -> None:
        return None


def default_tracking_uri(out_dir: str | os.PathLike[str] | None = None) -> str:
    """``sqlite:///<out_dir>/mlflow.db``, or under ``~/.signlang`` without an output folder."""
    base = Path(out_dir) if out_dir is not None else Path.home() / ".signlang"
    base.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{base.resolve() / 'mlflow.db'}"


class MLflowTracker(_ContextMixin):
    """One MLflow run, logged through an explicit ``MlflowClient`` (no global active-run state)."""

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = "signlang",
        *,
        out_dir: str | os.PathLike[str] | None = None,
        artifact_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri or default_tracking_uri(out_dir)
        self.experiment = experiment
        base = Path(out_dir) if out_dir is not None else Path.home() / ".signlang"
        self.artifact_dir = Path(artifact_dir) if artifact_dir is not None else base / "mlruns"
        self.run_id: str | None = None
        self._client: Any = None

    def _mlflow_client(self) -> Any:
        if self._client is None:
            try:
                from mlflow.tracking import MlflowClient
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ImportError("experiment tracking needs mlflow: pip install 'signlang[track]'") from exc
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def start(self, run_name: str | None = None) -> "MLflowTracker":
        """Create (or reuse) the experiment and open a new run."""
        if self.run_id is not None:
            return self
        client = self._mlflow_client()
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            location = None
            if self.tracking_uri.startswith("sqlite:") or "://" not in self.tracking_uri:
                self.artifact_dir.mkdir(parents=True, exist_ok=True)
                location = self.artifact_dir.resolve().as_uri()
            exp_id = client.create_experiment(self.experiment, artifact_location=location)
        else:
            exp_id = exp.experiment_id
        self.run_id = client.create_run(exp_id, run_name=run_name).info.run_id
        return self

    def _require_run(self) -> Any:
        if self.run_id is None:
            self.start()
        return self._mlflow_client()

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (values stringified; lists/dicts as their repr, cut to MLflow's limit)."""
        from mlflow.entities import Param

        client = self._require_run()
        items = [Param(str(k), str(v)[:_MAX_PARAM_LEN]) for k, v in params.items()]
        for s in range(0, len(items), 100):
            client.log_batch(self.run_id, params=items[s : s + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log numeric metrics at ``step`` (non-finite values are skipped: MLflow rejects NaN in some stores)."""
        import time

        from mlflow.entities import Metric

        client = self._require_run()
        ts = int(time.time() * 1000)
        items = [Metric(str(k), float(v), ts, int(step or 0)) for k, v in metrics.items() if math.isfinite(float(v))]
        if items:
            client.log_batch(self.run_id, metrics=items)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a file or folder into the run's artifacts."""
        p = Path(path)
        if not p.exists():
            raise ValueError(f"log_artifact: {p} does not exist")
        client = self._require_run()
        if p.is_dir():
            client.log_artifacts(self.run_id, str(p), artifact_path)
        else:
            client.log_artifact(self.run_id, str(p), artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        client = self._require_run()
        for k, v in tags.items():
            client.set_tag(self.run_id, str(k), str(v))

    def end(self, status: str = "FINISHED") -> None:
        """Close the run (``FINISHED`` / ``FAILED`` / ``KILLED``)."""
        if self.run_id is not None and self._client is not None:
            self._client.set_terminated(self.run_id, status=status)


def make_tracker(
    cfg: TrackingConfig | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    enabled: bool | None = None,
    tracking_uri: str | None = None,
) -> NullTracker | MLflowTracker:
    """The tracker for ``cfg`` (arguments override it): MLflow when enabled, else the null tracker."""
    cfg = cfg or TrackingConfig()
    on = cfg.enabled if enabled is None else enabled
    if not on:
        return NullTracker()
    return MLflowTracker(tracking_uri or cfg.tracking_uri, cfg.experiment, out_dir=out_dir)

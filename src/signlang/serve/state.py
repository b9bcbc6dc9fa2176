"""What every route of one app shares: settings, keys, metrics, the served model and the limiters.

One :class:`ServiceState` per app, built by :func:`signlang.serve.app.create_app` and kept in
``app.state.service``. Routers (:mod:`signlang.serve.routes`) reach it through the dependencies of
:mod:`signlang.serve.deps`, so no router imports the app module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from signlang.landmarks.extract import Landmarker
from signlang.serve.batching import Batcher, Gate
from signlang.serve.live import LiveMetrics
from signlang.serve.metrics import ServiceMetrics
from signlang.serve.model_slot import ModelSlot
from signlang.serve.security import ApiKeys
from signlang.serve.settings import ServiceSettings


@dataclass
class ServiceState:
    """The shared parts of one app. ``heavy`` bounds the CPU-heavy work (videos, explanations);
    ``slot`` holds the model answering now (``/admin/reload`` swaps it for every route, ``/ws/live`` included)."""

    settings: ServiceSettings
    keys: ApiKeys
    metrics: ServiceMetrics
    slot: ModelSlot
    batcher: Batcher
    heavy: Gate
    live_metrics: LiveMetrics
    live_open: int = 0  # open /ws/live connections
    shutting_down: bool = False
    explainers: dict[Any, Any] = field(default_factory=dict)  # per (frame, landmark) method pair, for one model
    landmarker: Landmarker = field(default_factory=Landmarker)  # the one video -> landmarks function, graphs kept

    @property
    def predictor(self) -> Any:
        """The predictor answering now (use ``slot.use()`` to hold it across a long call)."""
        return self.slot.predictor


def service_of(conn: HTTPConnection) -> ServiceState:
    """The :class:`ServiceState` of the app serving ``conn`` (a Request or a WebSocket)."""
    return conn.app.state.service

"""What every route of one app shares: settings, metrics, the served model and the limiters.

Routers (``serve/explain_route.py``, the live WebSocket router, ...) reach it through
``request.app.state.service`` (:func:`service_of`), so no router imports the app module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from signlang.serve.batching import Batcher, Gate
from signlang.serve.metrics import ServiceMetrics
from signlang.serve.model_slot import ModelSlot
from signlang.serve.settings import ServiceSettings


@dataclass
class ServiceState:
    """The shared parts of one app. ``heavy`` bounds the CPU-heavy work (videos, explanations)."""

    settings: ServiceSettings
    metrics: ServiceMetrics
    slot: ModelSlot
    batcher: Batcher
    heavy: Gate
    shutting_down: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def predictor(self) -> Any:
        """The predictor answering now (use ``slot.use()`` to hold it across a long call)."""
        return self.slot.predictor


def service_of(conn: HTTPConnection) -> ServiceState:
    """The :class:`ServiceState` of the app serving ``conn`` (a Request or a WebSocket)."""
    return conn.app.state.service

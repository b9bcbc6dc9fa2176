"""``POST /admin/reload``: load a bundle, verify it and swap it in for every route (``/ws/live`` included).

The same swap runs on SIGHUP (:func:`reload_model`, called by the app's lifespan).
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from signlang.serve.deps import Service, admin_allowed
from signlang.serve.model_slot import ReloadError
from signlang.serve.routes.health import health_doc
from signlang.serve.schemas import HealthResponse, ReloadRequest, ServiceError, error_responses
from signlang.serve.state import ServiceState

router = APIRouter(prefix="/admin", dependencies=[Depends(admin_allowed)])


async def reload_model(state: ServiceState, path: str | None) -> dict[str, Any]:
    """Load ``path`` (default: the folder served now) into the slot; the ``/health`` document after.

    Raises :class:`ServiceError` 422 (refused: the old model keeps serving) or 409 (a reload is running).
    """
    try:
        identity = await to_thread.run_sync(state.slot.reload, path)
    except ReloadError as exc:
        state.metrics.reloads.labels("refused").inc()
        raise ServiceError(422, "reload_refused", f"{exc}; the previous model keeps serving") from None
    except RuntimeError as exc:
        raise ServiceError(409, "reload_running", str(exc)) from None
    state.metrics.reloads.labels("ok").inc()
    state.metrics.set_model(identity.model_id, identity.model_version, state.slot.predictor.backend)
    return health_doc(state)


@router.post("/reload", response_model=HealthResponse, responses=error_responses(403, 409, 422))
async def admin_reload(service: Service, body: ReloadRequest | None = None) -> Any:
    """Load a bundle (default: the folder served now), verify it (sha256, parity, probe) and swap it in.

    A refused bundle leaves the old one serving. Without API keys only loopback clients may call it.
    """
    return JSONResponse(await reload_model(service, body.model if body else None))

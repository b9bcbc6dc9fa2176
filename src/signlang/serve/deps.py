"""The dependencies every router of :mod:`signlang.serve.routes` shares (FastAPI ``Depends``).

* :data:`Service` — the app's :class:`~signlang.serve.state.ServiceState` (settings, keys, model
  slot, batcher, gates, metrics);
* :data:`Settings`, :data:`Slot` — its settings and its model slot (the model answering now);
* :data:`TopK` — the ``k`` query parameter of the prediction routes;
* :func:`admin_allowed` — the guard of ``/admin/*``.

API keys: HTTP routes are guarded by :class:`~signlang.serve.security.ApiKeyMiddleware` (it answers
401 before a body is read, and also guards ``/docs`` and unknown paths); the WebSocket applies the
same :meth:`~signlang.serve.security.ApiKeys.refusal` to its key (``routes/live.py``).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.requests import HTTPConnection

from signlang.serve.model_slot import ModelSlot
from signlang.serve.schemas import ServiceError
from signlang.serve.settings import ServiceSettings
from signlang.serve.state import ServiceState, service_of


# The dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, a
# thread hop (and GIL hand-offs) per request for a field lookup (measured: 5 % of the event loop's
# time under 50 clients).


async def _service(conn: HTTPConnection) -> ServiceState:
    return service_of(conn)


async def _settings(conn: HTTPConnection) -> ServiceSettings:
    return service_of(conn).settings


async def _slot(conn: HTTPConnection) -> ModelSlot:
    return service_of(conn).slot


Service = Annotated[ServiceState, Depends(_service)]
Settings = Annotated[ServiceSettings, Depends(_settings)]
Slot = Annotated[ModelSlot, Depends(_slot)]
TopK = Annotated[int, Query(ge=1, le=100, description="How many signs to return.")]


def is_loopback(conn: HTTPConnection) -> bool:
    """Whether the client is this machine (``127.0.0.0/8``, ``::1`` or ``localhost``)."""
    host = conn.client.host if conn.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def admin_allowed(request: Request, service: Service) -> None:
    """403 unless reloads are allowed and, without API keys, the client is on loopback."""
    if not service.settings.allow_reload:
        raise ServiceError(403, "forbidden", "model reload is disabled on this server")
    if not service.keys and not is_loopback(request):
        raise ServiceError(403, "forbidden", "without API keys, /admin/reload is only open to loopback clients")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 past ``limit`` bytes (by header first, then while reading)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ServiceError(413, "too_large", f"request body of {length} bytes exceeds the limit of {limit} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ServiceError(413, "too_large", f"request body exceeds the limit of {limit} bytes")
    return bytes(raw)

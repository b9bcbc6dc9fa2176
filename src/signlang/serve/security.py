"""Access control as pure ASGI middleware: API keys (``Authorization: Bearer``) and per-client rate limits.

* Keys: when the set of keys is not empty, every route except :data:`PUBLIC_PATHS` needs
  ``Authorization: Bearer <key>``; a missing or wrong key gets 401 (compared in constant time).
* Rate limit: a token bucket per client (the API key when keys are set, else the peer address);
  past it, 429 with ``Retry-After``. Per worker process: with ``--workers N`` a client may get up
  to N times the rate (documented in docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

PUBLIC_PATHS = frozenset({"/health", "/ready"})
_MAX_CLIENTS = 10_000  # buckets kept; full (idle) buckets are dropped past this


async def _send_error(send: Send, status: int, code: str, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps({"error": code, "detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class ApiKeyMiddleware:
    """401 unless the request carries one of ``keys`` (no-op when ``keys`` is empty)."""

    def __init__(self, app: ASGIApp, keys: Iterable[str]) -> None:
        self.app = app
        self.digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.digests or scope.get("path") in PUBLIC_PATHS or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        if token is None:
            await _send_error(send, 401, "unauthorized", "this server needs an API key: send the header 'Authorization: Bearer <key>'",
                              {"WWW-Authenticate": "Bearer"})
            return
        digest = hashlib.sha256(token.encode()).digest()
        if not any(hmac.compare_digest(digest, d) for d in self.digests):
            await _send_error(send, 401, "unauthorized", "the API key is not valid", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return
        await self.app(scope, receive, send)


class RateLimitMiddleware:
    """Token bucket per client: ``rate`` requests/s on average, bursts up to ``burst``; past it 429."""

    def __init__(self, app: ASGIApp, rate: float, burst: int, metrics: Any = None) -> None:
        self.app = app
        self.rate = rate
        self.burst = float(burst)
        self.metrics = metrics
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last time)

    def _client(self, scope: Scope) -> str:
        token = bearer_token(scope)
        if token:
            return "key:" + hashlib.sha256(token.encode()).hexdigest()[:16]
        client = scope.get("client")
        return "addr:" + (client[0] if client else "unknown")

    def take(self, client: str, now: float) -> float:
        """Take one token; return 0 when allowed, else the seconds until a token is free."""
        tokens, last = self.buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self.buckets[client] = (tokens - 1.0, now)
            return 0.0
        self.buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        if len(self.buckets) > _MAX_CLIENTS:
            full = [c for c, (t, last) in self.buckets.items() if t + (now - last) * self.rate >= self.burst]
            for c in full:
                del self.buckets[c]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.rate <= 0 or scope.get("path") in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        now = time.monotonic()
        self._prune(now)
        wait = self.take(self._client(scope), now)
        if wait > 0:
            if self.metrics is not None:
                self.metrics.rejected.labels("rate_limit").inc()
            await _send_error(send, 429, "rate_limited",
                              f"more than {self.rate:g} requests/s (burst {self.burst:g}) from this client; retry later",
                              {"Retry-After": str(max(1, math.ceil(wait)))})
            return
        await self.app(scope, receive, send)

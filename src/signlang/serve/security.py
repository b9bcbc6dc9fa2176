"""Access control as pure ASGI middleware: API keys (``Authorization: Bearer``) and per-client rate limits.

* Keys: when the set of keys is not empty, every route except :data:`PUBLIC_PATHS` and the live
  page's own files (:data:`PAGE_PATHS`, :data:`PAGE_PREFIXES`: HTML, script, style, MediaPipe
  assets; no data, no model, so the page can load and ask for a key) needs
  ``Authorization: Bearer <key>``; a missing or wrong key gets 401 (compared in constant time).
  The one check is :meth:`ApiKeys.refusal`: :class:`ApiKeyMiddleware` applies it to HTTP requests
  (before a body is read), the WebSocket ``/ws/live`` to its key (:func:`socket_token`: the header
  or ``?token=``, since browsers cannot set headers on a socket).
* Logs: :class:`RedactKeysFilter` (in :func:`log_config`, the uvicorn logging of ``signlang
  serve``) replaces the value of every ``token=`` in a logged line, e.g. uvicorn's
  ``"WebSocket /ws/live?token=..." [accepted]``.
* Rate limit: a token bucket per client (the API key when keys are set, else the peer address);
  past it, 429 with ``Retry-After``. Per worker process: with ``--workers N`` a client may get up
  to N times the rate (documented in docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

PUBLIC_PATHS = frozenset({"/health", "/ready"})
PAGE_PATHS = frozenset({"/"})  # the live page: open to all with keys set (no rate-limit exemption)
PAGE_PREFIXES = ("/static/",)
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


class ApiKeys:
    """The accepted API keys (kept as sha256 digests); empty = no authentication."""

    MISSING = "this server needs an API key: send the header 'Authorization: Bearer <key>'"
    INVALID = "the API key is not valid"

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self.digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    def __bool__(self) -> bool:
        return bool(self.digests)

    def __len__(self) -> int:
        return len(self.digests)

    def refusal(self, token: str | None) -> str | None:
        """Why ``token`` is refused (:attr:`MISSING` / :attr:`INVALID`), or ``None`` when it is accepted
        (always without keys). Compared in constant time."""
        if not self.digests:
            return None
        if not token:
            return self.MISSING
        digest = hashlib.sha256(token.encode()).digest()
        return None if any(hmac.compare_digest(digest, d) for d in self.digests) else self.INVALID


def socket_token(scope: Scope) -> str | None:
    """A WebSocket's key: ``Authorization: Bearer`` or, for browsers (which cannot set headers), ``?token=``."""
    token = bearer_token(scope)
    if token:
        return token
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        if name == "token" and value:
            return value
    return None


class ApiKeyMiddleware:
    """401 unless an HTTP request carries one of ``keys`` (:meth:`ApiKeys.refusal`; no-op without keys)."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or not self.keys or path in PUBLIC_PATHS or scope.get("method") == "OPTIONS"
                or (scope.get("method") in ("GET", "HEAD") and (path in PAGE_PATHS or path.startswith(PAGE_PREFIXES)))):
            await self.app(scope, receive, send)
            return
        refusal = self.keys.refusal(bearer_token(scope))
        if refusal is not None:
            challenge = "Bearer" if refusal == ApiKeys.MISSING else 'Bearer error="invalid_token"'
            await _send_error(send, 401, "unauthorized", refusal, {"WWW-Authenticate": challenge})
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


_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']*")


def redact_keys(text: str) -> str:
    """``text`` with the value of every ``token=...`` (a URL query parameter) replaced by ``***``."""
    return _TOKEN_IN_TEXT.sub(r"\1***", text)


class RedactKeysFilter(logging.Filter):
    """A logging filter that keeps API keys sent as ``?token=`` out of log lines (message and arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = redact_keys(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_keys(a) if isinstance(a, str) and "token=" in a else a for a in record.args)
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration with :class:`RedactKeysFilter` on every handler.

    A plain dict (``logging.config.dictConfig``), so ``--workers N`` hands it to every worker.
    """
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_keys"] = {"()": f"{__name__}.RedactKeysFilter"}
    for handler in config["handlers"].values():
        handler["filters"] = [*handler.get("filters", []), "redact_keys"]
    return config

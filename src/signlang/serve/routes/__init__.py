"""The service's routers (FastAPI's "bigger applications" layout): one :class:`fastapi.APIRouter` per
module, on the shared dependencies of :mod:`signlang.serve.deps`.

* ``health``  — ``GET /health``, ``/ready``, ``/metrics``
* ``predict`` — ``POST /predict``, ``/predict/landmarks``; ``GET /signs``
* ``explain`` — ``POST /explain``
* ``admin``   — ``POST /admin/reload``
* ``live``    — ``GET /`` (the page), ``/static/...``, ``/live/config``; WebSocket ``/ws/live``
* ``web``     — ``GET /web/config``, ``/web/model.onnx``, ``/web/segmenter.onnx``: recognition in the page

:data:`ROUTERS` is the one list ``create_app`` (serve/app.py) includes; no router imports the app module.
"""

from __future__ import annotations

from fastapi import APIRouter

from signlang.serve.routes import admin, explain, health, live, predict, web

ROUTERS: tuple[APIRouter, ...] = (health.router, predict.router, explain.router, admin.router, live.router, web.router)

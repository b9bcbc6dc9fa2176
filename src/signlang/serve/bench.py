"""Service overhead benchmark: a real uvicorn server on loopback, timed from the client."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from signlang.inference.benchmark import CLIP_FRAMES, random_clips


def service_overhead(predictor: Any, *, frames: int = CLIP_FRAMES, repeats: int = 200, budget_s: float = 10.0) -> dict[str, Any]:
    """Time ``POST /predict/landmarks`` over loopback minus the predictor's own total (ms)."""
    import httpx

    from signlang.serve.app import ServiceSettings, create_app
    from signlang.serve.server import BackgroundServer

    lm = random_clips(1, frames, seed=7)[0]
    payload = {"landmarks": [[[None if np.isnan(c) else float(c) for c in p] for p in f] for f in lm]}
    body = httpx.Request("POST", "http://x/", json=payload).read()
    overhead, wall, pred = [], [], []
    with BackgroundServer(create_app(predictor, ServiceSettings(max_concurrency=1))) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as c:
        for _ in range(5):
            c.post("/predict/landmarks", content=body, headers={"content-type": "application/json"})
        deadline = time.perf_counter() + budget_s
        while len(wall) < repeats and (len(wall) < 10 or time.perf_counter() < deadline):
            t0 = time.perf_counter()
            r = c.post("/predict/landmarks", content=body, headers={"content-type": "application/json"})
            dt = (time.perf_counter() - t0) * 1e3
            r.raise_for_status()
            p = float(r.json()["timings_ms"]["total"])
            wall.append(dt)
            pred.append(p)
            overhead.append(dt - p)
    return {"requests": len(wall), "frames": frames, "json_bytes": len(body), "wall_p50_ms": float(np.median(wall)),
            "predictor_p50_ms": float(np.median(pred)), "overhead_p50_ms": float(np.median(overhead)),
            "overhead_p99_ms": float(np.percentile(overhead, 99))}

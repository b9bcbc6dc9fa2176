"""Property-based fuzzing of every route from the service's own OpenAPI schema (Schemathesis) against a
real uvicorn on loopback: no 5xx, every status code documented, every body matching its schema.

``.npy`` bodies are drawn from a strategy mixing well-formed arrays of random shapes and dtypes,
object arrays (pickles) and random bytes. Examples per route are bounded (``max_examples``).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)


@st.composite
def _npy_bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["array", "array", "pickle", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=512))
    if kind == "pickle":
        buf = io.BytesIO()
        np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        return buf.getvalue()
    lead = draw(st.lists(st.integers(0, 40), min_size=0, max_size=2))
    tail = draw(st.sampled_from([(75, 3), (225,), (258,), (1662,), (543, 3), (74, 3), (7,), ()]))
    dtype = draw(st.sampled_from(["float32", "float64", "float16", "int16", "uint8", "bool", "complex64"]))
    shape = (*lead, *tail)
    if int(np.prod(shape)) > 200_000:
        shape = tail
    fill = draw(st.sampled_from([0.0, 0.5, np.nan, np.inf, -1e30]))
    arr = np.full(shape, fill).astype(dtype) if dtype != "bool" else np.zeros(shape, bool)
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


schemathesis.openapi.media_type("application/x-npy", _npy_bodies())


@pytest.fixture(scope="module")
def fuzz_server(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    import torch

    from signlang.inference.predictor import Predictor
    from signlang.serve.app import create_app
    from signlang.serve.server import BackgroundServer
    from signlang.serve.settings import ServiceSettings

    torch.set_num_threads(1)
    settings_ = ServiceSettings(max_upload_mb=2.0, upload_root=str(tmp_path_factory.mktemp("fuzz-uploads")))
    with Predictor(tiny_bundle, backend="torch", threads=1) as p, BackgroundServer(create_app(p, settings_)) as srv:
        yield srv


@pytest.fixture(scope="module")
def api_schema(fuzz_server):
    return schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")


def _operations(api_schema) -> list:
    return [r.ok() for r in api_schema.get_all_operations()]


@pytest.mark.parametrize("examples", [6, pytest.param(60, marks=pytest.mark.slow)])
def test_every_route_from_the_openapi_schema(api_schema, fuzz_server, examples: int) -> None:
    from hypothesis import given

    operations = _operations(api_schema)
    labels = {f"{op.method.upper()} {op.path}" for op in operations}
    assert {"POST /predict/landmarks", "POST /predict", "POST /explain", "POST /admin/reload", "GET /health", "GET /ready",
            "GET /signs", "GET /metrics"} <= labels, labels
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=examples, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case) -> None:
            case.call_and_validate(base_url=fuzz_server.url, timeout=60, checks=checks)

        fuzz()
    import re

    import httpx

    metrics = httpx.get(f"{fuzz_server.url}/metrics", timeout=30).text
    seen: dict[str, float] = {}
    for route, status, n in re.findall(r'signlang_requests_total\{method="\w+",route="([^"]+)",status="(\d+)"\} ([0-9.]+)', metrics):
        seen[route] = seen.get(route, 0) + float(n)
        assert not status.startswith("5") or route == "/ready", (route, status)
    assert all(seen.get(path, 0) >= examples // 2 for path in ("/predict/landmarks", "/predict", "/explain", "/admin/reload")), seen

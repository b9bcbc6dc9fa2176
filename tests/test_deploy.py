"""deploy/: the Grafana dashboard reads metrics the service really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dashboard_reads_only_exported_metrics(tiny_bundle: Path) -> None:
    from fastapi.testclient import TestClient

    from signlang.inference.predictor import Predictor
    from signlang.serve.app import create_app

    dash = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b((?:signlang|process)_[a-z_]+)\{", e)}
    assert len(used) >= 10
    with Predictor(tiny_bundle, backend="torch", threads=1) as p, TestClient(create_app(p)) as client:
        client.post("/predict/landmarks", json={"landmarks": [[0.5] * 258] * 8})
        text = client.get("/metrics").text
    exported = set(re.findall(r"^([a-z_]+?)(?:\{| )", text, re.M))
    missing = sorted(m for m in used if m not in exported)
    assert not missing, missing

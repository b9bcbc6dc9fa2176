#!/usr/bin/env bash
# Does `pip install -e ".[track]"` ALONE, in a fresh virtual environment, record an MLflow run?
# (issue 10: mlflow-skinny needs SQLAlchemy and alembic for its sqlite store.) A clean copy of the
# tracked files is installed (the editable install writes egg-info beside the sources), a tiny
# synthetic data set is trained with `signlang train`, and the run is read back through MLflow's
# own client: it must exist, FINISHED, with params, validation metrics and the bundle's files.
# Slow (a fresh install downloads the core dependencies): run it by hand or with `pytest -m slow`.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
(cd "$repo" && git ls-files -z | xargs -0 tar cf - ) | tar xf - -C "$work/src"
python3.11 -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
unset PYTHONPATH
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e "$work/src[track]"
cd "$work"
python -c "
from signlang.datasets.loaders import save_npz
from signlang.datasets.synthetic import make_synthetic_dataset
save_npz(make_synthetic_dataset(n_classes=3, n_signers=3, clips_per_signer=4, seed=0, frames=(12, 18)), 'tiny.npz')
"
signlang train --data tiny.npz --out run --model xgboost --config cpu --quiet \
  --set data.target_frames=12 --set xgboost.n_estimators=4 --set xgboost.max_depth=2 | tee train.log
python - <<'PY'
import re
import sys
from pathlib import Path

import mlflow

log = Path("train.log").read_text()
m = re.search(r"mlflow: run (\w+) at (\S+)", log)
if not m:
    sys.exit(f"FAILED: signlang train logged no MLflow run:\n{log}")
run = mlflow.MlflowClient(m.group(2)).get_run(m.group(1))
artifacts = [a.path for a in mlflow.MlflowClient(m.group(2)).list_artifacts(run.info.run_id, "bundle")]
assert run.info.status == "FINISHED", run.info.status
assert run.data.params.get("models") == "xgboost", run.data.params
assert any(k.startswith("val_xgboost_") or k.startswith("time_") for k in run.data.metrics), run.data.metrics
assert "bundle/manifest.json" in artifacts, artifacts
import numpy, sqlalchemy, alembic  # noqa: E401 - the versions this fresh install resolved
print(f"OK: run {run.info.run_id} recorded at {m.group(2)} ({len(run.data.params)} params, {len(run.data.metrics)} metrics, "
      f"{len(artifacts)} bundle files); numpy {numpy.__version__}, sqlalchemy {sqlalchemy.__version__}, alembic {alembic.__version__}, "
      f"mlflow {mlflow.__version__}")
PY

"""MLflow tracking to a local sqlite store reads back; the null tracker takes the same calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from signlang.training.config import TrackingConfig
from signlang.training.tracking import MLflowTracker, NullTracker, default_tracking_uri, make_tracker


def test_mlflow_run_reads_back(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    tracker = make_tracker(TrackingConfig(enabled=True, experiment="unit"), out_dir=tmp_path)
    assert isinstance(tracker, MLflowTracker)
    assert tracker.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    note = tmp_path / "note.txt"
    note.write_text("hello")
    with tracker as t:
        t.log_params({"optim.lr": 0.001, "ensemble.models": ["transformer", "xgboost"]})
        for epoch, loss in enumerate([1.0, 0.5, 0.25], start=1):
            t.log_metrics({"train_loss": loss, "val_macro_f1": float("nan")}, step=epoch)
        t.set_tags({"stage": "test"})
        t.log_artifact(note)
    client = MlflowClient(tracking_uri=tracker.tracking_uri)
    run = client.get_run(tracker.run_id)
    assert run.data.params["optim.lr"] == "0.001"
    assert run.data.params["ensemble.models"] == "['transformer', 'xgboost']"
    assert run.data.tags["stage"] == "test"
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(tracker.run_id, "train_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(1, 1.0), (2, 0.5), (3, 0.25)]
    assert client.get_metric_history(tracker.run_id, "val_macro_f1") == []  # NaN is skipped
    assert [a.path for a in client.list_artifacts(tracker.run_id)] == ["note.txt"]


def test_failed_block_marks_run_failed(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    tracker = MLflowTracker(experiment="unit", out_dir=tmp_path)
    with pytest.raises(RuntimeError):
        with tracker:
            raise RuntimeError("boom")
    assert MlflowClient(tracking_uri=tracker.tracking_uri).get_run(tracker.run_id).info.status == "FAILED"
    with pytest.raises(ValueError, match="does not exist"):
        tracker.log_artifact(tmp_path / "missing.txt")


def test_null_tracker_when_off(tmp_path: Path) -> None:
    tracker = make_tracker(TrackingConfig(enabled=False), out_dir=tmp_path)
    assert isinstance(tracker, NullTracker)
    with tracker as t:
        t.log_params({"a": 1})
        t.log_metrics({"loss": 1.0}, step=1)
        t.log_artifact(tmp_path / "anything")
        t.set_tags({"x": "y"})
    assert t.run_id is None and list(tmp_path.iterdir()) == []  # wrote nothing
    assert default_tracking_uri(tmp_path / "o").endswith("/o/mlflow.db")

"""Temperature scaling: the estimator, the ensemble and bundle that carry it, both inference backends,
the training pipeline (fitted on the validation part) and `signlang calibrate` (on clips the bundle never saw)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_fixtures import TINY_TRAIN_OVERRIDES
from typer.testing import CliRunner

from signlang.cli import app
from signlang.datasets.clip import ClipSet
from signlang.datasets.synthetic import make_synthetic_dataset
from signlang.models.bundle import BundleError, load_bundle
from signlang.models.calibration import (
    TemperatureScaling,
    apply_temperature,
    cross_fitted_temperature,
    expected_calibration_error,
    negative_log_likelihood,
)
from signlang.training import pipeline
from signlang.training.config import load_config, merge_overrides, shipped_config_path

torch.set_num_threads(1)

TINY = TINY_TRAIN_OVERRIDES


def _miscalibrated(n: int = 600, classes: int = 4, shrink: float = 0.4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(logits), probabilities from softmax(shrink * logits): underconfident by 1/shrink."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 3
    true_p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(classes, p=p) for p in true_p])
    p = np.exp(shrink * logits)
    return y, p / p.sum(1, keepdims=True)


# --- the estimator ---------------------------------------------------------------------------
def test_temperature_scaling_recovers_a_known_temperature() -> None:
    y, p = _miscalibrated(shrink=0.4)
    scaler = TemperatureScaling().fit(p, y)
    assert scaler.temperature_ == pytest.approx(0.4, rel=0.2)
    r = scaler.fit_report_
    assert r["nll_after"] < r["nll_before"] and r["ece_after"] < r["ece_before"] / 2
    out = scaler.transform(p)
    assert np.array_equal(out.argmax(1), p.argmax(1))  # the answer never changes
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-5)
    y2, p2 = _miscalibrated(shrink=2.5, seed=1)  # overconfident: softened
    assert TemperatureScaling().fit(p2, y2).temperature_ == pytest.approx(2.5, rel=0.2)


def test_apply_temperature_identity_zeros_and_bad_values() -> None:
    p = np.array([[0.7, 0.3, 0.0], [0.2, 0.5, 0.3]], np.float32)
    np.testing.assert_array_equal(apply_temperature(p, 1.0), p)
    out = apply_temperature(p, 0.5)
    assert out[0, 2] == 0.0 and out[0, 0] == pytest.approx(0.49 / 0.58, rel=1e-5)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            apply_temperature(p, bad)
    with pytest.raises(ValueError, match=r"proba \(N, C\)"):
        TemperatureScaling().fit(p, np.array([0]))
    with pytest.raises(ValueError, match="no held-out clips"):
        TemperatureScaling().fit(np.zeros((0, 3)), np.zeros(0, int))


def test_metrics_by_hand() -> None:
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    y = np.array([0, 1, 1])
    assert negative_log_likelihood(y, p) == pytest.approx(-(np.log(0.9) + np.log(0.4) + np.log(0.8)) / 3)
    # bins (15): 0.9 -> bin 13 (right), 0.6 -> bin 9 (wrong), 0.8 -> bin 12 (right)
    assert expected_calibration_error(y, p) == pytest.approx((0.1 + 0.6 + 0.2) / 3)


def test_selective_accuracy_by_hand() -> None:
    from signlang.models.evaluation import selective_accuracy

    p = np.array([[0.95, 0.05], [0.6, 0.4], [0.8, 0.2], [0.55, 0.45]])
    y = np.array([0, 1, 0, 1])  # right (0.95), wrong (0.6), right (0.8), wrong (0.55)
    r5, r7, r9 = selective_accuracy(y, p)
    assert (r5["coverage"], r5["accuracy_answered"], r5["wrong_flagged"]) == (1.0, 0.5, 0.0)
    assert (r7["coverage"], r7["accuracy_answered"], r7["wrong_flagged"]) == (0.5, 1.0, 1.0)
    assert (r9["coverage"], r9["accuracy_answered"], r9["wrong_flagged"]) == (0.25, 1.0, 1.0)


def test_cross_fitted_temperature_never_reads_a_groups_own_labels() -> None:
    y, p = _miscalibrated(n=300)
    groups = np.repeat(np.arange(3), 100)
    out = cross_fitted_temperature(y, p, groups)
    y_changed = y.copy()
    y_changed[groups == 1] = (y_changed[groups == 1] + 1) % 4  # only group 1's labels differ
    out2 = cross_fitted_temperature(y_changed, p, groups)
    np.testing.assert_array_equal(out[groups == 1], out2[groups == 1])
    assert not np.allclose(out[groups == 0], out2[groups == 0])
    assert expected_calibration_error(y, out) < expected_calibration_error(y, p)


# --- ensemble, bundle and both backends ----------------------------------------------------
@pytest.fixture(scope="module")
def calibrated_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cal") / "bundle"
    shutil.copytree(tiny_bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["meta"]["temperature"] = 0.5
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_bundle_carries_the_temperature_to_both_backends(tiny_bundle: Path, calibrated_bundle: Path, tmp_path: Path) -> None:
    from bundle_fixtures import tiny_clips

    from signlang.inference.export import export_bundle
    from signlang.inference.predictor import Predictor
    from signlang.models.bundle import save_bundle

    plain, cal = load_bundle(tiny_bundle), load_bundle(calibrated_bundle)
    assert plain.ensemble.temperature_ == 1.0 and cal.ensemble.temperature_ == 0.5
    clips = tiny_clips().landmarks[:6]
    X = pipeline.normalize(clips, cal.preprocessing)
    expected = apply_temperature(plain.predict_proba(X), 0.5)
    np.testing.assert_allclose(cal.predict_proba(X), expected, atol=1e-5)
    torch_proba = Predictor(calibrated_bundle).proba(clips)
    np.testing.assert_allclose(torch_proba, expected, atol=1e-5)
    # save -> load keeps it; the ONNX export's plan carries it and ONNX Runtime applies it
    save_bundle(tmp_path / "resaved", cal.ensemble, classes=cal.classes, preprocessing=cal.preprocessing)
    assert load_bundle(tmp_path / "resaved").ensemble.temperature_ == 0.5
    export_bundle(calibrated_bundle, tmp_path / "onnx")
    onnx_proba = Predictor(tmp_path / "onnx", backend="onnx").proba(clips)
    np.testing.assert_allclose(onnx_proba, expected, atol=1e-4)


def test_a_bad_temperature_in_the_manifest_is_refused(calibrated_bundle: Path, tmp_path: Path) -> None:
    for bad in (0, -2.0, "hot", True):
        folder = tmp_path / f"b{bad}"
        shutil.copytree(calibrated_bundle, folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["meta"]["temperature"] = bad
        (folder / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(BundleError, match="meta.temperature must be a positive number"):
            load_bundle(folder)


# --- training and `signlang calibrate` -----------------------------------------------------
@pytest.fixture(scope="module")
def clips() -> ClipSet:
    return make_synthetic_dataset(n_classes=3, n_signers=5, clips_per_signer=2, seed=2, frames=(12, 18))


@pytest.fixture(scope="module")
def cfg():
    return merge_overrides(load_config(shipped_config_path("cpu")), TINY)


def test_training_fits_the_temperature_on_the_validation_part(clips: ClipSet, cfg, tmp_path: Path) -> None:
    report = pipeline.train_bundle(clips, tmp_path / "b", cfg, split="signer", track=False, progress=False)
    cal = report["calibration"]
    assert cal["method"] == "temperature" and cal["fitted_on"] == "the validation part"
    assert cal["n_clips"] == report["split"]["n_validation"] > 0
    assert load_bundle(tmp_path / "b").ensemble.temperature_ == pytest.approx(cal["temperature"])
    assert report["validation_summary"]["ensemble"]["ece"] == pytest.approx(cal["ece_before"])  # scores of the model as trained
    off = pipeline.train_bundle(clips, tmp_path / "off", merge_overrides(cfg, {"ensemble.calibration": "none"}),
                                split="signer", track=False, progress=False)
    assert off["calibration"]["method"] == "none" and load_bundle(tmp_path / "off").ensemble.temperature_ == 1.0


def test_signlang_calibrate_on_people_the_bundle_never_saw(clips: ClipSet, cfg, tmp_path: Path) -> None:
    from signlang.datasets.loaders import save_npz

    people = sorted(set(clips.signers.tolist()))
    mine = np.isin(clips.signers, people[:3])
    train, others = clips.subset(np.flatnonzero(mine)), clips.subset(np.flatnonzero(~mine))
    report = pipeline.train_bundle(train, tmp_path / "run", cfg, track=False, progress=False)
    assert report["calibration"]["method"] == "none" and "signlang calibrate" in report["calibration"]["why"]
    held = tmp_path / "held.npz"
    save_npz(others, held)
    weights_before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file() and p.name != "manifest.json"}
    res = CliRunner().invoke(app, ["calibrate", "--model", str(tmp_path / "run"), "--data", str(held)])
    assert res.exit_code == 0, res.output
    assert "temperature" in res.output and f"fitted on {len(others)} clips" in res.output
    b = load_bundle(tmp_path / "run")  # loads: the hashes of the untouched files still match
    record = b.manifest["extra"]["calibration"]
    assert b.ensemble.temperature_ == pytest.approx(record["temperature"]) and record["n_clips"] == len(others)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file() and p.name != "manifest.json"} == weights_before
    # clips it trained on are refused, naming them; a single model is refused with the reason
    save_npz(train, tmp_path / "train.npz")
    res = CliRunner().invoke(app, ["calibrate", "--model", str(tmp_path / "run"), "--data", str(tmp_path / "train.npz")])
    assert res.exit_code != 0 and "were used to train" in res.output
    pipeline.train_bundle(train, tmp_path / "single", cfg, models="xgboost", track=False, progress=False)
    res = CliRunner().invoke(app, ["calibrate", "--model", str(tmp_path / "single"), "--data", str(held)])
    assert res.exit_code != 0 and "single-model bundle" in res.output
    res = CliRunner().invoke(app, ["calibrate", "--model", "asl-cafe", "--data", str(held)])
    assert res.exit_code != 0 and "copy its folder" in res.output

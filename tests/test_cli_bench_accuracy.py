"""``signlang benchmark accuracy`` as a user runs it, on small synthetic sets and a tiny config: every part
writes its markdown + JSON beside ``--out`` and prints its table; a bad ``--parts`` is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from signlang.cli import app
from signlang.datasets.loaders import save_npz
from signlang.datasets.synthetic import make_synthetic_dataset

TINY = {
    "data": {"target_frames": 16, "smooth_window": 5, "smooth_order": 2},
    "xgboost": {"n_estimators": 6, "max_depth": 2, "learning_rate": 0.5, "early_stopping_rounds": None, "max_bin": 32},
    "bilstm": {"hidden": 8, "layers": 1},
    "optim": {"epochs": 2, "batch_size": 32},
    "ensemble": {"n_folds": 2, "models": ["xgboost", "bilstm"]},
    "device": "cpu",
}


@pytest.fixture()
def inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    main = make_synthetic_dataset(n_classes=3, n_signers=3, clips_per_signer=4, seed=0, frames=(16, 24))
    crowd = make_synthetic_dataset(n_classes=3, n_signers=4, clips_per_signer=2, seed=1, frames=(16, 24))
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    return save_npz(main, tmp_path / "main.npz"), save_npz(crowd, tmp_path / "crowd.npz"), cfg


def test_every_part_writes_its_report(inputs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    main, crowd, cfg = inputs
    out = tmp_path / "reports" / "acc.md"
    res = CliRunner().invoke(app, [
        "benchmark", "accuracy", "--data", str(main), "--crowd-data", str(crowd), "--config", str(cfg), "--split", "blocked:0.25",
        "--optimistic-split", "none", "--baselines", "lr", "--no-single", "--folds", "2", "--no-ablations", "--quiet",
        "--keep", str(tmp_path / "bundles"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    main_js = json.loads(out.with_suffix(".json").read_text())
    models = [r["model"] for r in main_js["rows"]]
    assert "ensemble (stacked)" in models and any("LR" in m or "lr" in m for m in models)
    assert main_js["setup"]["n_clips"] == 36 and main_js["setup"]["n_classes"] == 3 and main_js["setup"]["split"] == "blocked:0.25"
    for r in main_js["rows"]:
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["macro_f1"] <= 1.0 and r["infer_ms_per_clip"] > 0

    comb = json.loads((tmp_path / "reports" / "acc_combiners.json").read_text())
    assert comb["chosen"] in ("xgboost", "logistic", "mean") and set(comb["validation"]) == set(comb["test"])
    assert (tmp_path / "bundles" / "main-chosen-combiner" / "manifest.json").is_file()
    transfer = json.loads((tmp_path / "reports" / "acc_transfer.json").read_text())
    assert transfer["n_clips"] == 24 and 0.0 <= transfer["accuracy"] <= transfer["two_way_accuracy"] <= 1.0
    assert "Zero-shot: the bundle trained on main.npz" in (tmp_path / "reports" / "acc_transfer.md").read_text()
    cross = json.loads((tmp_path / "reports" / "acc_cross_signer.json").read_text())
    assert cross["rows"] and not cross.get("ablations")
    for part in ("acc.md", "acc_combiners.md", "acc_transfer.md", "acc_cross_signer.md"):
        assert f"wrote {tmp_path / 'reports' / part}" in res.output.replace("\n", "")
    assert "accuracy benchmark (36 clips, 3 classes)" in res.output


def test_unknown_part_is_named_and_nothing_runs(inputs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    main, crowd, cfg = inputs
    out = tmp_path / "acc.md"
    res = CliRunner().invoke(app, ["benchmark", "accuracy", "--data", str(main), "--config", str(cfg),
                                   "--parts", "main,combinerz", "--out", str(out)])
    assert res.exit_code == 2 and "--parts: unknown part(s) ['combinerz']" in res.output
    assert not out.exists()


def test_only_the_cross_signer_part_skips_main(inputs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    main, crowd, cfg = inputs
    out = tmp_path / "acc.md"
    res = CliRunner().invoke(app, ["benchmark", "accuracy", "--data", str(main), "--crowd-data", str(crowd), "--config", str(cfg),
                                   "--parts", "cross-signer", "--folds", "2", "--baselines", "none", "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "acc_cross_signer.json").is_file() and not out.exists()  # the main table did not run
    from signlang.bench.commands import ABLATIONS

    ablations = json.loads((tmp_path / "acc_cross_signer.json").read_text())["ablations"]
    assert len(ablations) == len(ABLATIONS) and all(0.0 <= a["accuracy"] <= 1.0 for a in ablations)  # the shipped rows

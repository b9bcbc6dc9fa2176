"""What a new user hits first (issue 10): each item here failed on the main before the fix."""

from __future__ import annotations

import numpy as np
import pytest

# --- item 6: the metrics are scikit-learn's -----------------------------------------------------


def test_macro_f1_matches_scikit_learn_on_a_class_predicted_but_never_true() -> None:
    from sklearn.metrics import f1_score

    from signlang.training.evaluation import classification_report, labels_accuracy_f1

    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 1, 2])  # class 2 is predicted once but has no true clip
    proba = np.eye(3)[pred] * 0.9 + 0.1 / 3
    expected = f1_score(y, pred, average="macro")
    assert expected == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)  # not 0.833 (classes in y_true only)
    assert classification_report(y, proba, ("a", "b", "c"))["macro_f1"] == pytest.approx(expected, abs=1e-12)
    assert labels_accuracy_f1(y, pred, 3)["macro_f1"] == pytest.approx(expected, abs=1e-12)


def test_every_metric_equals_scikit_learn_on_random_labels() -> None:
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support, top_k_accuracy_score

    from signlang.training.evaluation import classification_report

    rng = np.random.default_rng(0)
    for trial in range(20):
        n_classes = int(rng.integers(3, 8))
        n = int(rng.integers(1, 40))
        y = rng.integers(0, n_classes, n)
        proba = rng.dirichlet(np.ones(n_classes), n)
        pred = proba.argmax(1)
        r = classification_report(y, proba, tuple(f"c{i}" for i in range(n_classes)), top_k=2)
        assert r["accuracy"] == pytest.approx(accuracy_score(y, pred)), trial
        assert r["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0)), trial
        assert r["top2_accuracy"] == pytest.approx(top_k_accuracy_score(y, proba, k=2, labels=np.arange(n_classes))), trial
        p, rc, f, s = precision_recall_fscore_support(y, pred, labels=np.arange(n_classes), zero_division=0)
        for i in range(n_classes):
            got = r["per_class"][f"c{i}"]
            assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx((p[i], rc[i], f[i], s[i]))


# --- items 2, 3, 4: train on everything by default, no silent overwrite, no silent leakage ------
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from typer.testing import CliRunner  # noqa: E402

TINY = [
    "augment=[]", "data.target_frames=12", "transformer.max_len=16", "transformer.d_model=8", "transformer.n_heads=2",
    "transformer.n_layers=1", "transformer.dim_ff=16", "bilstm.hidden=8", "bilstm.layers=1", "xgboost.n_estimators=4",
    "xgboost.max_depth=2", "optim.epochs=1", "optim.batch_size=16", "ensemble.n_folds=2",
]
"""--set overrides that make the whole ensemble train in a few seconds."""


def _cli(*args: str):
    import torch

    from signlang.cli import app

    torch.set_num_threads(1)
    return CliRunner().invoke(app, [str(a) for a in args])


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    sets = [a for item in TINY for a in ("--set", item)]
    return ["train", "--data", str(data), "--out", str(out), "--config", "cpu", "--no-track", "--quiet", "--seed", "3", *sets, *extra]


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from signlang.datasets.loaders import save_npz
    from signlang.datasets.synthetic import make_synthetic_dataset

    clips = make_synthetic_dataset(n_classes=3, n_signers=4, clips_per_signer=3, seed=1, frames=(12, 18))
    return save_npz(clips, tmp_path_factory.mktemp("data") / "tiny.npz")


@pytest.fixture(scope="module")
def final_run(tiny_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("runs") / "final"
    res = _cli(*_train_args(tiny_npz, out))
    assert res.exit_code == 0, res.output
    return out, res.output


def test_default_train_uses_every_clip_and_says_so(final_run: tuple[Path, str], tiny_npz: Path) -> None:
    from signlang.datasets.loaders import load_dataset

    out, output = final_run
    n = len(load_dataset(tiny_npz))
    assert f"trained on all {n} clips" in output and "--split" in output
    report = json.loads((out / "report.json").read_text())
    sp = report["split"]
    assert sp["final"] is True and sp["spec"] == "none"
    assert sp["n_train"] == sp["n_fit"] == n and sp["n_test_held_out"] == 0
    assert report["validation_kind"] == "out_of_fold"
    assert set(report["validation"]) == {"transformer", "bilstm", "xgboost"}  # base models scored out of fold
    for r in report["validation"].values():
        assert r["n"] == n and 0.0 <= r["accuracy"] <= 1.0
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["extra"]["training_clips"]["clip_ids"]) == n
    assert manifest["extra"]["split"]["data"]["sha256"]


def test_explicit_split_keeps_train_then_evaluate(tiny_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "split"
    res = _cli(*_train_args(tiny_npz, out, "--split", "blocked:0.2", "--model", "xgboost"))
    assert res.exit_code == 0, res.output
    sp = json.loads((out / "report.json").read_text())["split"]
    assert sp["final"] is False and sp["n_test_held_out"] > 0 and "held out" in res.output
    res = _cli("evaluate", "--model", out, "--data", tiny_npz, "--out", tmp_path / "ev", "--quiet")
    assert res.exit_code == 0, res.output  # the held-out part does not overlap the training part
    ev = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert ev["split"]["n_test"] == sp["n_test_held_out"] and ev["split"]["n_overlap_with_training"] == 0
    # all clips of the same file: the training part overlaps, so it is refused, naming clips
    res = _cli("evaluate", "--model", out, "--data", tiny_npz, "--split", "all", "--out", tmp_path / "ev2", "--quiet")
    assert res.exit_code == 2 and f"{sp['n_train']} of the" in res.output and "synthetic-" in res.output and "--allow-overlap" in res.output
    assert not (tmp_path / "ev2" / "report.json").exists()


def test_evaluate_refuses_the_training_clips_unless_allowed(final_run: tuple[Path, str], tiny_npz: Path, tmp_path: Path) -> None:
    from signlang.datasets.loaders import load_dataset, save_npz

    out, _ = final_run
    first = str(load_dataset(tiny_npz).clip_ids[0])
    res = _cli("evaluate", "--model", out, "--data", tiny_npz, "--out", tmp_path / "ev", "--quiet")
    assert res.exit_code == 2, res.output
    assert "were used to train" in res.output and first in res.output and "--allow-overlap" in res.output
    # the same clips under another file name (other clip ids) are recognised by their content
    renamed = load_dataset(tiny_npz).subset([0, 5])
    renamed.clip_ids = np.array(["mine-a", "mine-b"], dtype=object)
    copy = save_npz(renamed, tmp_path / "copy.npz")
    res = _cli("evaluate", "--model", out, "--data", copy, "--out", tmp_path / "ev", "--quiet")
    assert res.exit_code == 2 and f"mine-a (trained as {first})" in res.output
    res = _cli("evaluate", "--model", out, "--data", tiny_npz, "--out", tmp_path / "ev", "--quiet", "--allow-overlap")
    assert res.exit_code == 0, res.output
    assert "used in training" in res.output
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["split"]["n_overlap_with_training"] > 0


def test_evaluate_on_new_clips_is_not_refused(final_run: tuple[Path, str], tmp_path: Path) -> None:
    from signlang.datasets.loaders import save_npz
    from signlang.datasets.synthetic import make_synthetic_dataset

    out, _ = final_run
    other = save_npz(make_synthetic_dataset(n_classes=3, n_signers=2, clips_per_signer=2, seed=9, frames=(12, 18)),
                     tmp_path / "other.npz")
    res = _cli("evaluate", "--model", out, "--data", other, "--out", tmp_path / "ev", "--quiet")
    assert res.exit_code == 0, res.output
    ev = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert ev["split"]["spec"] == "all" and ev["split"]["n_test"] == 12 and ev["split"]["n_overlap_with_training"] == 0


def test_train_refuses_a_non_empty_run_folder_unless_overwrite(final_run: tuple[Path, str], tiny_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = _cli(*_train_args(tiny_npz, out, "--model", "xgboost"))
    assert res.exit_code == 2 and "not empty" in res.output and "notes.txt" in res.output and "--overwrite" in res.output
    assert (out / "notes.txt").read_text() == "mine" and not (out / "manifest.json").exists()
    ensemble, _ = final_run  # the case of the issue: a later --model xgboost over a whole ensemble
    before = (ensemble / "manifest.json").read_bytes()
    res = _cli(*_train_args(tiny_npz, ensemble, "--model", "xgboost"))
    assert res.exit_code == 2 and (ensemble / "manifest.json").read_bytes() == before
    res = _cli(*_train_args(tiny_npz, out, "--model", "xgboost", "--overwrite"))
    assert res.exit_code == 0, res.output
    assert json.loads((out / "manifest.json").read_text())["predictor"] == "single"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _cli(*_train_args(tiny_npz, empty, "--model", "xgboost")).exit_code == 0  # an empty folder is fine

"""What a new user hits first (issue 10): each item here failed on the main before the fix."""

from __future__ import annotations

import numpy as np
import pytest

# --- item 6: the metrics are scikit-learn's -----------------------------------------------------


def test_macro_f1_matches_scikit_learn_on_a_class_predicted_but_never_true() -> None:
    from sklearn.metrics import f1_score

    from signlang.models.evaluation import classification_report, labels_accuracy_f1

    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 1, 2])  # class 2 is predicted once but has no true clip
    proba = np.eye(3)[pred] * 0.9 + 0.1 / 3
    expected = f1_score(y, pred, average="macro")
    assert expected == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)  # not 0.833 (classes in y_true only)
    assert classification_report(y, proba, ("a", "b", "c"))["macro_f1"] == pytest.approx(expected, abs=1e-12)
    assert labels_accuracy_f1(y, pred, 3)["macro_f1"] == pytest.approx(expected, abs=1e-12)


def test_every_metric_equals_scikit_learn_on_random_labels() -> None:
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support, top_k_accuracy_score

    from signlang.models.evaluation import classification_report

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
    from signlang.datasets.formats import load_dataset

    out, output = final_run
    n = len(load_dataset(tiny_npz))
    assert f"trained on all {n} clips" in output and "--split" in output
    report = json.loads((out / "report.json").read_text())
    sp = report["split"]
    assert sp["final"] is True and sp["spec"] == "none"
    assert sp["n_train"] == sp["n_fit"] == n and sp["n_test_held_out"] == 0
    # the shipped mean combiner fits no out-of-fold folds, so there is no score to show, and the report says why
    assert report["validation_kind"] == "none" and report["validation"] == {}
    assert "mean combiner" in sp["validation"] and "--split" in sp["validation"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["extra"]["training_clips"]["clip_ids"]) == n
    assert manifest["extra"]["split"]["data"]["sha256"]


def test_default_train_with_a_stacking_combiner_reports_out_of_fold_scores(tiny_npz: Path, tmp_path: Path) -> None:
    from signlang.datasets.formats import load_dataset

    out = tmp_path / "stacked"
    res = _cli(*_train_args(tiny_npz, out, "--set", "ensemble.combiner=logistic"))
    assert res.exit_code == 0, res.output
    assert "out-of-fold scores" in res.output
    n = len(load_dataset(tiny_npz))
    report = json.loads((out / "report.json").read_text())
    assert report["validation_kind"] == "out_of_fold"
    assert set(report["validation"]) == {"transformer", "bilstm", "xgboost"}  # base models scored out of fold
    for r in report["validation"].values():
        assert r["n"] == n and 0.0 <= r["accuracy"] <= 1.0


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
    from signlang.datasets.formats import load_dataset
    from signlang.datasets.loaders import save_npz

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


# --- item 1: clips to recognise need no labels ----------------------------------------------------


def _unlabeled_npz(path: Path, clips: list[np.ndarray], ids: list[str] | None = None) -> Path:
    t_max = max(c.shape[0] for c in clips)
    X = np.full((len(clips), t_max, 75, 3), np.nan, dtype=np.float32)
    for i, c in enumerate(clips):
        X[i, : c.shape[0]] = c
    arrays = {"X": X, "lengths": np.array([c.shape[0] for c in clips])}
    if ids is not None:
        arrays["clip_id"] = np.array(ids)
    np.savez(path, **arrays)
    return path


def test_predict_and_explain_read_an_npz_without_labels(tiny_bundle: Path, tmp_path: Path) -> None:
    from bundle_fixtures import tiny_clips

    from signlang.datasets.formats import read_inputs

    clips = tiny_clips().landmarks[:3]
    data = _unlabeled_npz(tmp_path / "clips.npz", clips, ["a", "b", "c"])
    items = read_inputs(data)
    assert [it.clip_id for it in items] == ["a", "b", "c"]
    assert [it.landmarks.shape for it in items] == [c.shape for c in clips]  # lengths honoured
    res = _cli("predict", "--model", tiny_bundle, data, "--json")
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["clip_id"] for r in lines] == ["a", "b", "c"] and all("top_k" in r for r in lines)
    bare = tmp_path / "bare.npz"
    np.savez(bare, X=np.stack([c[:20] for c in clips]))  # X alone
    res = _cli("predict", "--model", tiny_bundle, bare, "--json")
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["clip_id"] for line in res.stdout.splitlines()] == ["bare-00000", "bare-00001", "bare-00002"]
    res = _cli("explain", "--model", tiny_bundle, data, "--index", "1", "--out", tmp_path / "exp", "--steps", "2")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "exp" / "explanation.json").read_text())["clip_id"] == "b"
    labels_only = tmp_path / "nolabels.npz"
    np.savez(labels_only, y=np.zeros(3))
    res = _cli("predict", "--model", tiny_bundle, labels_only)
    assert res.exit_code == 2 and "'X'" in res.output  # still a clear error when there are no clips; nothing read: status 2


def test_a_landmark_store_without_labels_is_predicted(tiny_bundle: Path, tmp_path: Path) -> None:
    from bundle_fixtures import tiny_clips

    from signlang.landmarks.store import MANIFEST_COLUMNS, StoredClip, write_clip, write_csv

    store = tmp_path / "store"
    rows = []
    for i, lm in enumerate(tiny_clips().landmarks[:2]):
        clip = StoredClip(clip_id=f"c{i}", landmarks=lm, fps=30.0, path=f"v{i}.mp4")  # no label
        write_clip(store, clip)
        rows.append(clip.manifest_row())
    rows.append({"clip_id": "gone", "path": "gone.mp4", "label": ""})
    write_csv(store / "manifest.csv", MANIFEST_COLUMNS, rows)
    res = _cli("predict", "--model", tiny_bundle, store, "--json")
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["clip_id"] for r in lines] == ["c0", "c1", "gone"]
    assert "top_k" in lines[0] and "top_k" in lines[1] and "missing" in lines[2]["error"]
    assert res.exit_code == 1  # the one bad clip is reported; the others were predicted


# --- item 5 and #12 item 4: one prediction path, one rule -----------------------------------------


@pytest.fixture(scope="module")
def no_sign_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny transformer bundle whose vocabulary has the no-sign class ``-`` (as the traduttore set)."""
    import torch

    from signlang.datasets.clip import ClipSet
    from signlang.datasets.synthetic import make_synthetic_dataset
    from signlang.training.config import load_config, merge_overrides, shipped_config_path
    from signlang.training.pipeline import train_bundle

    torch.set_num_threads(1)
    clips = make_synthetic_dataset(n_classes=3, n_signers=3, clips_per_signer=3, seed=4, frames=(12, 18))
    clips = ClipSet(landmarks=clips.landmarks, y=clips.y, classes=("-", *clips.classes[1:]), clip_ids=clips.clip_ids,
                    signers=clips.signers)
    values = {}
    for item in TINY:
        key, _, raw = item.partition("=")
        values[key] = [] if raw == "[]" else (int(raw) if raw.isdigit() else raw)
    cfg = merge_overrides(load_config(shipped_config_path("cpu")), values)
    out = tmp_path_factory.mktemp("nosign") / "run"
    train_bundle(clips, out, cfg, models="transformer", track=False, progress=False)
    return out


def _clips_for_the_rule() -> dict[str, np.ndarray]:
    from bundle_fixtures import tiny_clips

    normal = tiny_clips().landmarks[5]
    no_hands = normal.copy()
    no_hands[:, 33:] = np.nan  # the person is there, neither hand is
    return {"normal": normal, "no_person": np.full_like(normal, np.nan), "no_hands": no_hands}


def _three_paths(bundle: Path, name: str, clip: np.ndarray, tmp_path: Path) -> dict[str, dict]:
    """What ``signlang predict``, ``POST /predict/landmarks`` and ``signlang explain`` answer for ``clip``:
    ``{"top_k": [(sign, prob)]}`` or ``{"error": reason}`` (the message without the input's name)."""
    from fastapi.testclient import TestClient

    from signlang.inference.predictor import Predictor
    from signlang.serve.app import create_app

    path = tmp_path / f"{name}.npy"
    np.save(path, clip)
    out: dict[str, dict] = {}
    res = _cli("predict", "--model", bundle, path, "--json", "--top-k", "3")
    line = json.loads(res.stdout.strip())
    out["predict"] = ({"error": line["error"].split(": ", 1)[1], "code": line["code"], "exit": res.exit_code} if "error" in line
                      else {"top_k": [(t["sign"], t["prob"]) for t in line["top_k"]], "exit": res.exit_code})
    rows = np.where(np.isnan(clip), None, clip).tolist()
    with TestClient(create_app(Predictor(bundle, backend="torch"))) as client:
        r = client.post("/predict/landmarks?k=3", json={"landmarks": rows})
    body = r.json()
    out["service"] = ({"error": body["detail"].split(": ", 1)[1], "code": body["error"], "exit": int(r.status_code != 200)}
                      if r.status_code != 200 else {"top_k": [(t["sign"], t["prob"]) for t in body["top_k"]], "exit": 0})
    res = _cli("explain", "--model", bundle, path, "--out", tmp_path / f"exp-{name}", "--steps", "2")
    if res.exit_code == 0:
        doc = json.loads((tmp_path / f"exp-{name}" / "explanation.json").read_text())
        out["explain"] = {"top_k": [(t["sign"], t["prob"]) for t in doc["top_k"][:3]], "exit": 0, "sign": doc["sign"]}
    else:
        out["explain"] = {"error": res.output.strip().removeprefix("error: ").split(": ", 1)[1], "exit": res.exit_code}
    return out


def _assert_same_top_k(answers: dict[str, dict]) -> list[tuple[str, float]]:
    ref = answers["predict"]["top_k"]
    for where, ans in answers.items():
        assert "top_k" in ans, (where, ans)
        assert [s for s, _ in ans["top_k"]] == [s for s, _ in ref], (where, ans)
        np.testing.assert_allclose([p for _, p in ans["top_k"]], [p for _, p in ref], atol=1e-6, err_msg=where)
    return ref


def test_cli_service_and_explain_agree_without_a_no_sign_class(tiny_bundle: Path, tmp_path: Path) -> None:
    clips = _clips_for_the_rule()
    answers = _three_paths(tiny_bundle, "normal", clips["normal"], tmp_path)
    top = _assert_same_top_k(answers)
    assert answers["explain"]["sign"] == top[0][0]
    for name, reason in (("no_person", "no person found"), ("no_hands", "no hand was found")):
        answers = _three_paths(tiny_bundle, name, clips[name], tmp_path)
        reasons = {where: ans.get("error") for where, ans in answers.items()}
        assert len(set(reasons.values())) == 1 and reason in reasons["predict"], reasons
        assert answers["predict"]["code"] == answers["service"]["code"] == "nothing_detected"
        assert answers["predict"]["exit"] == 1 and answers["explain"]["exit"] == 2


def test_no_hands_and_nobody_get_the_no_sign_class_everywhere(no_sign_bundle: Path, tmp_path: Path) -> None:
    clips = _clips_for_the_rule()
    answers = _three_paths(no_sign_bundle, "no_hands", clips["no_hands"], tmp_path)
    top = _assert_same_top_k(answers)
    assert top[0] == ("-", 1.0) and answers["explain"]["sign"] == "-"
    answers = _three_paths(no_sign_bundle, "no_person", clips["no_person"], tmp_path)  # nobody: "nobody signing", the same class
    top = _assert_same_top_k(answers)
    assert top[0] == ("-", 1.0) and answers["explain"]["sign"] == "-" and answers["predict"]["exit"] == 0
    _assert_same_top_k(_three_paths(no_sign_bundle, "normal", clips["normal"], tmp_path))


def test_cli_predict_and_explain_do_not_import_each_other() -> None:
    import ast

    import signlang.cli.explain as explain_cli

    tree = ast.parse(Path(explain_cli.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "signlang.cli.predict" not in imported and "signlang.datasets.formats" in imported


# --- item 8: quiet video runs, folders of videos, --backend onnx, --version ------------------------


def _signlang(*args: str | Path, timeout: float = 300) -> "subprocess.CompletedProcess[str]":
    """``python -m signlang ...`` in a child process: its stderr shows MediaPipe's native log lines, if any."""
    import os
    import subprocess
    import sys

    import signlang

    env = {**os.environ, "PYTHONPATH": str(Path(signlang.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "signlang", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.slow  # MediaPipe on real video in child processes
@pytest.mark.video
def test_predict_walks_a_folder_of_videos_quietly(tiny_bundle: Path, real_videos_dir: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "videos"
    (folder / "more").mkdir(parents=True)
    shutil.copy(real_videos_dir / "slp_pose_SOUP.mp4", folder / "soup.mp4")
    shutil.copy(real_videos_dir / "wlasl_00338.mp4", folder / "more" / "abdomen.mp4")
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    res = _signlang("predict", "--model", tiny_bundle, folder, "--json")
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [Path(r["input"]).name for r in lines] == ["broken.mp4", "abdomen.mp4", "soup.mp4"], res.stderr
    assert "error" in lines[0] and "broken.mp4" in lines[0]["error"] and lines[0]["code"] == "unreadable_video"
    assert "top_k" in lines[1] and "top_k" in lines[2]
    assert res.returncode == 1  # the broken file is reported; the others are predicted
    noise = [line for line in res.stderr.splitlines() if "W0000" in line or ".cc:" in line or "absl::" in line or "TensorFlow Lite" in line]
    assert not noise, noise[:3]
    res = _signlang("explain", "--model", tiny_bundle, folder / "soup.mp4", "--out", tmp_path / "exp", "--steps", "2")
    assert res.returncode == 0, res.stderr
    assert not [line for line in res.stderr.splitlines() if "W0000" in line or ".cc:" in line], res.stderr[:500]
    assert json.loads((tmp_path / "exp" / "explanation.json").read_text())["top_k"][0]["sign"] == lines[2]["top_k"][0]["sign"]


def test_predict_runs_on_onnx_runtime(tiny_bundle: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    from bundle_fixtures import tiny_clips

    clip = tmp_path / "clip.npy"
    np.save(clip, tiny_clips().landmarks[3])
    torch_line = json.loads(_cli("predict", "--model", tiny_bundle, clip, "--json").stdout)
    for args in (["--model", tiny_onnx], ["--model", tiny_onnx, "--backend", "onnx"]):  # an export folder: onnx by itself
        res = _cli("predict", *args, clip, "--json")
        assert res.exit_code == 0, res.output
        onnx_line = json.loads(res.stdout)
        assert [t["sign"] for t in onnx_line["top_k"]] == [t["sign"] for t in torch_line["top_k"]]
        np.testing.assert_allclose(onnx_line["probs"], torch_line["probs"], atol=1e-4)
    res = _cli("predict", "--model", tiny_bundle, clip, "--backend", "tensorrt")
    assert res.exit_code == 2 and "tensorrt" in res.output


def test_version_option() -> None:
    import signlang

    for args in (["--version"], ["version"]):
        res = _cli(*args)
        assert res.exit_code == 0 and signlang.__version__ in res.output


# --- item 7: a bundle's ONNX export is made once and reused ----------------------------------------


@pytest.mark.slow  # two real ONNX exports of the tiny ensemble
def test_onnx_export_is_kept_in_the_bundle_and_reused(tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import signlang.inference.export as export_mod
    from signlang.inference.predictor import Predictor

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle, ignore=shutil.ignore_patterns("onnx"))
    said: list[str] = []
    with Predictor(bundle, backend="onnx", progress=said.append) as first:
        assert Path(first.model_info["onnx_dir"]) == bundle / "onnx"
    assert any("exporting" in s and "once" in s for s in said)
    assert json.loads((bundle / "onnx" / "manifest.json").read_text())["format"] == "signlang-onnx"
    assert not [p.name for p in bundle.iterdir() if p.name.startswith(".")]  # no staging folder left behind

    def no_export(*a: object, **k: object) -> None:
        raise AssertionError("exported again although the bundle did not change")

    monkeypatch.setattr(export_mod, "export_bundle", no_export)
    said.clear()
    with Predictor(bundle, backend="onnx", progress=said.append) as again:  # the next start: no export
        assert Path(again.model_info["onnx_dir"]) == bundle / "onnx"
    assert said == []
    monkeypatch.undo()
    # an export of another bundle (its manifest sha256 differs) is replaced, not trusted
    manifest = json.loads((bundle / "onnx" / "manifest.json").read_text())
    manifest["source"]["bundle_manifest_sha256"] = "0" * 64
    (bundle / "onnx" / "manifest.json").write_text(json.dumps(manifest))
    with Predictor(bundle, backend="onnx", progress=said.append) as fresh:
        assert Path(fresh.model_info["onnx_dir"]) == bundle / "onnx"
    assert any("exporting" in s for s in said)
    from signlang.models.bundle import load_bundle

    load_bundle(bundle)  # the bundle itself still verifies with the export inside it


# --- item 9: tune's search space follows the hardware ----------------------------------------------


def test_tune_space_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from signlang.training.tune import default_space_name, load_space

    assert default_space_name(cuda=False) == "cpu" and default_space_name(cuda=True) == "seed"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert load_space().keys == load_space("cpu").keys
    assert {p.key: p for p in load_space().params}["transformer.n_layers"].choices == (1, 2, 3)  # the CPU space
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert {p.key: p for p in load_space().params}["transformer.n_layers"].choices == (4, 6, 8)  # the seed space


# --- item 10: the install extras -------------------------------------------------------------------


def test_pyproject_extras_declare_what_the_code_needs() -> None:
    import re
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    extras = {name: [Requirement(r) for r in reqs] for name, reqs in project["optional-dependencies"].items()}
    track = {r.name.lower() for r in extras["track"]}
    assert {"mlflow-skinny", "sqlalchemy", "alembic"} <= track  # MLflow's sqlite store needs both
    for name in ("serve", "serve-onnx"):
        (multipart,) = [r for r in extras[name] if r.name == "python-multipart"]
        assert Version("0.0.18") in multipart.specifier and Version("0.0.17") not in multipart.specifier
    source = "\n".join(p.read_text() for p in (root / "src").rglob("*.py"))
    for extra, reqs in extras.items():  # nothing declared that the code never imports
        for r in reqs:
            module = {"captum": "captum", "pyarrow": "pyarrow"}.get(r.name.lower())
            if module:
                assert re.search(rf"^\s*(import|from) {module}\b", source, re.M), f"{extra}: {r} is never imported"
    assert isinstance(project["license"], str) and project["license"] == "Apache-2.0"  # SPDX, not a table
    assert all((root / f).is_file() for f in project["license-files"])
    core_numpy = [Requirement(r) for r in project["dependencies"] if r.startswith("numpy")][0]
    assert Version("2.1") in core_numpy.specifier  # numpy<2 is MediaPipe's need, not the core's
    assert any(r.name == "numpy" and Version("2.1") not in r.specifier for r in extras["video"])

"""Label audits (signlang.datasets.audit): a cell excluded is excluded everywhere and reported.

A tiny synthetic data set (3 signs x 4 signers x 3 clips) with a ``label_audit.csv`` beside it that
excludes one cell (signer 1's first sign, 3 clips): ``train``, ``evaluate``, ``calibrate`` and the
cross-signer benchmark must never use those clips, and must name the cell with its clip count.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from signlang.bench import accuracy as bench
from signlang.cli import app
from signlang.datasets.audit import apply_audit, audit_mask, read_audit, resolve_audit
from signlang.datasets.formats import load_dataset
from signlang.datasets.loaders import save_npz
from signlang.datasets.synthetic import make_synthetic_dataset
from signlang.training.pipeline import load_data

torch.set_num_threads(1)

TINY = ["data.target_frames=12", "xgboost.n_estimators=4", "xgboost.max_depth=2", "ensemble.n_folds=2"]
SIGNER = "synthetic-signer-1"


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, set[str]]:
    """``(data.npz with label_audit.csv beside it, the excluded sign, the excluded clip ids)``."""
    clips = make_synthetic_dataset(n_classes=3, n_signers=4, clips_per_signer=3, seed=1, frames=(12, 18))
    folder = tmp_path_factory.mktemp("audited")
    data = save_npz(clips, folder / "tiny.npz")
    sign = clips.classes[0]
    rows = ["signer,label,clips,verdict,keep"]
    for s in sorted(set(clips.signers)):
        for c in clips.classes:
            excluded = s == SIGNER and c == sign
            rows.append(f"{s},{c},3,{'wrong_sign' if excluded else 'ok'},{0 if excluded else 1}")
    (folder / "label_audit.csv").write_text("\n".join(rows) + "\n")
    gone = {str(i) for i, s, y in zip(clips.clip_ids, clips.signers, clips.y) if s == SIGNER and y == 0}
    assert len(gone) == 3
    return data, sign, gone


def _named(record: dict, sign: str) -> None:
    assert record["n_excluded"] == 3
    assert record["excluded_cells"] == [{"signer": SIGNER, "label": sign, "clips": 3, "verdict": "wrong_sign"}]


def test_audit_beside_the_data_is_applied_and_all_cells_ignores_it(audited: tuple[Path, str, set[str]]) -> None:
    data, sign, gone = audited
    clips, source = load_data(data)
    assert len(clips) == 33 and not gone & {str(c) for c in clips.clip_ids}
    _named(source["audit"], sign)
    every, source_all = load_data(data, "all")
    assert len(every) == 36 and source_all["audit"] is None
    assert source_all["audit_ignored"].endswith("label_audit.csv")
    explicit, src = load_data(load_dataset(data), data.parent / "label_audit.csv")  # an explicit file applies to a ClipSet too
    assert len(explicit) == 33
    _named(src["audit"], sign)


def test_train_evaluate_calibrate_never_use_the_excluded_cell(audited: tuple[Path, str, set[str]], tmp_path: Path) -> None:
    data, sign, gone = audited
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(run), "--config", "cpu", "--no-track", "--quiet",
                                   "--model", "xgboost", "--split", "signer", *_sets(TINY)])
    assert res.exit_code == 0, res.output
    assert f"3 of 36 clips excluded" in res.output and f"{SIGNER}/{sign} (3, wrong_sign)" in res.output
    manifest = json.loads((run / "manifest.json").read_text())
    trained = set(manifest["extra"]["training_clips"]["clip_ids"])
    assert trained and not trained & gone
    report = json.loads((run / "report.json").read_text())
    _named(report["audit"], sign)

    res = CliRunner().invoke(app, ["evaluate", "--model", str(run), "--data", str(data), "--out", str(tmp_path / "ev"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert f"{SIGNER}/{sign} (3, wrong_sign)" in res.output
    ev = json.loads((tmp_path / "ev" / "report.json").read_text())
    _named(ev["audit"], sign)
    n_all = CliRunner().invoke(app, ["evaluate", "--model", str(run), "--data", str(data), "--out", str(tmp_path / "ev2"),
                                     "--quiet", "--split", "all", "--all-cells", "--allow-overlap"])
    assert n_all.exit_code == 0, n_all.output
    assert json.loads((tmp_path / "ev2" / "report.json").read_text())["split"]["n_test"] == 36
    assert json.loads((tmp_path / "ev2" / "report.json").read_text())["audit"] is None
    assert "ignored (--all-cells)" in n_all.output


def test_calibrate_reads_kept_cells_only(audited: tuple[Path, str, set[str]], tmp_path: Path) -> None:
    from signlang.datasets.splits import split_indices
    from signlang.training.pipeline import calibrate_bundle, train_bundle

    data, sign, gone = audited
    cfg = _cfg({"ensemble.models": ["xgboost"], "ensemble.combiner": "mean"})
    train_bundle(data, tmp_path / "b", cfg, split="signer", track=False, progress=False)
    rec = calibrate_bundle(tmp_path / "b", data, None)
    _named(rec["audit"], sign)
    kept = load_data(data)[0]
    assert rec["n_clips"] == len(split_indices(kept, "signer", seed=cfg.seed)[1])  # the test part of the kept clips


def test_cross_signer_benchmark_trains_and_scores_kept_cells_and_names_them(audited: tuple[Path, str, set[str]],
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    data, sign, gone = audited
    seen: list[int] = []

    class Recording(bench.BASELINES["lr"]):  # the LR baseline, recording how many clips of the excluded cell it trains on
        def fit(self, clips, y):  # type: ignore[no-untyped-def]
            ids = {id(c) for c in clips}
            seen.append(sum(id(excluded[i]) in ids for i in range(len(excluded))))
            return super().fit(clips, y)

    loaded = load_data(data, "all")[0]
    excluded = [lm for lm, cid in zip(loaded.landmarks, loaded.clip_ids) if str(cid) in gone]
    monkeypatch.setitem(bench.BASELINES, "lr", Recording)
    # the benchmark loads the data itself: share the clip objects so identity tells which clips a fit got
    import signlang.training.pipeline as pipeline

    monkeypatch.setattr(pipeline, "load_data", lambda d, cells="auto": (loaded, {"path": str(data), "sha256": None}))
    res = bench.cross_signer(data, _cfg(), k=2, baselines=("lr",), ours=False, progress=False,
                             ablations={"shipped normalisation": {}})
    assert seen == [0, 0]  # no fold trained on the excluded cell
    assert res["errors_of"] == "xgboost alone, shipped normalisation" and res["ablations"][0]["per_sign"][sign]["clips"] == 9
    assert all(e["clips"] <= 9 for e in res["errors_by_person"])  # kept cells only
    assert res["n_clips"] == 33 and res["n_clips_all"] == 36
    _named(res["audit"], sign)
    row = res["rows"][0]
    assert row["per_sign"][sign]["clips"] == 9 and row["per_sign"][sign]["people"] == 3
    assert row["all_cells"]["accuracy"] == pytest.approx(row["all_cells"]["accuracy"]) and len(row["by_fold"]) == 2
    md = bench.cross_signer_markdown(res)
    assert f"{SIGNER}/{sign}: 3 wrong_sign" in md and "all cells" in md


def _cfg(extra: dict | None = None):  # type: ignore[no-untyped-def]
    from signlang.training.config import load_config, merge_overrides, shipped_config_path

    return merge_overrides(load_config(shipped_config_path("cpu")), {"data.target_frames": 12, "xgboost.n_estimators": 4,
                                                                     "xgboost.max_depth": 2, "ensemble.n_folds": 2, **(extra or {})})


@pytest.mark.parametrize("text, needle", [
    ("signer,label,keep\n1,hello,yes\n", "line 2: field 'keep' must be 0 or 1, got 'yes'"),
    ("signer,label,clips\n1,hello,30\n", "line 1: missing field(s) ['keep']"),
    ("signer,label,keep\n1,hello,1\n2,thanks\n", "line 3: 2 fields, the header has 3"),
    ("signer,label,keep\n1,hello,1\n1,hello,0\n", "line 3: cell signer='1', label='hello' is listed twice"),
    ("signer,label,keep\n,hello,1\n", "line 2: field 'signer' is empty"),
    ("", "line 1: the label audit is empty"),
])
def test_a_malformed_audit_names_the_file_line_and_field(tmp_path: Path, text: str, needle: str) -> None:
    bad = tmp_path / "label_audit.csv"
    bad.write_text(text)
    with pytest.raises(ValueError) as exc:
        read_audit(bad)
    assert str(bad) in str(exc.value) and needle in str(exc.value)


def test_a_malformed_audit_beside_the_data_fails_the_command_cleanly(tmp_path: Path) -> None:
    clips = make_synthetic_dataset(n_classes=2, n_signers=2, clips_per_signer=2, seed=0, frames=(12, 14))
    data = save_npz(clips, tmp_path / "d.npz")
    (tmp_path / "label_audit.csv").write_text("signer,label,keep\nsynthetic-signer-0,x,2\n")
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "r"), "--no-track", "--model", "xgboost"])
    assert res.exit_code == 2
    assert f"{tmp_path / 'label_audit.csv'}: line 2: field 'keep' must be 0 or 1, got '2'" in res.output
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "r"), "--audit", str(tmp_path / "none.csv")])
    assert res.exit_code == 2 and "none.csv: no such label audit file" in res.output
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "r"), "--all-cells",
                                   "--exclude-cells", str(tmp_path / "label_audit.csv")])
    assert res.exit_code == 2 and "contradict" in res.output


def test_cells_absent_from_the_data_are_reported_not_applied(tmp_path: Path) -> None:
    clips = make_synthetic_dataset(n_classes=2, n_signers=2, clips_per_signer=2, seed=0, frames=(12, 14))
    f = tmp_path / "a.csv"
    f.write_text(f"signer,label,keep\nnobody,{clips.classes[0]},0\nsynthetic-signer-0,{clips.classes[1]},0\n")
    keep, record = audit_mask(clips, read_audit(f))
    assert keep.sum() == len(clips) - 2 and record["excluded_cells_absent"] == [{"signer": "nobody", "label": clips.classes[0]}]
    kept, rec = apply_audit(clips, f)
    assert len(kept) == len(clips) - 2 and np.all(kept.signers[kept.y == 1] != "synthetic-signer-0")
    assert resolve_audit(tmp_path / "a.npz", "all") is None and resolve_audit(tmp_path / "a.npz") is None

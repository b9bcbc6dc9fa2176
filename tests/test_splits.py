"""Split protocols: disjoint, deterministic, protocol-specific guarantees, INCLUDE-50 lists."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from signlang.datasets.clip import ClipSet
from signlang.datasets.splits import SPLITS, fold_ids, parse_split_spec, split_indices, validation_indices


def _clips(n_classes: int = 4, per_class: int = 12, n_signers: int = 6, seed: int = 0) -> ClipSet:
    """Tiny labelled set: seq_ids shuffled within each class, signers cycling."""
    rng = np.random.default_rng(seed)
    n = n_classes * per_class
    y = np.repeat(np.arange(n_classes), per_class)
    seq = np.concatenate([rng.permutation(per_class) for _ in range(n_classes)])
    signers = np.array([f"s{i % n_signers}" for i in range(n)], dtype=object)
    lms = [np.zeros((3, 75, 3), dtype=np.float32) for _ in range(n)]
    return ClipSet(landmarks=lms, y=y, classes=tuple(f"c{i}" for i in range(n_classes)),
                   clip_ids=np.array([f"id{i}" for i in range(n)]), signers=signers, seq_ids=seq)


@pytest.mark.parametrize("spec", ["random:0.25", "signer", "signer:0.3", "blocked:0.2"])
def test_splits_are_disjoint_complete_and_deterministic(spec: str) -> None:
    clips = _clips()
    tr, te = split_indices(clips, spec, seed=3)
    tr2, te2 = split_indices(clips, spec, seed=3)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(te, te2)
    assert np.intersect1d(tr, te).size == 0
    np.testing.assert_array_equal(np.union1d(tr, te), np.arange(len(clips)))
    assert tr.dtype == np.int64 and np.all(np.diff(tr) > 0)
    assert set(clips.y[tr]) == set(range(4))  # every class can still be trained


def test_random_split_is_stratified_and_seed_dependent() -> None:
    clips = _clips(per_class=20)
    tr, te = split_indices(clips, "random:0.25", seed=0)
    np.testing.assert_array_equal(np.bincount(clips.y[te]), [5, 5, 5, 5])
    _, te_other = split_indices(clips, "random:0.25", seed=1)
    assert not np.array_equal(te, te_other)


def test_signer_split_never_shares_a_signer() -> None:
    clips = _clips(n_signers=8, per_class=16)
    for seed in range(5):
        tr, te = split_indices(clips, "signer:0.25", seed=seed)
        assert not set(clips.signers[tr]) & set(clips.signers[te])
        assert len(set(clips.signers[te])) == 2  # 2 of 8 equally sized signers = 25 %


def test_signer_split_needs_signers() -> None:
    clips = _clips()
    clips.signers[5] = None
    with pytest.raises(ValueError, match="id5"):
        split_indices(clips, "signer")


def test_blocked_split_puts_highest_seq_ids_in_test() -> None:
    clips = _clips(per_class=12)
    tr, te = split_indices(clips, "blocked:0.2", seed=0)
    for c in range(4):
        test_seq = np.sort(clips.seq_ids[te][clips.y[te] == c])
        np.testing.assert_array_equal(test_seq, [10, 11])  # round(0.2 * 12) = 2 highest
        assert clips.seq_ids[tr][clips.y[tr] == c].max() == 9
    # the seed plays no part
    np.testing.assert_array_equal(te, split_indices(clips, "blocked:0.2", seed=9)[1])


def test_blocked_split_small_classes_and_fallback_order() -> None:
    lms = [np.zeros((2, 75, 3), dtype=np.float32)] * 6
    clips = ClipSet(landmarks=lms, y=np.array([0, 0, 1, 1, 1, 2]), classes=("a", "b", "c"), clip_ids=np.arange(6).astype(str))
    _, te = split_indices(clips, "blocked:0.1", seed=0)
    # no seq_ids: file order; at least one test clip when n >= 2, none for a singleton class
    np.testing.assert_array_equal(te, [1, 4])


def test_real_blocked_benchmark_protocol(traduttore_npz: Path) -> None:
    from signlang.datasets.loaders import load_npz

    clips = load_npz(traduttore_npz)
    tr, te = split_indices(clips, "blocked:0.2")
    counts = np.bincount(clips.y, minlength=33)
    expected = np.floor(0.2 * counts + 0.5).astype(int)
    np.testing.assert_array_equal(np.bincount(clips.y[te], minlength=33), expected)
    for c in range(33):  # every test seq_id of a class is above every train seq_id of it
        assert clips.seq_ids[te][clips.y[te] == c].min() > clips.seq_ids[tr][clips.y[tr] == c].max()


def _read_paths(csv_path: Path) -> list[str]:
    with open(csv_path, newline="") as fh:
        return [r["FilePath"] for r in csv.DictReader(fh)]


@pytest.mark.parametrize("prefix", ["", "INCLUDE/", "data/INCLUDE/"])
def test_include50_split_on_official_lists(include50_dir: Path, prefix: str) -> None:
    train_csv, test_csv = include50_dir / "train_include50.csv", include50_dir / "test_include50.csv"
    train_paths, test_paths = _read_paths(train_csv), _read_paths(test_csv)
    assert (len(train_paths), len(test_paths)) == (766, 192)
    extra = ["Animals/4. Bird/NOT_LISTED.MOV", "animals/4. Bird/" + train_paths[0].split("/")[-1]]  # unlisted; wrong case
    rel = train_paths + test_paths + extra
    paths = [prefix + p for p in rel]
    # the label is the Word folder (some videos sit one level deeper, in "<Word>/Extra/")
    labels = [p.split("/")[1].split(". ", 1)[-1].upper() for p in rel]
    classes = tuple(sorted(set(labels)))
    clips = ClipSet(
        landmarks=[np.zeros((2, 75, 3), dtype=np.float32)] * len(paths),
        y=np.array([classes.index(s) for s in labels]), classes=classes,
        clip_ids=np.array([f"c{i}" for i in range(len(paths))]), paths=np.array(paths, dtype=object),
    )
    assert len(classes) == 50
    tr, te = split_indices(clips, f"include50:{train_csv},{test_csv}")
    np.testing.assert_array_equal(tr, np.arange(766))
    np.testing.assert_array_equal(te, np.arange(766, 958))  # the two unlisted clips are in neither part
    folds = fold_ids(clips, tr, 5, f"include50:{train_csv},{test_csv}")
    assert set(folds.tolist()) == set(range(5))


def test_include50_needs_paths(include50_dir: Path) -> None:
    clips = _clips()
    spec = f"include50:{include50_dir / 'train_include50.csv'},{include50_dir / 'test_include50.csv'}"
    with pytest.raises(ValueError, match="source path"):
        split_indices(clips, spec)


def test_stored_split_uses_split_column() -> None:
    clips = _clips(per_class=3, n_classes=2)
    clips.splits = np.array(["train", "test", "", "TRAIN", "test", "val"], dtype=object)
    tr, te = split_indices(clips, "stored")
    np.testing.assert_array_equal(tr, [0, 3])
    np.testing.assert_array_equal(te, [1, 4])
    clips.splits = np.array(["train"] * 6, dtype=object)
    with pytest.raises(ValueError, match="'test'"):
        split_indices(clips, "stored")


@pytest.mark.parametrize("bad", ["", "random", "random:1.5", "random:abc", "blocked", "foo:0.2", "include50:a.csv", "stored:x"])
def test_parse_split_spec_errors_name_spec_and_list_forms(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_split_spec(bad)
    msg = str(info.value)
    assert repr(bad) in msg and "valid forms" in msg and "blocked:P" in msg and "include50:TRAIN_CSV,TEST_CSV" in msg


def test_parse_split_spec_forms() -> None:
    assert parse_split_spec("random:0.25").fraction == 0.25
    assert parse_split_spec("signer").fraction == 0.2
    assert parse_split_spec("include50:a.csv, b.csv").args == ("a.csv", "b.csv")
    assert set(SPLITS) == {"random", "signer", "blocked", "include50", "stored"}


@pytest.mark.parametrize("spec", ["random:0.25", "signer:0.25", "blocked:0.25"])
def test_validation_is_carved_from_train_only(spec: str) -> None:
    clips = _clips(n_signers=8, per_class=16)
    tr, te = split_indices(clips, spec, seed=0)
    fit, val = validation_indices(clips, tr, spec, seed=0)
    assert np.intersect1d(fit, val).size == 0
    np.testing.assert_array_equal(np.union1d(fit, val), tr)
    assert np.intersect1d(val, te).size == 0 and len(val) > 0
    if spec.startswith("signer"):
        assert not set(clips.signers[fit]) & set(clips.signers[val])
    if spec.startswith("blocked"):
        for c in range(4):
            assert clips.seq_ids[val][clips.y[val] == c].min() > clips.seq_ids[fit][clips.y[fit] == c].max()
    fit2, val2 = validation_indices(clips, tr, spec, seed=0)
    np.testing.assert_array_equal(val, val2)


def test_fold_ids_follow_the_protocol() -> None:
    clips = _clips(n_signers=8, per_class=20)
    idx = np.arange(len(clips))[::-1].copy()  # order of idx must not matter beyond alignment
    # blocked: contiguous seq_id blocks per class
    f = fold_ids(clips, idx, 4, "blocked:0.2")
    assert f.shape == idx.shape and set(f.tolist()) == {0, 1, 2, 3}
    for c in range(4):
        sel = clips.y[idx] == c
        seq, fold = clips.seq_ids[idx][sel], f[sel]
        np.testing.assert_array_equal(fold[np.argsort(seq)], np.repeat(np.arange(4), 5))
    # random: stratified, every fold sees every class equally
    f = fold_ids(clips, idx, 4, "random:0.2", seed=1)
    for k in range(4):
        np.testing.assert_array_equal(np.bincount(clips.y[idx][f == k], minlength=4), [5, 5, 5, 5])
    np.testing.assert_array_equal(f, fold_ids(clips, idx, 4, "random:0.2", seed=1))
    # signer: no signer in two folds
    f = fold_ids(clips, idx, 4, "signer")
    for s in set(clips.signers):
        assert len(set(f[clips.signers[idx] == s].tolist())) == 1
    assert set(f.tolist()) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="at least 9 signers"):
        fold_ids(clips, idx, 9, "signer")
    with pytest.raises(ValueError, match="n_folds"):
        fold_ids(clips, idx, 1, "random:0.2")

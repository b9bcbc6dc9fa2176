"""The accuracy benchmarks behind ``signlang benchmark accuracy``: our models beside two baselines.

Four parts: the main-split table (below), the combiners compared on a validation part
(:func:`compare_combiners`), the cross-signer table (:func:`cross_signer`, grouped K-fold by
signer on ``asl_crowd_3signs``) and transfer between the two data sets (:func:`zero_shot`,
:func:`union` for the joint vocabulary).


One run, one table, on one split (default ``blocked:0.2``: per class the latest 20% of the
recordings by ``seq_id`` are the test part, so sessions do not leak): the pooled-statistics
logistic regression and MiniRocket baselines (:mod:`signlang.training.baselines`), each of our
base models trained alone, and the stacking ensemble. Every model trains on the whole training
part and is scored on the same test part: accuracy, macro-F1, training time (wall clock) and
inference time per clip (normalisation + features + model, batched). The ``random:0.2`` figures
(clips of one session on both sides) are added for the ensemble and the LR baseline, marked
optimistic.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


from signlang.datasets.audit import ALL_CELLS, AUTO
from signlang.datasets.clip import ClipSet
from signlang.bench.baselines import BASELINES
from signlang.models.calibration import cross_fitted_temperature, expected_calibration_error
from signlang.training.config import TrainConfig
from signlang.models.evaluation import labels_accuracy_f1, selective_accuracy

PathLike = str | os.PathLike[str]


def _baseline_row(name: str, clips: ClipSet, train_idx: np.ndarray, test_idx: np.ndarray, split: str, seed: int) -> dict[str, Any]:
    est = BASELINES[name](seed=seed)
    train = [clips.landmarks[i] for i in train_idx]
    test = [clips.landmarks[i] for i in test_idx]
    t0 = time.perf_counter()
    est.fit(train, clips.y[train_idx])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = est.predict(test)
    ms = (time.perf_counter() - t0) / len(test) * 1000
    scores = labels_accuracy_f1(clips.y[test_idx], pred, len(clips.classes))
    return {"model": est.name, "kind": "baseline", "split": split, **scores, "train_s": fit_s, "infer_ms_per_clip": ms}


def _our_rows(clips: ClipSet, cfg: TrainConfig, split: str, models: Sequence[str] | str | None, seed: int,
              workdir: Path, progress: bool, label: str, with_bases: bool = False) -> list[dict[str, Any]]:
    """Train ``models`` (None = the ensemble) on the training part, evaluate on the test part.

    ``with_bases``: also a row per base model of the ensemble (its final refit on the training part).
    """
    from signlang.inference.evaluate import evaluate_bundle
    from signlang.training.pipeline import ENSEMBLE, train_bundle

    tag = ENSEMBLE if models is None else str(models)
    bundle = workdir / f"{tag}-{split.replace(':', '_')}"
    report = train_bundle(clips, bundle, cfg, split=split, models=models, track=False, seed=seed, overwrite=True,
                          progress=progress, validate=False)
    ev = evaluate_bundle(bundle, clips, None)
    rows = []
    for name, res in ev["models"].items():
        is_main = name == ev["primary"]
        if not is_main and (models is not None or not with_bases):
            continue
        rows.append({
            "model": label if is_main else f"{name} (inside the ensemble)",
            "kind": "ours",
            "split": split,
            "accuracy": res["accuracy"],
            "macro_f1": res["macro_f1"],
            "top5_accuracy": res["top5_accuracy"],
            "train_s": report["timings"]["fit_s"] if is_main else report["timings"].get("fit_s_by_model", {}).get(name),
            "infer_ms_per_clip": ev["inference_ms_per_clip"].get(name, float("nan")),  # features + model; the whole ensemble only
        })
    return rows


def run_accuracy_benchmark(
    data: PathLike | ClipSet,
    cfg: TrainConfig,
    *,
    split: str = "blocked:0.2",
    optimistic_split: str | None = "random:0.2",
    baselines: Sequence[str] = ("lr", "minirocket"),
    single_models: bool = True,
    seed: int | None = None,
    workdir: PathLike | None = None,
    keep_bundles: PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the benchmark and return ``{"rows": [...], "setup": {...}}`` (see the module docstring).

    ``keep_bundles``: a folder where the trained bundles stay (for the latency and explanation
    benchmarks); by default they go to a temporary folder that is removed.
    """
    from signlang.datasets.splits import split_indices
    from signlang.training.pipeline import load_data

    seed = cfg.seed if seed is None else int(seed)
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; known: {sorted(BASELINES)}")
    clips, source = load_data(data)
    t_all = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="signlang-bench-", dir=workdir) as tmp:
        work = Path(keep_bundles) if keep_bundles is not None else Path(tmp)
        train_idx, test_idx = split_indices(clips, split, seed=seed)
        for b in baselines:
            rows.append(_baseline_row(b, clips, train_idx, test_idx, split, seed))
        if single_models:
            for name in cfg.ensemble.models:
                rows += _our_rows(clips, cfg, split, name, seed, work, progress, f"{name} (alone)")
        rows += _our_rows(clips, cfg, split, None, seed, work, progress, "ensemble (stacked)", with_bases=not single_models)
        if optimistic_split:
            o_train, o_test = split_indices(clips, optimistic_split, seed=seed)
            if "lr" in baselines:
                rows.append(_baseline_row("lr", clips, o_train, o_test, optimistic_split, seed) | {"optimistic": True})
            rows += [r | {"optimistic": True}
                     for r in _our_rows(clips, cfg, optimistic_split, None, seed, work, progress, "ensemble (stacked)")
                     if r["model"] == "ensemble (stacked)"]
    setup = {
        "data": source,
        "n_clips": len(clips),
        "n_classes": len(clips.classes),
        "split": split,
        "n_train": int(len(train_idx)),
        "n_test": int(len(test_idx)),
        "optimistic_split": optimistic_split,
        "seed": seed,
        "ensemble_models": list(cfg.ensemble.models),
        "n_folds": cfg.ensemble.n_folds,
        "total_s": time.perf_counter() - t_all,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": _torch_threads()},
    }
    from signlang.training.config import config_to_dict

    return {"rows": rows, "setup": setup, "config": config_to_dict(cfg)}


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _fmt_pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{100 * x:.2f}%"


def _fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} s"


def markdown_table(result: dict[str, Any]) -> str:
    """The benchmark as a markdown section (setup line + one table)."""
    s = result["setup"]
    data = s["data"].get("path") or "in-memory ClipSet"
    lines = [
        "## Accuracy benchmark",
        "",
        f"Data: `{data}` ({s['n_clips']} clips, {s['n_classes']} classes). Split `{s['split']}`: "
        f"{s['n_train']} training / {s['n_test']} test clips, seed {s['seed']}. One run. "
        f"Machine: {s['machine']['cpus']} CPU(s), torch threads {s['machine']['torch_threads']}, {s['machine']['platform']}. "
        f"Total {s['total_s'] / 60:.1f} min. Every model trains on the whole training part; inference = "
        "normalisation + features + model, batched, per clip. A base model's training time inside the ensemble "
        "counts all its out-of-fold fits and its final fit.",
        "",
        "| model | split | accuracy | macro-F1 | training time | inference ms/clip |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        split = f"{r['split']} (optimistic)" if r.get("optimistic") else r["split"]
        lines.append(f"| {r['model']} | {split} | {_fmt_pct(r['accuracy'])} | {_fmt_pct(r['macro_f1'])} | "
                     f"{_fmt_s(r['train_s'])} | {r['infer_ms_per_clip']:.3f} |")
    lines += ["", "`random:0.2` (optimistic) puts clips of the same recording sessions on both sides of the split; "
              "the `blocked` figures are the ones to quote.", ""]
    return "\n".join(lines)


def write_results(result: dict[str, Any], out: PathLike) -> tuple[Path, Path]:
    """Write ``out`` (markdown, ``.md``) and its ``.json`` sibling through the one benchmark writer."""
    from signlang.bench.registry import BenchResult, write_result

    title = f"accuracy benchmark ({result['setup']['n_clips']} clips, {result['setup']['n_classes']} classes)"
    return write_result(BenchResult("accuracy", title, markdown_table(result), result), out)


# ================================================================================================
# The combiner chosen on validation (never on test)
# ================================================================================================
CROWD_DATA = ("asl_crowd_8signs", "asl_crowd_8signs.npz")
"""The default cross-signer data (its ``label_audit.csv`` beside it applies); ``asl_crowd_3signs`` is its 3-sign predecessor."""
JOINT_MIN_PEOPLE = 20
"""A crowd sign joins the joint (pretrained) vocabulary with at least this many people on kept cells, or when the main
set already has it (:func:`joint_crowd`); the others stay out (the open-set work measures declining them)."""
MAIN_DATA = ("traduttore_asl_mediapipe", "traduttore_asl_mediapipe.npz")
CROWD_TO_MAIN = {"thanks": "thank-you"}
"""asl_crowd_3signs label -> the same sign's label in the main benchmark's vocabulary."""
LOW_PERSON = 0.8
"""People scored below this accuracy are listed by the cross-signer benchmark."""


def _scores(y: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy, macro-F1 and the expected calibration error (15 bins) of probabilities ``(N, C)``."""
    pred = np.argmax(proba, axis=1)
    return {**labels_accuracy_f1(y, pred, n_classes), "ece": expected_calibration_error(y, proba)}


def fit_stacking(cfg: TrainConfig, clips: ClipSet, fit_idx: np.ndarray, X_fit: np.ndarray, split: str, seed: int,
                 combiner: str | None = None) -> Any:
    """A StackingEnsemble of ``cfg.ensemble.models`` fitted on ``X_fit`` (the clips ``fit_idx``), out-of-fold
    folds from ``split``'s protocol; ``combiner`` overrides ``cfg.ensemble.combiner``."""
    from signlang.datasets.splits import fold_ids
    from signlang.models.ensemble import StackingEnsemble
    from signlang.training.pipeline import build_base_model, meta_learner

    n_classes = len(clips.classes)
    bases = [(n, build_base_model(n, cfg, n_classes, seed)) for n in cfg.ensemble.models]
    folds = fold_ids(clips, fit_idx, cfg.ensemble.n_folds, split, seed)
    ens = StackingEnsemble(base_estimators=bases, meta_estimator=meta_learner(n_classes, seed, combiner or cfg.ensemble.combiner),
                           n_folds=cfg.ensemble.n_folds, feature_blocks=tuple(cfg.data.feature_blocks or ()) or None,
                           random_state=seed)
    return ens.fit(X_fit, clips.y[fit_idx], folds=folds)


def choose_combiner(validation: dict[str, dict[str, float]]) -> str:
    """The combiner with the best validation accuracy; ties go to macro-F1, then to the simpler one (mean first)."""
    from signlang.models.combiners import COMBINERS

    return max(validation, key=lambda c: (validation[c]["accuracy"], validation[c]["macro_f1"], COMBINERS.names().index(c)))


def compare_combiners(data: PathLike | ClipSet, cfg: TrainConfig, *, split: str = "blocked:0.2", seed: int | None = None,
                      keep: PathLike | None = None) -> dict[str, Any]:
    """The three combiners on one set of base fits: scored on a validation part carved from the training part
    (the choice is made there, by :func:`choose_combiner`), and only then on the test part.

    ``keep``: save the ensemble with the chosen combiner there as a bundle (e.g. for the transfer benchmark).
    """
    from signlang.datasets.splits import split_indices, validation_indices
    from signlang.models.combiners import COMBINERS, make_combiner
    from signlang.models.ensemble import align_proba
    from signlang.training.pipeline import load_data, normalize, preprocessing_of

    seed = cfg.seed if seed is None else int(seed)
    clips, source = load_data(data)
    n_classes = len(clips.classes)
    train_idx, test_idx = split_indices(clips, split, seed=seed)
    fit_idx, val_idx = validation_indices(clips, train_idx, split, seed)
    pre = preprocessing_of(cfg)
    X_fit = normalize([clips.landmarks[i] for i in fit_idx], pre)
    X_val = normalize([clips.landmarks[i] for i in val_idx], pre)
    t0 = time.perf_counter()
    stack = fit_stacking(cfg, clips, fit_idx, X_fit, split, seed, combiner="xgboost")
    fit_s = time.perf_counter() - t0
    variants = {c: stack if c == "xgboost" else stack.with_combiner(make_combiner(c, stack.classes_, seed)) for c in COMBINERS}
    ids = np.arange(n_classes)

    def score_all(X: np.ndarray, y: np.ndarray) -> dict[str, dict[str, float]]:
        out = {f"{n} (base)": _scores(y, align_proba(p, stack.classes_, ids, n), n_classes)
               for n, p in stack.predict_proba_by_model(X).items()}
        out.update({c: _scores(y, align_proba(v.predict_proba(X), v.classes_, ids, c), n_classes) for c, v in variants.items()})
        return out

    validation = score_all(X_val, clips.y[val_idx])
    chosen = choose_combiner({c: validation[c] for c in COMBINERS})
    # only now is the test part read
    X_test = normalize([clips.landmarks[i] for i in test_idx], pre)
    test = score_all(X_test, clips.y[test_idx])
    if keep is not None:
        from signlang.models.bundle import save_bundle

        save_bundle(Path(keep), variants[chosen], classes=clips.classes, preprocessing=pre,
                    report={"kind": "combiner comparison", "chosen": chosen, "validation": validation},
                    extra={"split": {"spec": split, "seed": seed, "data": source}, "models": list(cfg.ensemble.models)})
    return {"split": split, "seed": seed, "data": source, "n_fit": int(len(fit_idx)), "n_validation": int(len(val_idx)),
            "n_test": int(len(test_idx)), "fit_s": fit_s, "chosen": chosen, "validation": validation, "test": test}


def combiner_markdown(result: dict[str, Any]) -> str:
    lines = [f"Split `{result['split']}` (seed {result['seed']}): {result['n_fit']} clips fit the base models, "
             f"{result['n_validation']} validation clips (carved from the training part) choose the combiner, "
             f"{result['n_test']} test clips are read only after the choice. **Chosen on validation: "
             f"{result['chosen']}.**", "",
             "| model | validation acc | validation macro-F1 | test acc | test macro-F1 | test ECE |", "|---|---:|---:|---:|---:|---:|"]
    for name, v in result["validation"].items():
        t = result["test"][name]
        mark = " (chosen)" if name == result["chosen"] else ""
        lines.append(f"| {name}{mark} | {_fmt_pct(v['accuracy'])} | {_fmt_pct(v['macro_f1'])} | {_fmt_pct(t['accuracy'])} | "
                     f"{_fmt_pct(t['macro_f1'])} | {t['ece']:.3f} |")
    return "\n".join(lines) + "\n"


# ================================================================================================
# Cross-signer: grouped K-fold by signer
# ================================================================================================
def signer_folds(clips: ClipSet, k: int) -> np.ndarray:
    """Fold id per clip ``(N,)``: sklearn's GroupKFold over the signers (no signer in two folds)."""
    from sklearn.model_selection import GroupKFold

    groups = np.asarray([str(s) for s in clips.signers])
    if any(s in ("", "None") for s in groups):
        raise ValueError("cross-signer folds need every clip's signer (the data has clips without one)")
    folds = np.empty(len(clips), dtype=np.int64)
    for f, (_, test) in enumerate(GroupKFold(n_splits=k).split(np.zeros(len(clips)), clips.y, groups)):
        folds[test] = f
    return folds


def per_person(y: np.ndarray, pred: np.ndarray, signers: np.ndarray) -> dict[str, Any]:
    """Accuracy per signer and its mean, median, 10th percentile and minimum."""
    names = np.asarray([str(s) for s in signers])
    people = sorted(set(names.tolist()), key=lambda s: (len(s), s))
    acc = np.array([(pred[names == p] == y[names == p]).mean() for p in people])
    return {"accuracy": float((pred == y).mean()), "person_mean": float(acc.mean()), "person_median": float(np.median(acc)),
            "person_p10": float(np.percentile(acc, 10)), "person_min": float(acc.min()),
            "by_person": dict(zip(people, acc.round(4).tolist()))}


HANDSHAPE_SIGN = "iloveyou"
"""The sign of ``asl_crowd_3signs`` whose handshape (thumb, index and little finger out) differs from the
others' (a flat hand): :func:`handshape_check` asks, per person, whether their clips agree with their labels."""
HANDSHAPE_MISSED = 0.5
"""A person is flagged when fewer than this share of their HANDSHAPE_SIGN clips show its handshape ..."""
HANDSHAPE_STRAY = 0.3
"""... or more than this share of their other clips do."""


def handshape_check(clips: ClipSet, X: np.ndarray, folds: np.ndarray, sign: str = HANDSHAPE_SIGN, seed: int = 0) -> dict[str, Any] | None:
    """Whether each person's recordings show the handshape their labels imply (None if ``sign`` is not a class).

    A logistic regression on the pooled ``finger_straightness`` of the dominant hand (handshape alone:
    no position, no motion) learns "``sign``'s handshape or not" from the other folds' people
    (``folds``: grouped by signer) and reads every clip. Per person: the share of their ``sign``
    clips it reads as ``sign`` and the share of their other clips it reads as ``sign``; a person is
    flagged when the first is below :data:`HANDSHAPE_MISSED` or the second above
    :data:`HANDSHAPE_STRAY` (recordings filed under each other's label, or a variant of the sign).
    ``X``: the clips normalised ``(N, T, 75, 3)`` (dominant hand canonicalised or not).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from signlang.features.engineering import frame_features, pool_features
    from signlang.landmarks.layout import part_present

    if sign not in clips.classes:
        return None
    target = (clips.y == clips.classes.index(sign)).astype(np.int64)
    present = part_present(X)[..., 1:]  # (N, T, 2)
    right = present[..., 1].sum(1) >= present[..., 0].sum(1)
    mask = np.where(right[:, None], present[..., 1], present[..., 0])  # frames with the dominant hand
    feats = pool_features(frame_features(X, ["finger_straightness"]), mask)
    reads = np.zeros(len(clips), dtype=bool)
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)).fit(feats[tr], target[tr])
        reads[te] = model.predict(feats[te]) == 1
    names = np.asarray([str(s) for s in clips.signers])
    people = []
    for person in sorted(set(names.tolist()), key=lambda q: (len(q), q)):
        m = names == person
        own, other = m & (target == 1), m & (target == 0)
        shown = float(reads[own].mean()) if own.any() else None
        stray = float(reads[other].mean()) if other.any() else None
        flagged = (shown is not None and shown < HANDSHAPE_MISSED) or (stray is not None and stray > HANDSHAPE_STRAY)
        people.append({"signer": person, "sign_shown": shown, "others_shown_as_sign": stray, "flagged": flagged})
    return {"sign": sign, "detector_accuracy": float((reads == target).mean()), "people": people,
            "flagged": [p["signer"] for p in people if p["flagged"]]}


def _hands_fraction(lm: np.ndarray) -> float:
    from signlang.landmarks.layout import part_present

    present = part_present(lm)  # (T, 3): pose, left, right
    return float(present[:, 1:].any(axis=1).mean())


def cross_signer(data: PathLike | ClipSet, cfg: TrainConfig, *, k: int = 5, seed: int | None = None,
                 baselines: Sequence[str] = ("lr", "minirocket"), ours: bool = True,
                 ablations: dict[str, dict[str, Any]] | None = None, progress: bool = False,
                 handshape_sign: str | None = HANDSHAPE_SIGN, cells: PathLike | None = AUTO) -> dict[str, Any]:
    """Grouped K-fold by signer: every clip is scored by models that never saw its signer.

    ``cells``: the label audit (:mod:`signlang.datasets.audit`; default the one beside the data). With
    one, every model trains on the kept cells of the other folds' people only, and the figures are
    over kept cells; each row also carries ``all_cells``: the same predictions scored on every clip
    of the held-out people against the file's labels (the excluded cells included), and the result
    names the excluded cells. Per row: ``per_sign`` (accuracy, clips and people per sign, kept
    cells) and ``by_fold`` (accuracy per fold). The label check (``handshape_sign``) runs only
    without an audit (the audit supersedes it).

    Rows: the baselines, each base model inside the ensemble and the ensemble (``cfg``), and, per
    entry of ``ablations`` (label -> config overrides), one base model alone under that change: the
    pooled XGBoost (the cheapest of our models, so an ablation costs minutes) unless the overrides
    name another with a ``"model"`` key. Per model: accuracy,
    macro-F1, per-person mean/median/p10/min; for the ensemble also ECE and the people below
    :data:`LOW_PERSON` with their confusions and how often a hand was detected. With
    ``handshape_sign`` (a class of the data) also :func:`handshape_check` and, per row, the figures
    over the people it does not flag (``consistent``): a diagnostic of label noise, never used to train.
    """
    from signlang.models.ensemble import align_proba
    from signlang.training.config import merge_overrides
    from signlang.training.pipeline import build_base_model, load_data, normalize, preprocessing_of

    from signlang.datasets.audit import audit_mask, read_audit, resolve_audit

    seed = cfg.seed if seed is None else int(seed)
    clips, source = load_data(data, ALL_CELLS)
    audit_file = resolve_audit(None if isinstance(data, ClipSet) else data, None if isinstance(data, ClipSet) and str(cells) == AUTO else cells)
    keep, audit = audit_mask(clips, read_audit(audit_file)) if audit_file is not None else (np.ones(len(clips), bool), None)
    if audit is not None:
        handshape_sign = None
    n_classes = len(clips.classes)
    folds = signer_folds(clips, k)
    y = clips.y
    preds: dict[str, np.ndarray] = {}
    ens_proba = np.zeros((len(clips), n_classes), dtype=np.float32)
    train_s: dict[str, float] = {}
    ids = np.arange(n_classes)
    pre = preprocessing_of(cfg)
    X_all = normalize(clips.landmarks, pre) if ours else None
    check = None
    if handshape_sign:
        check = handshape_check(clips, X_all if X_all is not None else normalize(clips.landmarks, pre), folds, handshape_sign, seed)
    for f in range(k):
        tr, te = np.flatnonzero((folds != f) & keep), np.flatnonzero(folds == f)
        for b in baselines:
            est = BASELINES[b](seed=seed)
            t0 = time.perf_counter()
            est.fit([clips.landmarks[i] for i in tr], y[tr])
            train_s[est.name] = train_s.get(est.name, 0.0) + time.perf_counter() - t0
            preds.setdefault(est.name, np.zeros(len(clips), np.int64))[te] = est.predict([clips.landmarks[i] for i in te])
        if ours:
            assert X_all is not None
            t0 = time.perf_counter()
            ens = fit_stacking(cfg, clips, tr, X_all[tr], "signer", seed)
            train_s["ensemble"] = train_s.get("ensemble", 0.0) + time.perf_counter() - t0
            for name, p in ens.predict_proba_by_model(X_all[te]).items():
                preds.setdefault(f"{name} (inside the ensemble)", np.zeros(len(clips), np.int64))[te] = ens.classes_[np.argmax(p, 1)]
            ens_proba[te] = align_proba(ens.predict_proba(X_all[te]), ens.classes_, ids, "ensemble")
            preds.setdefault(f"ensemble ({cfg.ensemble.combiner})", np.zeros(len(clips), np.int64))[te] = np.argmax(ens_proba[te], 1)
        if progress:
            print(f"cross-signer fold {f + 1}/{k} done", flush=True)
    ablation_rows: dict[str, np.ndarray] = {}
    ablation_models: dict[str, str] = {}
    for label, overrides in (ablations or {}).items():
        overrides = dict(overrides)
        model = str(overrides.pop("model", "xgboost"))  # the base model of this row (not a config key)
        acfg = merge_overrides(cfg, overrides)
        X = normalize(clips.landmarks, preprocessing_of(acfg))
        pred = np.zeros(len(clips), np.int64)
        for f in range(k):
            tr, te = np.flatnonzero((folds != f) & keep), np.flatnonzero(folds == f)
            est = build_base_model(model, acfg, n_classes, seed).fit(X[tr], y[tr])
            pred[te] = est.classes_[np.argmax(est.predict_proba(X[te]), 1)]
        ablation_rows[label] = pred
        ablation_models[label] = model
        if progress:
            print(f"cross-signer ablation {label!r} done", flush=True)
    names = np.asarray([str(s) for s in clips.signers])
    consistent = ~np.isin(names, check["flagged"]) if check else None

    def figures(pred: np.ndarray) -> dict[str, Any]:
        out = {**per_person(y[keep], pred[keep], clips.signers[keep]), **labels_accuracy_f1(y[keep], pred[keep], n_classes),
               "per_sign": per_sign(y[keep], pred[keep], names[keep], clips.classes),
               "by_fold": [float((pred[keep & (folds == f)] == y[keep & (folds == f)]).mean()) for f in range(k)]}
        if audit is not None:
            every = {**per_person(y, pred, clips.signers), **labels_accuracy_f1(y, pred, n_classes)}
            out["all_cells"] = {key: v for key, v in every.items() if key != "by_person"}
        if consistent is not None and consistent.any():
            sub = per_person(y[consistent], pred[consistent], clips.signers[consistent])
            out["consistent"] = {key: v for key, v in sub.items() if key != "by_person"}
        return out

    rows = [{"model": name, **figures(pred), "train_s": train_s.get(name)} for name, pred in preds.items()]
    ablation = [{"model": f"{ablation_models[label]} alone, {label}", "overrides": (ablations or {})[label], **figures(pred)}
                for label, pred in ablation_rows.items()]
    low: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    if not ours and ablation_rows:  # without the ensemble: the errors of the first ablation row (the shipped XGBoost, say)
        first = next(iter(ablation_rows.values()))
        errors = errors_by_person(y[keep], first[keep], names[keep], clips.classes)
    if ours:
        ens_pred = np.argmax(ens_proba, 1)
        errors = errors_by_person(y[keep], ens_pred[keep], names[keep], clips.classes)
        for person, acc in per_person(y[keep], ens_pred[keep], clips.signers[keep])["by_person"].items():
            if acc < LOW_PERSON:
                m = (names == person) & keep
                conf = np.zeros((n_classes, n_classes), np.int64)
                np.add.at(conf, (y[m], ens_pred[m]), 1)
                low.append({"signer": person, "accuracy": acc, "n_clips": int(m.sum()), "confusion": conf.tolist(),
                            "hands_detected_frames": round(float(np.mean([_hands_fraction(clips.landmarks[i]) for i in np.flatnonzero(m)])), 3),
                            "mean_confidence": round(float(ens_proba[m].max(1).mean()), 3)})
    selective = None
    if ours:
        recal = cross_fitted_temperature(y[keep], ens_proba[keep], folds[keep])
        selective = {"raw": selective_accuracy(y[keep], ens_proba[keep]), "recalibrated": selective_accuracy(y[keep], recal)}
        if consistent is not None and consistent.any():
            selective["recalibrated_consistent"] = selective_accuracy(y[consistent], recal[consistent])
    return {"data": source, "k": k, "seed": seed, "classes": list(clips.classes), "n_clips": int(keep.sum()),
            "n_signers": len(set(names[keep].tolist())), "n_clips_all": len(clips), "n_signers_all": len(set(names.tolist())),
            "audit": audit, "rows": rows, "ablations": ablation,
            "ensemble_ece": expected_calibration_error(y[keep], ens_proba[keep]) if ours else None,
            "ensemble_ece_recalibrated": expected_calibration_error(y[keep], recal) if ours else None, "selective": selective,
            "low_people": low, "errors_by_person": errors, "handshape_check": check,
            "errors_of": (f"ensemble ({cfg.ensemble.combiner})" if ours else
                          f"{ablation_models[next(iter(ablation_rows))]} alone, {next(iter(ablation_rows))}" if ablation_rows else None),
            "config_data": dict(pre["normalize"]), "combiner": cfg.ensemble.combiner}


def per_sign(y: np.ndarray, pred: np.ndarray, signers: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per sign with clips: ``{sign: {accuracy, clips, people}}`` (recall of that sign; people = signers with its clips)."""
    out = {}
    for c, name in enumerate(classes):
        m = y == c
        if m.any():
            out[name] = {"accuracy": float((pred[m] == c).mean()), "clips": int(m.sum()), "people": len(set(signers[m].tolist()))}
    return out


def errors_by_person(y: np.ndarray, pred: np.ndarray, signers: np.ndarray, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Every person with a wrong answer: ``[{signer, wrong, clips, confusions: {"true -> predicted": n}}]``, most wrong first."""
    out = []
    for person in sorted(set(signers.tolist()), key=lambda q: (len(q), q)):
        m = signers == person
        bad = m & (pred != y)
        if bad.any():
            pairs: dict[str, int] = {}
            for t, p in zip(y[bad], pred[bad]):
                key = f"{classes[t]} -> {classes[p]}"
                pairs[key] = pairs.get(key, 0) + 1
            out.append({"signer": person, "wrong": int(bad.sum()), "clips": int(m.sum()), "confusions": pairs})
    return sorted(out, key=lambda e: -e["wrong"])


def cross_signer_markdown(result: dict[str, Any]) -> str:
    audit = result.get("audit")
    rows_all = result["rows"] + result["ablations"]
    lines = [f"{result['n_clips']} clips of {result['n_signers']} signers, {len(result['classes'])} classes "
             f"({', '.join(result['classes'])}); grouped {result['k']}-fold by signer (sklearn GroupKFold): every clip is "
             "scored by models that never saw its signer. Per-person figures are over signers (each signer's accuracy on "
             "their own clips)." + (f" Label audit `{audit['file']}`: models train on kept cells only and the figures are "
                                    f"over kept cells; **all cells** = the same predictions scored on all {audit['n_clips']} "
                                    "clips against the file's labels." if audit else ""), ""]
    extra = " all cells |" if audit else ""
    lines += [f"| model | accuracy | macro-F1 | per-person mean | median | p10 | min |{extra}",
              "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if audit else "")]
    for r in rows_all:
        tail = f" {_fmt_pct(r['all_cells']['accuracy'])} |" if audit and r.get("all_cells") else (" - |" if audit else "")
        lines.append(f"| {r['model']} | {_fmt_pct(r['accuracy'])} | {_fmt_pct(r['macro_f1'])} | {_fmt_pct(r['person_mean'])} | "
                     f"{_fmt_pct(r['person_median'])} | {_fmt_pct(r['person_p10'])} | {_fmt_pct(r['person_min'])} |{tail}")
    signs = [c for c in result["classes"] if any(c in r.get("per_sign", {}) for r in rows_all)]
    if signs and rows_all and rows_all[0].get("per_sign"):
        first = rows_all[0]["per_sign"]
        lines += ["", "Per sign (recall on the sign's kept clips; people = signers with clips of it):", "",
                  "| model | " + " | ".join(f"{c} ({first[c]['people']} people, {first[c]['clips']} clips)" for c in signs) + " |",
                  "|---|" + "---:|" * len(signs)]
        for r in rows_all:
            lines.append(f"| {r['model']} | " + " | ".join(_fmt_pct(r["per_sign"][c]["accuracy"]) if c in r["per_sign"] else "-"
                                                         for c in signs) + " |")
    lr = next((r for r in result["rows"] if r["model"].startswith("pooled-stats LR")), None)
    if lr and lr.get("by_fold"):
        lines += ["", f"Accuracy per fold and the margin over the LR baseline (mean ± standard deviation over the {result['k']} folds):", "",
                  "| model | per fold | margin over LR |", "|---|---|---:|"]
        for r in rows_all:
            if not r.get("by_fold"):
                continue
            d = np.asarray(r["by_fold"]) - np.asarray(lr["by_fold"])
            lines.append(f"| {r['model']} | {', '.join(_fmt_pct(a) for a in r['by_fold'])} | "
                         f"{100 * d.mean():+.2f} ± {100 * d.std(ddof=1) if len(d) > 1 else 0:.2f} points |")
    if audit:
        cells = audit["excluded_cells"]
        lines += ["", f"Excluded by the audit: {audit['n_excluded']} clips in {len(cells)} cells (signer/label: clips, verdict): "
                  + ", ".join(f"{c['signer']}/{c['label']}: {c['clips']} {c.get('verdict', '')}".rstrip() for c in cells) + "."]
    if result.get("errors_by_person"):
        errs = result["errors_by_person"]
        lines += ["", f"Errors of {result.get('errors_of') or 'the ensemble'} on kept cells, by person "
                  f"({sum(e['wrong'] for e in errs)} wrong answers from {len(errs)} people):", "",
                  "| signer | wrong | clips | true -> predicted |", "|---|---:|---:|---|"]
        for e in errs:
            lines.append(f"| {e['signer']} | {e['wrong']} | {e['clips']} | {', '.join(f'{k}: {v}' for k, v in e['confusions'].items())} |")
    check = result.get("handshape_check")
    if check and check["flagged"]:
        n_people = result["n_signers"] - len(check["flagged"])
        lines += ["", f"Label check (a diagnostic, not a training step): a handshape-only detector of `{check['sign']}` "
                  f"(grouped by signer, {_fmt_pct(check['detector_accuracy'])} right per clip) finds the recordings of "
                  f"{len(check['flagged'])} people at odds with their labels: {', '.join(check['flagged'])}. The same rows "
                  f"over the other {n_people} people:", "",
                  "| model | accuracy | per-person median | p10 | min |", "|---|---:|---:|---:|---:|"]
        for r in result["rows"] + result["ablations"]:
            c = r.get("consistent")
            if c:
                lines.append(f"| {r['model']} | {_fmt_pct(c['accuracy'])} | {_fmt_pct(c['person_median'])} | "
                             f"{_fmt_pct(c['person_p10'])} | {_fmt_pct(c['person_min'])} |")
        lines += ["", "| signer | share of own `" + check["sign"] + "` clips with its handshape | share of other clips with it |",
                  "|---|---:|---:|"]
        for p in check["people"]:
            if p["flagged"]:
                lines.append(f"| {p['signer']} | {_fmt_pct(p['sign_shown'])} | {_fmt_pct(p['others_shown_as_sign'])} |")
    if result.get("ensemble_ece") is not None:
        lines += ["", f"Ensemble expected calibration error (15 bins): {result['ensemble_ece']:.3f}"
                  + (f"; {result['ensemble_ece_recalibrated']:.3f} after temperature scaling cross-fitted over the signer folds "
                     "(each fold's probabilities rescaled by a temperature fitted on the other folds' people)."
                     if result.get("ensemble_ece_recalibrated") is not None else ".")]
    if result.get("selective"):
        lines += ["", "What the low-confidence flag buys (ensemble, every clip scored by a model that never saw its person; "
                  "`recalibrated` = cross-fitted temperature): answers at or above a top-1 probability, their accuracy, "
                  "and the share of wrong answers flagged as unsure.", "",
                  "| probabilities | threshold | answered | accuracy when answered | wrong answers flagged |", "|---|---:|---:|---:|---:|"]
        labels = {"raw": "as trained", "recalibrated": "recalibrated", "recalibrated_consistent": "recalibrated, the people the label check does not flag"}
        for kind, rows in result["selective"].items():
            for r in rows:
                lines.append(f"| {labels.get(kind, kind)} | {r['threshold']:.1f} | {_fmt_pct(r['coverage'])} | "
                             f"{_fmt_pct(r['accuracy_answered'])} | {_fmt_pct(r['wrong_flagged'])} |")
    if result["low_people"]:
        lines += ["", f"People below {LOW_PERSON:.0%} (ensemble): rows = true sign, columns = predicted, in the order "
                  f"{', '.join(result['classes'])}.", "", "| signer | accuracy | clips | confusion | frames with a hand | mean confidence |",
                  "|---|---:|---:|---|---:|---:|"]
        for p in result["low_people"]:
            lines.append(f"| {p['signer']} | {_fmt_pct(p['accuracy'])} | {p['n_clips']} | {p['confusion']} | "
                         f"{p['hands_detected_frames']:.0%} | {p['mean_confidence']:.2f} |")
    return "\n".join(lines) + "\n"


# ================================================================================================
# Transfer: zero-shot from the main benchmark to other people, and the joint vocabulary
# ================================================================================================
def renamed(clips: ClipSet, rename: dict[str, str]) -> ClipSet:
    """The same clips with class names mapped through ``rename`` (others unchanged)."""
    return ClipSet(landmarks=clips.landmarks, y=clips.y, classes=tuple(rename.get(c, c) for c in clips.classes),
                   clip_ids=clips.clip_ids, signers=clips.signers, seq_ids=clips.seq_ids, splits=clips.splits, paths=clips.paths)


def zero_shot(bundle_dir: PathLike, crowd: PathLike | ClipSet, rename: dict[str, str] | None = None) -> dict[str, Any]:
    """A bundle scored on the clips of ``crowd`` whose (renamed) sign it knows.

    ``two_way_accuracy``: the right one of the signs both sets share, reading only their columns
    (the issue's "hello vs thank-you" figure); ``accuracy``: argmax over the bundle's whole
    vocabulary; ``predicted``: how often each class was the answer. Scored through
    :class:`~signlang.inference.predictor.Predictor` (what a user gets: a clip without hands is
    answered with the no-sign class); a clip it refuses (no person) counts as wrong (``refused``).
    """
    from signlang.inference.predictor import Predictor
    from signlang.training.pipeline import load_data

    clips, source = load_data(crowd)
    clips = renamed(clips, CROWD_TO_MAIN if rename is None else rename)
    with Predictor(bundle_dir, backend="torch") as predictor:
        classes = list(predictor.classes)
        index = {c: i for i, c in enumerate(classes)}
        shared = [c for c in clips.classes if c in index]
        keep = np.flatnonzero(np.isin(np.asarray(clips.classes)[clips.y], shared))
        preds, refused = predictor.predict_batch([clips.landmarks[i] for i in keep], 1)
    proba = np.stack([p.probs if p is not None else np.zeros(len(classes), np.float32) for p in preds])
    y = np.array([index[clips.classes[c]] for c in clips.y[keep]])
    cols = np.array([index[c] for c in shared])
    ok = np.array([p is not None for p in preds])
    two = np.where(ok, cols[np.argmax(proba[:, cols], axis=1)], -1)
    pred = np.where(ok, np.argmax(proba, axis=1), -1)
    counts = np.bincount(pred[ok], minlength=len(classes))
    signers = clips.signers[keep]
    return {"bundle": str(bundle_dir), "data": source, "signs": shared, "n_clips": int(len(keep)), "refused": len(refused),
            "two_way_accuracy": float((two == y).mean()), "accuracy": float((pred == y).mean()),
            "two_way_per_person": {k: v for k, v in per_person(y, two, signers).items() if k != "by_person"},
            "predicted": {classes[i]: int(n) for i, n in enumerate(counts) if n}}


def joint_crowd(crowd: ClipSet, main_classes: Sequence[str], rename: dict[str, str] | None = None,
                min_people: int = JOINT_MIN_PEOPLE) -> tuple[ClipSet, dict[str, Any]]:
    """The crowd clips of the signs that join the joint vocabulary, and what was left out.

    A sign joins when it has at least ``min_people`` signers in ``crowd`` (give it the kept cells) or
    when its (renamed) name is a class of the main set. Returns ``(clips of those signs, vocabulary
    reduced to them; {"signs": [...], "left_out": {sign: {"people", "clips"}}, "min_people"})``.
    """
    rename = CROWD_TO_MAIN if rename is None else rename
    names = np.asarray([str(x) for x in crowd.signers])
    joined, left = [], {}
    for c, sign in enumerate(crowd.classes):
        m = crowd.y == c
        people = len(set(names[m].tolist()))
        if people >= min_people or rename.get(sign, sign) in main_classes:
            joined.append(sign)
        elif m.any():
            left[sign] = {"people": people, "clips": int(m.sum())}
    sub = crowd.subset(np.flatnonzero(np.isin(np.asarray(crowd.classes)[crowd.y], joined)))
    index = {c: i for i, c in enumerate(joined)}
    out = ClipSet(landmarks=sub.landmarks, y=np.array([index[crowd.classes[c]] for c in sub.y], dtype=np.int64), classes=tuple(joined),
                  clip_ids=sub.clip_ids, signers=sub.signers, seq_ids=sub.seq_ids, splits=sub.splits, paths=sub.paths)
    return out, {"signs": joined, "left_out": left, "min_people": min_people}


def union(a: ClipSet, b: ClipSet, rename_b: dict[str, str] | None = None) -> ClipSet:
    """Both sets in one union vocabulary (sorted); ``b``'s classes renamed first; signers kept apart by a prefix."""
    b = renamed(b, rename_b or {})
    classes = tuple(sorted(set(a.classes) | set(b.classes)))
    index = {c: i for i, c in enumerate(classes)}
    ya = np.array([index[a.classes[c]] for c in a.y], dtype=np.int64)
    yb = np.array([index[b.classes[c]] for c in b.y], dtype=np.int64)
    signers = np.concatenate([np.array([None if s is None else f"a:{s}" for s in a.signers], dtype=object),
                              np.array([None if s is None else f"b:{s}" for s in b.signers], dtype=object)])
    return ClipSet(landmarks=list(a.landmarks) + list(b.landmarks), y=np.concatenate([ya, yb]), classes=classes,
                   clip_ids=np.concatenate([np.array([f"a:{c}" for c in a.clip_ids], dtype=object),
                                            np.array([f"b:{c}" for c in b.clip_ids], dtype=object)]),
                   signers=signers, seq_ids=np.concatenate([a.seq_ids, b.seq_ids]))


def joint_heldout(main: PathLike | ClipSet, crowd: PathLike | ClipSet, cfg: TrainConfig, *, split: str = "blocked:0.2",
                  k: int = 5, seed: int | None = None, progress: bool = False, save_proba: PathLike | None = None,
                  cells: PathLike | None = AUTO, min_people: int = JOINT_MIN_PEOPLE) -> dict[str, Any]:
    """The joint model (union vocabulary, as the pretrained model is built) scored on what it never saw.

    Fold ``f`` of ``k`` trains on the main set's ``split`` training part plus the crowd's signers outside
    fold ``f``, and scores the main set's test part and the crowd's fold-``f`` signers. Reported: the
    main test part (accuracy and macro-F1 per fold, and their mean), and the crowd's clips over all
    folds (each scored by a model that never saw its signer): accuracy over the whole joint vocabulary,
    accuracy reading only the crowd's own signs' columns (comparable with the cross-signer table), per
    person, and the ECE. ``save_proba``: an ``.npz`` of every held-out probability (``crowd_proba (N_crowd, C)``,
    ``crowd_y``, ``crowd_fold``, ``main_proba (k, N_test, C)``, ``main_y``) for calibration studies.

    The crowd is read with its label audit (``cells``, default the one beside it) and only the signs of
    :func:`joint_crowd` join the vocabulary. The clips of the signs left out are scored too, each by
    the fit that never saw its person (``unknown_proba (M, C)``, ``unknown_sign``, ``unknown_signer`` in
    the ``.npz``): signs the model does not know, for fitting and measuring an open-set rule.
    """
    from signlang.datasets.splits import split_indices
    from signlang.models.ensemble import align_proba
    from signlang.training.pipeline import load_data, normalize, preprocessing_of

    seed = cfg.seed if seed is None else int(seed)
    main_clips, main_src = load_data(main)
    all_crowd, crowd_src = load_data(crowd, cells)
    crowd_clips, crowd_signs = joint_crowd(all_crowd, main_clips.classes, min_people=min_people)
    joint = union(main_clips, crowd_clips, CROWD_TO_MAIN)
    n_main, n_classes = len(main_clips), len(joint.classes)
    ids = np.arange(n_classes)
    train_main, test_main = split_indices(main_clips, split, seed=seed)
    folds = signer_folds(crowd_clips, k)
    X = normalize(joint.landmarks, preprocessing_of(cfg))
    out_idx = np.flatnonzero(~np.isin(np.asarray(all_crowd.classes)[all_crowd.y], crowd_signs["signs"]))
    out_signers = np.asarray([str(x) for x in all_crowd.signers[out_idx]])
    fold_of = {str(p): int(f) for p, f in zip(crowd_clips.signers, folds)}
    out_fold = np.array([fold_of.get(p, 0) for p in out_signers], dtype=np.int64)  # people with no known sign: never trained on
    X_out = normalize([all_crowd.landmarks[i] for i in out_idx], preprocessing_of(cfg)) if len(out_idx) else None
    unknown_proba = np.zeros((len(out_idx), n_classes), np.float32)
    crowd_cols = np.array([joint.classes.index(CROWD_TO_MAIN.get(c, c)) for c in crowd_clips.classes])
    y_crowd = joint.y[n_main:]
    crowd_proba = np.zeros((len(crowd_clips), n_classes), np.float32)
    main_rows = []
    main_probas = []
    t0 = time.perf_counter()
    for f in range(k):
        fit_idx = np.concatenate([train_main, n_main + np.flatnonzero(folds != f)])
        ens = fit_stacking(cfg, joint, fit_idx, X[fit_idx], "random:0.2", seed)
        proba = align_proba(ens.predict_proba(X[test_main]), ens.classes_, ids, "joint")
        main_rows.append(_scores(joint.y[test_main], proba, n_classes))
        main_probas.append(proba)
        te = np.flatnonzero(folds == f)
        crowd_proba[te] = align_proba(ens.predict_proba(X[n_main + te]), ens.classes_, ids, "joint")
        if X_out is not None and (out_fold == f).any():
            unknown_proba[out_fold == f] = align_proba(ens.predict_proba(X_out[out_fold == f]), ens.classes_, ids, "joint")
        if progress:
            print(f"joint fold {f + 1}/{k}: main test accuracy {main_rows[-1]['accuracy']:.4f}", flush=True)
    own = crowd_cols[np.argmax(crowd_proba[:, crowd_cols], axis=1)]
    recal = cross_fitted_temperature(y_crowd, crowd_proba, folds)
    if save_proba is not None:
        Path(save_proba).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(save_proba, crowd_proba=crowd_proba, crowd_y=y_crowd, crowd_fold=folds, crowd_cols=crowd_cols,
                            main_proba=np.stack(main_probas), main_y=joint.y[test_main], classes=np.asarray(joint.classes),
                            crowd_signer=np.asarray([str(x) for x in crowd_clips.signers]), unknown_proba=unknown_proba,
                            unknown_sign=np.asarray(all_crowd.classes)[all_crowd.y[out_idx]].astype(str), unknown_signer=out_signers,
                            unknown_fold=out_fold)
    crowd_names = np.asarray([str(x) for x in crowd_clips.signers])
    return {"main": main_src, "crowd": crowd_src, "crowd_signs": crowd_signs, "split": split, "k": k, "seed": seed,
            "classes": list(joint.classes), "crowd_classes": [CROWD_TO_MAIN.get(c, c) for c in crowd_clips.classes],
            "crowd_per_sign": per_sign(y_crowd, own, crowd_names, joint.classes),
            "crowd_per_sign_joint_vocabulary": per_sign(y_crowd, np.argmax(crowd_proba, 1), crowd_names, joint.classes),
            "crowd_errors_by_person": errors_by_person(y_crowd, np.argmax(crowd_proba, 1), crowd_names, joint.classes),
            "n_unknown": int(len(out_idx)),
            "models": list(cfg.ensemble.models), "combiner": cfg.ensemble.combiner, "fit_s": time.perf_counter() - t0,
            "n_train_main": int(len(train_main)), "n_test_main": int(len(test_main)), "n_crowd": int(len(crowd_clips)),
            "main_test_by_fold": main_rows,
            "main_test_accuracy": float(np.mean([r["accuracy"] for r in main_rows])),
            "main_test_macro_f1": float(np.mean([r["macro_f1"] for r in main_rows])),
            "crowd_accuracy_joint_vocabulary": float((np.argmax(crowd_proba, 1) == y_crowd).mean()),
            "crowd_own_signs": {k_: v for k_, v in per_person(y_crowd, own, crowd_clips.signers).items() if k_ != "by_person"},
            "crowd_ece": expected_calibration_error(y_crowd, crowd_proba),
            "crowd_ece_recalibrated": expected_calibration_error(y_crowd, recal),
            "crowd_selective_recalibrated": selective_accuracy(y_crowd, recal)}


def joint_markdown(r: dict[str, Any]) -> str:
    own = r["crowd_own_signs"]
    return (f"Joint model ({'+'.join(r['models'])}, {r['combiner']} combiner; union vocabulary of {len(r['classes'])} signs), "
            f"{r['k']} folds: each trains on the {r['n_train_main']} clips of the main set's `{r['split']}` training part plus the "
            f"crowd's signers outside the fold.\n\n"
            f"| scored on | accuracy | macro-F1 | per-person median | p10 | min |\n|---|---:|---:|---:|---:|---:|\n"
            f"| main set, `{r['split']}` test part ({r['n_test_main']} clips; mean of the {r['k']} fits) | "
            f"{_fmt_pct(r['main_test_accuracy'])} | {_fmt_pct(r['main_test_macro_f1'])} | | | |\n"
            f"| crowd, people never seen, the {len(r.get('crowd_classes', [0] * 3))} crowd signs' columns ({r['n_crowd']} clips) | {_fmt_pct(own['accuracy'])} | | "
            f"{_fmt_pct(own['person_median'])} | {_fmt_pct(own['person_p10'])} | {_fmt_pct(own['person_min'])} |\n"
            f"| crowd, people never seen, argmax over all {len(r['classes'])} signs | {_fmt_pct(r['crowd_accuracy_joint_vocabulary'])} | | | | |\n\n"
            f"Crowd ECE (15 bins, whole vocabulary): {r['crowd_ece']:.3f}"
            + (f"; {r['crowd_ece_recalibrated']:.3f} after temperature scaling cross-fitted over the signer folds.\n"
               if r.get("crowd_ece_recalibrated") is not None else ".\n")
            + _joint_signs_markdown(r))


def _joint_signs_markdown(r: dict[str, Any]) -> str:
    """Per crowd sign (people never seen; argmax over the whole vocabulary), the signs left out, the people with errors."""
    if not r.get("crowd_per_sign_joint_vocabulary"):
        return ""
    ps = r["crowd_per_sign_joint_vocabulary"]
    lines = ["", "Per crowd sign, people never seen, argmax over the whole vocabulary:", "",
             "| sign | accuracy | people | clips |", "|---|---:|---:|---:|"]
    lines += [f"| {c} | {_fmt_pct(v['accuracy'])} | {v['people']} | {v['clips']} |" for c, v in ps.items()]
    left = (r.get("crowd_signs") or {}).get("left_out") or {}
    if left:
        lines += ["", "Crowd signs left out of the vocabulary (fewer than "
                  f"{r['crowd_signs']['min_people']} people and not a main-set sign; their {r.get('n_unknown', 0)} clips are scored as "
                  "unknown signs in the probabilities file): " + ", ".join(f"{c} ({v['people']} people, {v['clips']} clips)" for c, v in left.items()) + "."]
    errs = r.get("crowd_errors_by_person") or []
    if errs:
        lines += ["", f"Crowd errors by person (whole vocabulary; {sum(e['wrong'] for e in errs)} wrong from {len(errs)} people): "
                  + "; ".join(f"{e['signer']}: {e['wrong']}/{e['clips']} ({', '.join(f'{k} {v}' for k, v in e['confusions'].items())})"
                              for e in errs) + "."]
    return "\n".join(lines) + "\n"

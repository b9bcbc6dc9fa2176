"""The open-set benchmark behind ``signlang benchmark openset``: does a model say "unknown" to signs it never learnt?

Two protocols (docs/benchmarks.md, "Unknown signs"):

* **A, leave signs out** (main data, ``blocked:0.2``): per round a seeded ~80 % of the signs are
  known (the no-sign class ``-`` always is); a model trains on the known signs' clips of the fit
  part; the validation part (carved from the training part with the same protocol) chooses the
  method and fits every threshold; the test part reports. The other signs' clips are unknown.
* **B, people never seen** (``asl_crowd_8signs``, cells with ``keep=1`` in ``label_audit.csv``):
  grouped K-fold by signer; known = hello, iloveyou, thanks; unknown = yes, help, sorry, please
  of the held-out people; validation = people carved from the training people.

Methods: every probability score of :data:`signlang.models.openset.OPEN_SET_SCORES` (fitted with
:func:`~signlang.models.openset.fit_open_set` on the validation part), a Mahalanobis distance to
class prototypes of the pooled feature vector the XGBoost model reads (benchmark only: the
serving runners output probabilities), and a model trained with an extra ``unknown`` class of
"none of these" clips (A: the other half of the unknown signs, two fits swapping halves; B: the
``no`` clips of the training people). AUROC is scikit-learn's ``roc_auc_score`` (known = 1).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signlang.datasets.clip import ClipSet
from signlang.models.openset import OPEN_SET_SCORES, fit_open_set, threshold_for
from signlang.training.config import TrainConfig

PathLike = str | os.PathLike[str]

UNKNOWN = "unknown"
"""The name of the extra "none of these" class of the outlier-exposure model."""
NO_SIGN = "-"
"""The main data's no-sign (idle) class: always known."""
EMBEDDING = "pooled_mahalanobis"
"""The benchmark-only method: Mahalanobis distance of the pooled features to the nearest class prototype."""
EMBEDDING_DIMS = 64
"""PCA dimensions of the pooled features before the Mahalanobis distance."""
BASELINE = "max_prob"
PROBA_METHODS = ("max_prob", "margin", "entropy", "energy", "mahalanobis")
"""The probability scores compared (``unknown_class`` is scored on its own model, below)."""
CROWD8_DATA = ("asl_crowd_8signs", "asl_crowd_8signs.npz")
CROWD8_AUDIT = ("asl_crowd_8signs", "label_audit.csv")
B_KNOWN = ("hello", "iloveyou", "thanks")
B_UNKNOWN = ("yes", "help", "sorry", "please")
B_OUTLIER = ("no",)


# ------------------------------------------------------------------------------------------------
# data helpers
# ------------------------------------------------------------------------------------------------
def audit_counts(source: dict[str, Any]) -> dict[str, int] | None:
    """``{"kept", "dropped"}`` of the label audit :func:`signlang.datasets.heldout.load_data` applied (None: none)."""
    record = source.get("audit")
    return None if record is None else {"kept": int(record["n_kept"]), "dropped": int(record["n_excluded"])}


def relabel(clips: ClipSet, idx: np.ndarray, classes: Sequence[str], rename: dict[str, str] | None = None) -> ClipSet:
    """The clips at ``idx`` with labels mapped into ``classes`` (by name; ``rename`` maps old names first)."""
    rename = rename or {}
    index = {c: i for i, c in enumerate(classes)}
    sub = clips.subset(idx)
    names = [rename.get(str(n), str(n)) for n in sub.labels]
    missing = sorted({n for n in names if n not in index})
    if missing:
        raise ValueError(f"relabel: labels {missing} are not among the classes {list(classes)}")
    return ClipSet(landmarks=sub.landmarks, y=np.array([index[n] for n in names], dtype=np.int64), classes=tuple(classes),
                   clip_ids=sub.clip_ids, signers=sub.signers, seq_ids=sub.seq_ids, splits=sub.splits, paths=sub.paths)


def _roc(known: np.ndarray, unknown: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.ones(len(known)), np.zeros(len(unknown))], np.r_[known, unknown]))


# ------------------------------------------------------------------------------------------------
# one experiment: a model on known signs, every method scored on validation and test
# ------------------------------------------------------------------------------------------------
class _Inputs:
    """Every clip normalised once (``X`` ``(N, T, 75, 3)``) and pooled once (``P`` ``(N, D)``, the XGBoost model's input)."""

    def __init__(self, clips: ClipSet, cfg: TrainConfig) -> None:
        from signlang.models.featurize import pooled_features
        from signlang.training.pipeline import normalize, preprocessing_of

        self.blocks = None if cfg.data.feature_blocks is None else tuple(cfg.data.feature_blocks)
        self.X = normalize(clips.landmarks, preprocessing_of(cfg))
        self.P = pooled_features(self.X, self.blocks)


class _Model:
    """The project's model on known signs, its temperature fitted on the validation part.

    ``ensemble.models: [xgboost]`` with the mean combiner (the cheap setting): the registered XGBoost
    model fitted on the pooled features computed once (the same model as inside a stacking ensemble of
    it alone, whose mean combiner is the identity) and :class:`TemperatureScaling`; any other setting:
    :func:`signlang.bench.accuracy.fit_stacking` and the ensemble's own ``calibrate``.
    """

    def __init__(self, cfg: TrainConfig, inputs: _Inputs, train: ClipSet, rows: np.ndarray, val_rows: np.ndarray, val_y: np.ndarray,
                 protocol: str, seed: int) -> None:
        from signlang.models.calibration import TemperatureScaling
        from signlang.training.pipeline import build_base_model

        self.inputs = inputs
        self.fast = list(cfg.ensemble.models) == ["xgboost"] and cfg.ensemble.combiner == "mean"
        if self.fast:
            pooled = build_base_model("xgboost", cfg, len(train.classes), seed)
            from signlang.models.trees import XGBoostClassifier

            params = {k: v for k, v in pooled.get_params().items() if k != "feature_blocks"}
            self.model = XGBoostClassifier(**params).fit(inputs.P[rows], train.y)
            self.scaler = TemperatureScaling().fit(self.model.predict_proba(inputs.P[val_rows]), val_y)
            self.temperature = self.scaler.temperature_
        else:
            from signlang.bench.accuracy import fit_stacking

            self.model = fit_stacking(cfg, train, np.arange(len(train)), inputs.X[rows], protocol, seed)
            self.model.calibrate(inputs.X[val_rows], val_y)
            self.temperature = float(self.model.temperature_)

    def proba(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros((0, len(self.model.classes_)), np.float32)
        if self.fast:
            return self.scaler.transform(self.model.predict_proba(self.inputs.P[rows]))
        return self.model.predict_proba(self.inputs.X[rows])


class _Embedding:
    """Pooled features -> standardised -> PCA (whitened) -> class prototypes + shared covariance (fit on the fit part)."""

    def __init__(self, dims: int, seed: int) -> None:
        self.dims, self.seed = dims, seed

    @staticmethod
    def _clean(P: np.ndarray) -> np.ndarray:
        return np.nan_to_num(P, nan=0.0, posinf=0.0, neginf=0.0)

    def fit(self, P: np.ndarray, y: np.ndarray) -> "_Embedding":
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        F = self._clean(P)
        self.proj = make_pipeline(StandardScaler(), PCA(n_components=min(self.dims, F.shape[1], len(F) - 1), whiten=True,
                                                        random_state=self.seed)).fit(F)
        Z = self.proj.transform(F)
        self.classes = np.unique(y)
        self.means = np.stack([Z[y == c].mean(0) for c in self.classes])
        C = Z - self.means[np.searchsorted(self.classes, y)]
        cov = C.T @ C / max(len(Z) - len(self.classes), 1)
        self.precision = np.linalg.inv(cov + 1e-3 * np.eye(cov.shape[0]))
        return self

    def score(self, P: np.ndarray) -> np.ndarray:
        if len(P) == 0:
            return np.zeros(0)
        Z = self.proj.transform(self._clean(P))
        d = Z[:, None, :] - self.means[None]
        return -np.einsum("nkc,cd,nkd->nk", d, self.precision, d).min(1)


def _figures(threshold: float, s: dict[str, np.ndarray], part: str) -> dict[str, Any]:
    k, u = s[f"{part}_known"], s[f"{part}_unknown"]
    return {"auroc": _roc(k, u) if len(u) else None, "known_declined": float((k < threshold).mean()),
            "unknown_declined": float((u < threshold).mean()) if len(u) else None,
            "n_known": int(len(k)), "n_unknown": int(len(u))}


def _answered(y: np.ndarray, pred: np.ndarray, declined: np.ndarray) -> dict[str, Any]:
    """Accuracy on every known test clip, on the answered ones, and the share declined."""
    ans = ~declined
    return {"accuracy_all": float((pred == y).mean()), "accuracy_answered": float((pred[ans] == y[ans]).mean()) if ans.any() else None,
            "declined": float(declined.mean()), "wrong_declined": int((declined & (pred != y)).sum()),
            "right_declined": int((declined & (pred == y)).sum())}


def run_experiment(cfg: TrainConfig, clips: ClipSet, inputs: _Inputs, *, known: Sequence[str], unknown: Sequence[str],
                   fit_idx: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray, protocol: str, seed: int, target: float,
                   outlier_groups: Sequence[tuple[Sequence[str], Sequence[str]]] = (),
                   progress: bool = False) -> dict[str, Any]:
    """Every method on one model trained on the ``known`` signs of ``fit_idx``.

    ``val_idx``/``test_idx``: clips of known and unknown signs (others are ignored). Thresholds are
    fitted on the validation known clips for ``target`` false rejection. ``outlier_groups``: pairs
    ``(signs trained as "unknown", unknown signs scored)``: one extra model per pair, trained on the
    known signs plus the first group's clips of ``fit_idx`` labelled ``unknown``, scored on the second.
    Returns per method the validation and test figures and, on the test known clips, :func:`_answered`.
    """
    labels = clips.labels
    is_known, is_unknown = np.isin(labels, list(known)), np.isin(labels, list(unknown))
    parts = {"fit": fit_idx[is_known[fit_idx]],
             "val_known": val_idx[is_known[val_idx]], "val_unknown": val_idx[is_unknown[val_idx]],
             "test_known": test_idx[is_known[test_idx]], "test_unknown": test_idx[is_unknown[test_idx]]}
    for name, idx in parts.items():
        if len(idx) == 0 and name in ("fit", "val_known", "test_known", "test_unknown"):
            raise ValueError(f"open-set experiment: no {name.replace('_', ' ')} clips (known {list(known)}, unknown {list(unknown)})")
    kclasses = tuple(known)
    y = {name: relabel(clips, parts[name], kclasses).y for name in ("fit", "val_known", "test_known")}
    t0 = time.perf_counter()
    train = relabel(clips, parts["fit"], kclasses)
    model = _Model(cfg, inputs, train, parts["fit"], parts["val_known"], y["val_known"], protocol, seed)
    fit_s = time.perf_counter() - t0
    proba = {name: model.proba(parts[name]) for name in ("val_known", "val_unknown", "test_known", "test_unknown")}
    pred_test = np.argmax(proba["test_known"], 1)
    methods: dict[str, Any] = {}
    for method in PROBA_METHODS:
        rule = fit_open_set(proba["val_known"], method, target, proba["val_unknown"], y_known_valid=y["val_known"],
                            fitted_on="validation known clips")
        s = {name: rule.score(p) for name, p in proba.items()}
        methods[method] = {"kind": "probabilities", "params": {k: v for k, v in rule.params.items() if k == "T"},
                           "threshold": rule.threshold, "validation": _figures(rule.threshold, s, "val"),
                           "test": _figures(rule.threshold, s, "test"),
                           "answered": _answered(y["test_known"], pred_test, s["test_known"] < rule.threshold)}
    emb = _Embedding(EMBEDDING_DIMS, seed).fit(inputs.P[parts["fit"]], y["fit"])
    s = {name: emb.score(inputs.P[parts[name]]) for name in proba}
    thr = threshold_for(s["val_known"], target)
    methods[EMBEDDING] = {"kind": "pooled features (benchmark only)", "threshold": thr, "validation": _figures(thr, s, "val"),
                          "test": _figures(thr, s, "test"), "answered": _answered(y["test_known"], pred_test, s["test_known"] < thr)}
    if outlier_groups:
        methods["unknown_class"] = _outlier_model(cfg, clips, inputs, kclasses, parts, y, fit_idx, val_idx, test_idx, outlier_groups,
                                                  protocol, seed, target)
    if progress:
        print(f"open-set experiment done ({len(kclasses)} known signs, first fit {fit_s:.0f} s)", flush=True)
    return {"known": list(known), "unknown": list(unknown), "n": {k: int(len(v)) for k, v in parts.items()},
            "fit_s": fit_s, "closed_set_test_accuracy": float((pred_test == y["test_known"]).mean()),
            "temperature": float(model.temperature), "methods": methods}


def _outlier_model(cfg: TrainConfig, clips: ClipSet, inputs: _Inputs, kclasses: tuple[str, ...], parts: dict[str, np.ndarray],
                   y: dict[str, np.ndarray], fit_idx: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray,
                   groups: Sequence[tuple[Sequence[str], Sequence[str]]], protocol: str, seed: int, target: float) -> dict[str, Any]:
    """The ``unknown_class`` method: per group a model with an extra ``unknown`` class; figures pooled over groups."""
    labels = clips.labels
    classes = kclasses + (UNKNOWN,)
    col = len(kclasses)
    pooled: dict[str, list[np.ndarray]] = {"val_known": [], "val_unknown": [], "test_known": [], "test_unknown": []}
    answered = []
    thresholds = []
    for trained_as_unknown, scored in groups:
        extra = fit_idx[np.isin(labels[fit_idx], list(trained_as_unknown))]
        if len(extra) == 0:
            raise ValueError(f"open-set experiment: no training clips of {list(trained_as_unknown)} for the 'unknown' class")
        rows = np.r_[parts["fit"], extra]
        train = relabel(clips, rows, classes, {str(s): UNKNOWN for s in trained_as_unknown})
        model = _Model(cfg, inputs, train, rows, parts["val_known"], y["val_known"], protocol, seed)
        rows_of = {"val_known": parts["val_known"], "test_known": parts["test_known"],
                   "val_unknown": val_idx[np.isin(labels[val_idx], list(scored))],
                   "test_unknown": test_idx[np.isin(labels[test_idx], list(scored))]}
        proba = {name: model.proba(r) for name, r in rows_of.items()}
        rule = fit_open_set(proba["val_known"], "unknown_class", target, options={"index": col})
        thresholds.append(rule.threshold)
        for name, p in proba.items():  # relative to this model's threshold, so that groups pool on one scale
            pooled[name].append(rule.score(p) - rule.threshold if len(p) else np.zeros(0))
        answered.append(_answered(y["test_known"], np.argmax(proba["test_known"][:, :col], 1), rule.unknown(proba["test_known"])))
    s = {name: np.concatenate(v) for name, v in pooled.items()}
    mean_answered = {k: float(np.mean([a[k] for a in answered if a[k] is not None])) for k in answered[0]}
    return {"kind": "model with an 'unknown' class", "threshold": thresholds, "groups": [[list(a), list(b)] for a, b in groups],
            "validation": _figures(0.0, s, "val"), "test": _figures(0.0, s, "test"), "answered": mean_answered,
            "note": "known clips are scored once per model; figures pool the models (each at its own threshold)"}


# ------------------------------------------------------------------------------------------------
# the two protocols
# ------------------------------------------------------------------------------------------------
def protocol_a(data: PathLike | ClipSet, cfg: TrainConfig, *, split: str = "blocked:0.2", known_fraction: float = 0.8, rounds: int = 1,
               seed: int | None = None, target: float = 0.05, outlier: bool = True, progress: bool = False) -> dict[str, Any]:
    """Leave signs out on ``data`` (see the module docstring); ``rounds`` draws of the known signs."""
    from signlang.datasets.splits import split_indices, validation_indices
    from signlang.training.pipeline import load_data

    seed = cfg.seed if seed is None else int(seed)
    clips, source = load_data(data)
    train_idx, test_idx = split_indices(clips, split, seed=seed)
    fit_idx, val_idx = validation_indices(clips, train_idx, split, seed)
    inputs = _Inputs(clips, cfg)
    signs = [c for c in clips.classes if c != NO_SIGN]
    experiments = []
    for r in range(rounds):
        rng = np.random.default_rng(seed + r)
        order = [signs[i] for i in rng.permutation(len(signs))]
        n_known = int(round(known_fraction * len(clips.classes))) - (NO_SIGN in clips.classes)
        known = sorted(order[:n_known] + ([NO_SIGN] if NO_SIGN in clips.classes else []))
        unknown = sorted(order[n_known:])
        half = len(unknown) // 2
        groups = [(unknown[:half], unknown[half:]), (unknown[half:], unknown[:half])] if outlier and half >= 1 else []
        experiments.append(run_experiment(cfg, clips, inputs, known=known, unknown=unknown, fit_idx=fit_idx, val_idx=val_idx,
                                          test_idx=test_idx, protocol=split, seed=seed + r, target=target,
                                          outlier_groups=groups, progress=progress))
    return {"protocol": "A", "data": source, "split": split, "seed": seed, "rounds": rounds, "target": target,
            "n_train": int(len(fit_idx)), "n_val": int(len(val_idx)), "n_test": int(len(test_idx)),
            "models": list(cfg.ensemble.models), "combiner": cfg.ensemble.combiner, "experiments": experiments,
            "summary": summarize(experiments)}


def protocol_b(data: PathLike | ClipSet, cfg: TrainConfig, *, audit: PathLike | None = None, known: Sequence[str] = B_KNOWN,
               unknown: Sequence[str] = B_UNKNOWN, outlier_signs: Sequence[str] = B_OUTLIER, k: int = 3,
               seed: int | None = None, target: float = 0.05, progress: bool = False) -> dict[str, Any]:
    """People never seen (see the module docstring): grouped ``k``-fold by signer, validation people carved from the training people."""
    from signlang.bench.accuracy import signer_folds
    from signlang.datasets.splits import validation_indices
    from signlang.training.pipeline import load_data

    seed = cfg.seed if seed is None else int(seed)
    clips, source = load_data(data) if audit is None else load_data(data, audit)  # default: the audit beside the data
    folds = signer_folds(clips, k)
    inputs = _Inputs(clips, cfg)
    outlier = [s for s in outlier_signs if s in clips.classes]
    experiments = []
    for f in range(k):
        train_idx, test_idx = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        fit_idx, val_idx = validation_indices(clips, train_idx, "signer:0.2", seed)
        groups = [(outlier, list(unknown))] if outlier else []
        experiments.append(run_experiment(cfg, clips, inputs, known=known, unknown=unknown, fit_idx=fit_idx, val_idx=val_idx, test_idx=test_idx,
                                          protocol="signer", seed=seed, target=target, outlier_groups=groups, progress=progress))
    return {"protocol": "B", "data": source, "audit": audit_counts(source), "k": k, "seed": seed, "target": target,
            "n_signers": len(set(str(s) for s in clips.signers)), "models": list(cfg.ensemble.models),
            "combiner": cfg.ensemble.combiner, "outlier_signs": outlier, "experiments": experiments, "summary": summarize(experiments)}


def summarize(experiments: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per method: validation and test figures averaged over the experiments (rounds or folds)."""
    out: dict[str, Any] = {}
    for method in experiments[0]["methods"]:
        rows = [e["methods"][method] for e in experiments]
        out[method] = {"kind": rows[0]["kind"]}
        for part in ("validation", "test", "answered"):
            keys = [key for key in rows[0][part] if key != "n_known" and key != "n_unknown"]
            vals = {key: [r[part][key] for r in rows if isinstance(r[part].get(key), (int, float))] for key in keys}
            out[method][part] = {key: float(np.mean(v)) if v else None for key, v in vals.items()}
    return out


def choose_method(result_a: dict[str, Any]) -> str:
    """The shippable (probability) method with the best validation AUROC of protocol A; ties go to the baseline."""
    summary = result_a["summary"]
    shippable = [m for m in summary if m in OPEN_SET_SCORES and m != "unknown_class"]
    return max(shippable, key=lambda m: (round(summary[m]["validation"]["auroc"], 3), m == BASELINE))


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def markdown(result: dict[str, Any]) -> str:
    """Both protocols' tables, the method chosen on A's validation part marked."""
    lines: list[str] = []
    chosen = result.get("chosen")
    for key, title in (("A", "Protocol A: leave signs out"), ("B", "Protocol B: people never seen")):
        r = result.get(key)
        if not r:
            continue
        e0 = r["experiments"][0]
        if key == "A":
            setup = (f"{r['data'].get('path') or 'the data'}, {r['split']} (train {r['n_train']} / validation {r['n_val']} / test "
                     f"{r['n_test']} clips), {r['rounds']} round(s) of {len(e0['known'])} known / {len(e0['unknown'])} unknown signs "
                     f"(round 1 unknown: {', '.join(e0['unknown'])})")
        else:
            setup = (f"{r['data'].get('path') or 'the data'}, {r['n_signers']} people, grouped {r['k']}-fold by signer"
                     + (f", label audit keep=1 ({r['audit']['kept']} clips kept, {r['audit']['dropped']} dropped)" if r.get("audit") else "")
                     + f"; known {', '.join(e0['known'])}; unknown {', '.join(e0['unknown'])}"
                     + (f"; 'unknown' class trained on {', '.join(r['outlier_signs'])}" if r.get("outlier_signs") else ""))
        lines += [f"### {title}", "", f"{setup}. Models: {'+'.join(r['models'])} ({r['combiner']} combiner), temperature fitted on the "
                  f"validation known clips; every threshold fitted there for {_pct(r['target'])} false rejection.", "",
                  "| method | input | val AUROC | test AUROC | test known declined | test unknown declined | known test accuracy, answered / all |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for method, s in r["summary"].items():
            name = f"**{method}** (best on A validation)" if method == chosen else (f"{method} (baseline)" if method == BASELINE else method)
            a = s["answered"]
            lines.append(f"| {name} | {s['kind']} | {s['validation']['auroc']:.3f} | {s['test']['auroc']:.3f} | "
                         f"{_pct(s['test']['known_declined'])} | {_pct(s['test']['unknown_declined'])} | "
                         f"{_pct(a.get('accuracy_answered'))} / {_pct(a.get('accuracy_all'))} |")
        lines.append("")
    return "\n".join(lines)


def run_openset_benchmark(cfg: TrainConfig, *, data_a: PathLike | ClipSet | None, data_b: PathLike | ClipSet | None,
                          audit_b: PathLike | None = None, rounds: int = 1, folds: int = 3, seed: int | None = None,
                          target: float = 0.05, progress: bool = False) -> dict[str, Any]:
    """Protocol A on ``data_a`` and B on ``data_b`` (either may be None); the method is chosen on A's validation part."""
    t0 = time.perf_counter()
    result: dict[str, Any] = {}
    if data_a is not None:
        result["A"] = protocol_a(data_a, cfg, rounds=rounds, seed=seed, target=target, progress=progress)
        result["chosen"] = choose_method(result["A"])
    if data_b is not None:
        result["B"] = protocol_b(data_b, cfg, audit=audit_b, k=folds, seed=seed, target=target, progress=progress)
    result["total_s"] = time.perf_counter() - t0
    return result


# ------------------------------------------------------------------------------------------------
# the shipped model: held-out people fit the rule, the real videos outside the vocabulary
# ------------------------------------------------------------------------------------------------
VIDEOS = ("videos_real_signing",)
VIDEO_LABELS = {"slp_pose_FOOTBALL.mp4": "FOOTBALL", "slp_pose_SOUP.mp4": "SOUP", "wlasl_00335.mp4": "abdomen",
                "wlasl_00336.mp4": "abdomen", "wlasl_00338.mp4": "abdomen", "wlasl_00339.mp4": "abdomen",
                "slp_pose_test_video.mp4": None}
"""The real videos' signs (the data README); None = unlabelled. None of them is in the shipped vocabulary."""
CROWD_RENAME = {"thanks": "thank-you"}
"""asl_crowd_* spellings -> the shipped model's."""


def shipped_model_check(model_dir: PathLike, crowd: PathLike | ClipSet, videos: PathLike | None, *, audit: PathLike | None = None,
                        trained: PathLike | ClipSet | None = None, methods: Sequence[str] = PROBA_METHODS, target: float = 0.05,
                        seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Open-set rules for a trained bundle, fitted on its held-out probabilities, and what they do to real videos.

    Held out: the clips of ``crowd`` whose content the bundle never trained on (its recorded
    fingerprints) and whose (signer, sign) cell is not in ``trained`` (the data the bundle trained on,
    when the same people's recordings were stored differently there: asl_crowd_3signs for the shipped
    model); known = those with a sign of its vocabulary, unknown = the others. Per method:
    a rule fitted on half of the held-out people (known clips; unknown clips only pick the energy
    temperature) and scored on the other half (AUROC, known declined, unknown declined, accuracy on
    answered known clips), then a rule fitted on all of them applied to every video of ``videos``.
    """
    from signlang.inference.predictor import Predictor
    from signlang.datasets.heldout import load_data, training_overlap

    clips, source = load_data(crowd) if audit is None else load_data(crowd, audit)  # default: the audit beside the data
    pred = Predictor(model_dir)
    vocab = {c: i for i, c in enumerate(pred.classes)}
    from signlang.models.bundle import load_bundle

    manifest = load_bundle(model_dir).manifest
    overlap = {a for a, _ in training_overlap(manifest, clips, np.arange(len(clips)))}
    names = np.array([CROWD_RENAME.get(str(n), str(n)) for n in clips.labels])
    fresh = np.array([str(c) not in overlap for c in clips.clip_ids])
    if trained is not None:
        seen, _ = load_data(trained)
        cells = {(str(a), CROWD_RENAME.get(str(b), str(b))) for a, b in zip(seen.signers, seen.labels)}
        fresh &= np.array([(str(a), n) not in cells for a, n in zip(clips.signers, names)])
    known_idx = np.flatnonzero(fresh & np.isin(names, list(vocab)))
    unknown_idx = np.flatnonzero(~np.isin(names, list(vocab)))
    if progress:
        print(f"shipped model: {len(known_idx)} held-out known clips, {len(unknown_idx)} unknown, {int((~fresh).sum())} left out "
              f"({len(overlap)} by content)", flush=True)
    pk = pred.proba([clips.landmarks[i] for i in known_idx])
    pu = pred.proba([clips.landmarks[i] for i in unknown_idx])
    yk = np.array([vocab[n] for n in names[known_idx]])
    people = np.array(sorted(set(str(s) for s in clips.signers[np.r_[known_idx, unknown_idx]])))
    half = set(np.random.default_rng(seed).permutation(people)[: len(people) // 2].tolist())
    in_a_k = np.array([str(s) in half for s in clips.signers[known_idx]])
    in_a_u = np.array([str(s) in half for s in clips.signers[unknown_idx]])
    video_clips: dict[str, np.ndarray] = {}
    if videos is not None:
        from signlang.landmarks.extract import Landmarker

        landmarker = Landmarker(quiet=True)
        for p in sorted(Path(videos).glob("*.mp4")):
            try:
                video_clips[p.name] = landmarker(p).landmarks
            except ValueError as exc:  # one unreadable video never stops the check
                video_clips[p.name] = np.zeros((0, 75, 3), np.float32)
                if progress:
                    print(f"{p.name}: {exc}", flush=True)
        landmarker.close()
    pv = {n: pred.proba([lm])[0] for n, lm in video_clips.items() if len(lm)}
    rows: dict[str, Any] = {}
    for method in methods:
        fit_a = fit_open_set(pk[in_a_k], method, target, pu[in_a_u], y_known_valid=yk[in_a_k])
        sk, su = fit_a.score(pk[~in_a_k]), fit_a.score(pu[~in_a_u])
        declined = sk < fit_a.threshold
        right = np.argmax(pk[~in_a_k], 1) == yk[~in_a_k]
        rule = fit_open_set(pk, method, target, pu, y_known_valid=yk, fitted_on=f"held-out clips of {source.get('path')}")
        rows[method] = {
            "held_out_half": {"auroc": _roc(sk, su), "known_declined": float(declined.mean()), "unknown_declined": float((su < fit_a.threshold).mean()),
                              "accuracy_all": float(right.mean()), "accuracy_answered": float(right[~declined].mean()) if (~declined).any() else None},
            "rule": rule.to_json() if method != "mahalanobis" else {"method": method, "threshold": rule.threshold, "record": rule.record},
            "videos": {n: {"declined": bool(rule.unknown(p[None])[0]), "score": float(rule.score(p[None])[0])} for n, p in pv.items()},
        }
    return {"model": str(model_dir), "data": source, "audit": audit_counts(source), "n_left_out_trained": int((~fresh).sum()),
            "n_known": int(len(known_idx)), "n_unknown": int(len(unknown_idx)),
            "n_people": int(len(people)), "target": target,
            "videos": {n: {"label": VIDEO_LABELS.get(n), "top1": pred.classes[int(np.argmax(p))], "p_top1": float(p.max())} for n, p in pv.items()},
            "videos_unreadable": sorted(n for n, lm in video_clips.items() if not len(lm)), "methods": rows}


def shipped_markdown(r: dict[str, Any]) -> str:
    """The shipped-model check as markdown: per method the held-out half's figures and the videos declined."""
    vids = list(r["videos"])
    out_of_vocab = [n for n in vids if r["videos"][n]["label"] is not None]
    lines = ["### The shipped model: held-out people and the real videos", "",
             f"{r['model']}: rules fitted on {r['n_known']} held-out known clips and {r['n_unknown']} clips of other signs of "
             f"{r['n_people']} people ({r['data'].get('path')}, label audit keep=1; the {r.get('n_left_out_trained', 0)} clips of people and signs "
             "the model trained on left out); figures on the half of the people "
             f"the rule was not fitted on; videos declined by the rule fitted on all of them ({_pct(r['target'])} target).", "",
             "| method | AUROC | known declined | unknown declined | accuracy answered / all | videos declined (of "
             f"{len(out_of_vocab)} outside the vocabulary) |", "|---|---:|---:|---:|---:|---:|"]
    for m, row in r["methods"].items():
        h = row["held_out_half"]
        n_dec = sum(row["videos"][n]["declined"] for n in out_of_vocab if n in row["videos"])
        lines.append(f"| {m} | {h['auroc']:.3f} | {_pct(h['known_declined'])} | {_pct(h['unknown_declined'])} | "
                     f"{_pct(h['accuracy_answered'])} / {_pct(h['accuracy_all'])} | {n_dec} |")
    lines += ["", "| video | sign | top-1 | p(top-1) | " + " | ".join(r["methods"]) + " |", "|---|---|---|---:|" + "---|" * len(r["methods"])]
    for n in vids:
        v = r["videos"][n]
        lines.append(f"| {n} | {v['label'] or 'unlabelled'} | {v['top1']} | {v['p_top1']:.2f} | "
                     + " | ".join("unknown" if r["methods"][m]["videos"][n]["declined"] else "answered" for m in r["methods"]) + " |")
    return "\n".join(lines) + "\n"

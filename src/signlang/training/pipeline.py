"""The end-to-end training pipeline behind ``signlang train`` and ``signlang calibrate``.

:func:`train_bundle`::

    load -> (only with a split) hold out the test part and carve a validation part from the
    training part with the same protocol -> normalise -> base estimators by name (registry)
    -> StackingEnsemble with out-of-fold folds -> fit -> validation (or out-of-fold) metrics
    -> save_bundle -> MLflow

Without a split (``split=None``, the default of ``signlang train``) the bundle is the *final*
model: it trains on every clip it is given; early stopping carves its own validation part inside
each network's fit and the stacking folds are out-of-fold, so the report's figures are the base
models' out-of-fold scores. With a split the test part is never touched.

The split spec, its seed, the training data's checksum and the clip ids + content fingerprints
of the training part go into the bundle manifest (``extra.split``, ``extra.training_clips``) so
that ``signlang evaluate`` (:func:`signlang.inference.evaluate.evaluate_bundle`, which scores
through the predictor) and :func:`calibrate_bundle` use exactly the held-out test part and refuse
clips the bundle trained on (:mod:`signlang.datasets.heldout`).

Every estimator takes ``X`` = normalised landmarks ``(N, T, 75, 3)`` float32 (NaN = missing) and
integer labels ``y`` (indices into the dataset's classes).

One path for 1 or N processes: under torchrun (``signlang train --nproc N``, or ``torchrun ... -m
signlang train`` on several nodes) every process runs :func:`train_bundle` with the same data and
split; the model kinds that train together (``ModelKind.distributed``: the networks, under DDP) fit
on every rank, the others on rank 0 alone, and only rank 0 validates, calibrates and writes the
bundle, so ``--nproc N`` writes the folder ``signlang train`` writes (``report["distributed"]``
says how many processes trained it and each network's weights hash on every rank).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signlang.datasets.audit import AUTO
from signlang.datasets.clip import ClipSet
from signlang.datasets.heldout import (  # noqa: F401 - load_data is this stage's way in, for tune/ and bench/ too
    EVALUATE_ALL, FINAL, DataArg, PathLike, clip_fingerprints, heldout_part, load_data,
)
from signlang.models.ensemble import ENSEMBLE  # noqa: F401 - ``models=["ensemble"]`` (or None): stack cfg.ensemble.models
from signlang.models.registry import MODELS
from signlang.training.config import TrainConfig, config_to_dict, flatten_config, normalize_config
from signlang.models.evaluation import classification_report

FINAL_FOLD_PROTOCOL = "blocked:0.2"
"""How a final bundle's out-of-fold stacking folds are drawn (the main benchmark's protocol)."""

# --------------------------------------------------------------------------------------------
# base models: every model of signlang.models.registry.MODELS, built from its config section
# --------------------------------------------------------------------------------------------
def build_base_model(name: str, cfg: TrainConfig, n_classes: int, seed: int) -> Any:
    """An unfitted estimator for registered model ``name``; ``ValueError`` listing the known names otherwise.

    A network becomes a :class:`~signlang.training.estimator.NeuralSequenceClassifier` trained as
    ``cfg`` says; any other model is built from its section with ``seed``, ``classes`` and
    ``feature_blocks`` supplied.
    """
    spec = MODELS.get(name)
    if spec.is_network:
        from signlang.training.config import merge_overrides
        from signlang.training.estimator import NeuralSequenceClassifier

        return NeuralSequenceClassifier.from_config(merge_overrides(cfg, {"seed": seed}) if seed != cfg.seed else cfg, spec.name)
    return spec.build(cfg.section(spec.name), seed=seed, classes=np.arange(n_classes), feature_blocks=_blocks(cfg))


def _blocks(cfg: TrainConfig) -> tuple[str, ...] | None:
    """The feature blocks of ``cfg.data`` (None = the default blocks, features.engineering.FEATURE_BLOCKS)."""
    return None if cfg.data.feature_blocks is None else tuple(cfg.data.feature_blocks)


def meta_learner(n_classes: int, seed: int, combiner: str = "xgboost") -> Any:
    """The stacking combiner ``ensemble.combiner`` (xgboost | logistic | mean) over ``n_classes`` classes."""
    from signlang.models.combiners import make_combiner

    return make_combiner(combiner, np.arange(n_classes), seed)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def preprocessing_of(cfg: TrainConfig) -> dict[str, Any]:
    """What a bundle needs to turn raw clips into model input: normalisation + feature blocks."""
    return {
        "input": "landmarks (T, 75, 3) float32, NaN = not detected (signlang.landmarks.layout)",
        "normalize": normalize_config(cfg).to_dict(),
        "feature_blocks": None if cfg.data.feature_blocks is None else list(cfg.data.feature_blocks),
    }


def normalize(clips: Sequence[np.ndarray], preprocessing: dict[str, Any]) -> np.ndarray:
    """Clips ``(T_i, 75, 3)`` -> model input ``(N, T, 75, 3)`` float32 with a bundle's settings."""
    from signlang.features.normalize import NormalizeConfig, normalize_clips

    if "normalize" not in preprocessing:
        raise ValueError(f"bundle preprocessing has no 'normalize' settings (keys: {sorted(preprocessing)})")
    return normalize_clips(list(clips), NormalizeConfig.from_dict(dict(preprocessing["normalize"])))


def resolve_models(models: Sequence[str] | str | None, cfg: TrainConfig) -> tuple[list[str], bool]:
    """``(base model names, stacked?)``: None/"ensemble" -> ``cfg.ensemble.models`` stacked."""
    if models is None or models == ENSEMBLE or list(models) == [ENSEMBLE]:
        names, stacked = list(cfg.ensemble.models), True
    else:
        names = [models] if isinstance(models, str) else list(models)
        stacked = len(names) > 1
    names = [MODELS.canonical(n) for n in names]
    taggers = [n for n in names if MODELS.get(n).task != "clip"]
    if taggers:
        raise ValueError(f"models {taggers}: a frame tagger is not a clip classifier; enable it with its own section ({taggers[0]}.enabled: true)")
    if len(set(names)) != len(names):
        raise ValueError(f"models listed twice: {names}")
    return names, stacked


def check_workdir(out: Path, overwrite: bool) -> None:
    """Refuse a run folder that already holds files unless ``overwrite`` (``ValueError`` naming it)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and not overwrite:
        found = sorted(p.name for p in out.iterdir())
        if found:
            shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            raise ValueError(f"--out {out}: the folder is not empty ({shown}); pass --overwrite to replace it, or choose a new folder")


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="step", leave=False)


def _summary(report: dict[str, Any]) -> dict[str, float]:
    return {k: report[k] for k in ("accuracy", "macro_f1", "top5_accuracy", "ece") if k in report}


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------
def train_bundle(
    data: DataArg,
    out_dir: PathLike,
    cfg: TrainConfig,
    *,
    split: str | None = None,
    models: Sequence[str] | str | None = None,
    tracking_uri: str | None = None,
    track: bool = True,
    seed: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    validate: bool = True,
    cells: PathLike | None = AUTO,
) -> dict[str, Any]:
    """Train a model bundle into ``out_dir`` and return its report (also ``out_dir/report.json``).

    ``split``: the protocol whose *test* part is held out (never used here); ``None`` (or
    ``"none"``) trains the final bundle on every clip (see the module docstring). ``models``: one base
    model name, several (stacked), or None/"ensemble" for ``cfg.ensemble.models`` stacked.
    ``seed`` overrides ``cfg.seed``. MLflow tracking (params, metrics, the bundle's files) runs
    when ``track`` is True and mlflow is installed; ``tracking_uri`` defaults to the config's or
    a sqlite file in ``out_dir``. ``validate=False`` trains on the whole training part (no
    validation metrics), as the benchmark does to compare with baselines on equal data.
    A non-empty ``out_dir`` is refused unless ``overwrite``. ``cells``: the label audit (:func:`load_data`);
    what it excluded is in ``report["audit"]`` and ``report["split"]["data"]["audit"]``.

    Rank-aware (see the module docstring): inside a torchrun launch every process calls it with the
    same arguments; rank 0 returns the report, the other ranks ``{"rank", "world_size", "distributed"}``.
    """
    from signlang.training.distributed import process_group

    with process_group(cfg.device) as ctx:
        return _train_bundle(data, out_dir, cfg, ctx, split=split, models=models, tracking_uri=tracking_uri, track=track,
                             seed=seed, progress=progress, overwrite=overwrite, validate=validate, cells=cells)


def _train_bundle(data: DataArg, out_dir: PathLike, cfg: TrainConfig, ctx: Any, *, split: str | None,
                  models: Sequence[str] | str | None, tracking_uri: str | None, track: bool, seed: int | None,
                  progress: bool, overwrite: bool, validate: bool, cells: PathLike | None) -> dict[str, Any]:
    """:func:`train_bundle` on this process (``ctx``: its :class:`~signlang.training.distributed.DistContext`)."""
    from signlang.datasets.splits import fold_ids, split_indices, validation_indices
    from signlang.models.registry import kind_for
    from signlang.training.distributed import gather, state_hash
    from signlang.models.ensemble import StackingEnsemble, align_proba
    from signlang.models.bundle import save_bundle
    progress = progress and ctx.is_main

    def fit_here(est: Any) -> bool:  # the networks train together on every rank, the other kinds on rank 0
        return ctx.is_main or kind_for(est).distributed

    seed = cfg.seed if seed is None else int(seed)
    names, stacked = resolve_models(models, cfg)
    out = Path(out_dir)
    check_workdir(out, overwrite)
    final = split is None or split == FINAL
    split = FINAL if final else split
    fold_protocol = FINAL_FOLD_PROTOCOL if final else split
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    clips, source = load_data(data, cells)  # before any progress bar: a bad --data is an error on its own line
    n_classes = len(clips.classes)
    if final:  # the final bundle: every clip trains; scores come out of fold
        train_idx, test_idx = np.arange(len(clips), dtype=np.int64), np.zeros(0, dtype=np.int64)
        fit_idx, val_idx = train_idx, np.zeros(0, dtype=np.int64)
    else:
        train_idx, test_idx = split_indices(clips, split, seed=seed)
        if validate:
            fit_idx, val_idx = validation_indices(clips, train_idx, split, seed)
        else:
            fit_idx, val_idx = train_idx, np.zeros(0, dtype=np.int64)
    if len(np.unique(clips.y[fit_idx])) < 2:
        raise ValueError(f"split {split!r}: the training part has fewer than 2 classes")
    timings["load_split_s"] = time.perf_counter() - t0
    steps = _progress(6, progress, "train")
    steps.update(1)

    t0 = time.perf_counter()
    preprocessing = preprocessing_of(cfg)
    X_fit = normalize([clips.landmarks[i] for i in fit_idx], preprocessing)
    X_val = normalize([clips.landmarks[i] for i in val_idx], preprocessing) if len(val_idx) else None
    y_fit, y_val = clips.y[fit_idx], clips.y[val_idx]
    timings["normalize_s"] = time.perf_counter() - t0
    steps.update(1)

    t0 = time.perf_counter()
    bases = [(n, build_base_model(n, cfg, n_classes, seed)) for n in names]
    if stacked:
        folds = fold_ids(clips, fit_idx, cfg.ensemble.n_folds, fold_protocol, seed)
        model: Any = StackingEnsemble(base_estimators=bases, meta_estimator=meta_learner(n_classes, seed, cfg.ensemble.combiner),
                                      n_folds=cfg.ensemble.n_folds, passthrough_pooled=cfg.ensemble.passthrough_pooled,
                                      feature_blocks=_blocks(cfg), random_state=seed)
        n_fits = (len(np.unique(folds)) * (cfg.ensemble.combiner != "mean") + 1) * len(bases) + 1
        started = [0]
        with _progress(n_fits, progress, "fit") as bar:
            def on_fit(desc: str) -> None:
                if started[0]:
                    bar.update(1)  # the previous fit finished
                started[0] += 1
                bar.set_description(desc)

            model.fit(X_fit, y_fit, folds=folds, on_fit=on_fit, fit_here=fit_here)
            bar.update(1)
    else:
        model = bases[0][1]
        if fit_here(model):
            model.fit(X_fit, y_fit)
    timings["fit_s"] = time.perf_counter() - t0
    if stacked:
        timings["fit_s_by_model"] = dict(model.fit_seconds_)
    steps.update(1)
    fitted = model.estimators_ if stacked else [(names[0], model)]
    # every rank's weights of every network (a collective: each rank hashes the same networks in the same order)
    hashes = {name: gather(state_hash(est.module_)) for name, est in fitted if kind_for(est).distributed and hasattr(est, "module_")}
    distributed = {"world_size": ctx.world_size, "backend": ctx.backend, "weights_sha256": hashes}
    if not ctx.is_main:  # rank 0 alone validates, calibrates and writes
        steps.close()
        return {"rank": ctx.rank, "world_size": ctx.world_size, "distributed": distributed}

    t0 = time.perf_counter()
    validation: dict[str, Any] = {}
    if X_val is not None:
        all_ids = np.arange(n_classes)
        if stacked:
            for name, proba in model.predict_proba_by_model(X_val).items():
                validation[name] = classification_report(y_val, align_proba(proba, model.classes_, all_ids, name), clips.classes)
        proba = align_proba(model.predict_proba(X_val), model.classes_, all_ids, ENSEMBLE if stacked else names[0])
        validation[ENSEMBLE if stacked else names[0]] = classification_report(y_val, proba, clips.classes)
    elif final and stacked and model.oof_proba_ is not None:  # every clip trained: out-of-fold scores are the honest figures
        validation = _out_of_fold_reports(model, y_fit, clips.classes)
    # after the validation scores, so they are those of the model as trained; the temperature is fitted on
    # the same clips (its before/after figures on them are in the calibration record)
    calibration = _calibrate_after_fit(model, cfg, stacked, X_val, y_val, final)
    open_set_rule, open_set_record = _open_set_after_fit(model, cfg, stacked, X_val, y_val, final)
    timings["validate_s"] = time.perf_counter() - t0
    steps.update(1)

    split_info = {
        "spec": split, "seed": seed, "final": final, "n_train": int(len(train_idx)), "n_fit": int(len(fit_idx)),
        "n_validation": int(len(val_idx)), "n_test_held_out": int(len(test_idx)),
        "data": source, "n_folds": int(cfg.ensemble.n_folds) if stacked else None,
        "fold_protocol": fold_protocol if stacked else None,
        "validation": ("out-of-fold scores of the base models (every clip trained the final bundle)" if final and validation
                       else "none: every clip trained the final bundle, and the mean combiner needs no out-of-fold fits "
                            "(hold out a test part with --split to score it)" if final and stacked
                       else "none: every clip trained the final bundle (early stopping carves its own part)" if final
                       else f"a part of the training part carved with {split}" if len(val_idx) else "none"),
    }
    training_clips = {"clip_ids": [str(c) for c in clips.clip_ids[train_idx]],
                      "fingerprints": clip_fingerprints([clips.landmarks[i] for i in train_idx])}
    timings["total_s"] = time.perf_counter() - t_all
    history = {name: est.history_ for name, est in fitted if getattr(est, "history_", None)}
    report: dict[str, Any] = {
        "kind": "training",
        "models": names,
        "stacked": stacked,
        "classes": list(clips.classes),
        "audit": source.get("audit"),
        "split": split_info,
        "validation": validation,
        "validation_summary": {k: _summary(v) for k, v in validation.items()},
        "validation_kind": ("out_of_fold" if validation else "none") if final else "held_out",
        "calibration": calibration,
        "open_set": open_set_record,
        "distributed": distributed,
        "timings": timings,
        "history": history,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "config": config_to_dict(cfg),
    }
    segmenter = None
    if cfg.segmenter.enabled:  # the temporal segmenter, on streams built from the same training part
        t0 = time.perf_counter()
        segmenter = fit_segmenter(cfg, clips, fit_idx, val_idx, seed)
        timings["segmenter_s"] = time.perf_counter() - t0
        report["segmenter"] = {"history": segmenter.history_, "decoder_search": segmenter.decoder_search_,
                               "validation": max(segmenter.history_, key=lambda r: r["f1"]) if len(val_idx) else None}
    save_bundle(out, model, classes=clips.classes, preprocessing=preprocessing, report=report,
                extra={"split": split_info, "models": names, "training_clips": training_clips, "calibration": calibration,
                       "open_set": open_set_record},
                name=None if stacked else names[0], overwrite=True, open_set=open_set_rule, segmenter=segmenter)
    steps.update(1)

    if track:
        report["tracking"] = _track(out, cfg, report, tracking_uri, split, seed, names)
    steps.update(1)
    steps.close()
    return report


def fit_segmenter(cfg: TrainConfig, clips: ClipSet, fit_idx: np.ndarray, val_idx: np.ndarray, seed: int,
                  log: Any = None) -> Any:
    """Train the ``segmenter:`` section's segmenter on streams of the clips ``fit_idx`` plus every clip of its
    ``extra_data`` datasets (their signs, whatever their vocabulary); scored after each epoch on streams of
    ``val_idx`` (the best epoch kept) when there are any."""
    from signlang.datasets.loaders import load_dataset
    from signlang.datasets.streams import StreamSource

    seg = build_base_model("segmenter", cfg, len(clips.classes), seed)
    idle = list(seg.idle_classes)
    sources = [StreamSource(clips, fit_idx, idle, name="training part")]
    for path in seg.extra_data:
        extra = load_dataset(Path(path))
        sources.append(StreamSource(extra, np.arange(len(extra)), idle, name=str(path)))
    val = [StreamSource(clips, val_idx, idle, name="validation part")] if len(val_idx) else []
    return seg.fit(sources, val, n_val=max(20, seg.n_streams // 10) if val else 0, log=log)


def _calibrate_after_fit(model: Any, cfg: TrainConfig, stacked: bool, X_val: np.ndarray | None, y_val: np.ndarray,
                         final: bool) -> dict[str, Any]:
    """Fit the ensemble's temperature on the validation part (``ensemble.calibration: temperature``); what was done, or why not."""
    if cfg.ensemble.calibration == "none":
        return {"method": "none", "why": "ensemble.calibration is 'none'"}
    if not stacked:
        return {"method": "none", "why": "a single-model bundle is not recalibrated (only a stacking ensemble's combined output is)"}
    if X_val is None:
        return {"method": "none", "why": ("every clip trained the final bundle, so none is left to fit a temperature on: "
                                          "run `signlang calibrate --model RUN --data HELD_OUT` with clips of other people or sessions")
                if final else "the run has no validation part"}
    known = np.isin(y_val, model.classes_)  # a sign seen only in the validation part cannot be scored
    if len(np.unique(y_val[known])) < 2:
        return {"method": "none", "why": "the validation part holds fewer than 2 of the trained signs"}
    return {"method": "temperature", "fitted_on": "the validation part", **model.calibrate(X_val[known], y_val[known])}


def _open_set_after_fit(model: Any, cfg: TrainConfig, stacked: bool, X_val: np.ndarray | None, y_val: np.ndarray,
                        final: bool) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Fit the open-set rule (``ensemble.open_set``) on the validation part's known clips, after the temperature:
    ``(rule as JSON or None, what was done or why not)``."""
    setting = cfg.ensemble.open_set
    if setting is None:
        return None, {"method": "none", "why": "ensemble.open_set is not set"}
    if not stacked:
        return None, {"method": "none", "why": "a single-model bundle has no combined output for an open-set rule"}
    if X_val is None:
        return None, {"method": "none", "why": ("every clip trained the final bundle, so none is left to fit the open-set threshold on: "
                                                "run `signlang calibrate --model RUN --data HELD_OUT` with clips of other people or sessions")
                      if final else "the run has no validation part"}
    known = np.isin(y_val, model.classes_)
    if not known.any():
        return None, {"method": "none", "why": "the validation part holds none of the trained signs"}
    rule = open_set_from_clips(model, X_val[known], y_val[known], setting.method, setting.target_false_rejection,
                               fitted_on="the validation part")
    return rule.to_json(), {"method": rule.method, **rule.record}


def open_set_from_clips(model: Any, X: np.ndarray, y: np.ndarray, method: str, target_false_rejection: float, *,
                        X_unknown: np.ndarray | None = None, fitted_on: str = "held-out clips") -> Any:
    """An :class:`~signlang.models.openset.OpenSetRule` fitted on a stacking ensemble's probabilities (after its
    temperature) of held-out known clips ``X`` ``(N, T, 75, 3)`` with labels ``y`` (class ids of ``model.classes_``),
    and optionally clips of other signs ``X_unknown``."""
    from signlang.models.openset import fit_open_set
    from signlang.models.trees import encode_labels

    cols = encode_labels(y, model.classes_, "open set: y")
    unknown = model.predict_proba(X_unknown) if X_unknown is not None and len(X_unknown) else None
    return fit_open_set(model.predict_proba(X), method, target_false_rejection, unknown, y_known_valid=cols, fitted_on=fitted_on)


def _out_of_fold_reports(model: Any, y: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Each base model's report on its out-of-fold probabilities (``model.oof_proba_``)."""
    from signlang.models.ensemble import align_proba

    all_ids = np.arange(len(classes))
    n_cls = len(model.classes_)
    reports = {}
    for b, (name, _) in enumerate(model.estimators_):
        proba = np.asarray(model.oof_proba_[:, b * n_cls:(b + 1) * n_cls], dtype=np.float64)
        ok = np.isfinite(proba).all(axis=1)
        if ok.any():
            proba = proba[ok] / np.clip(proba[ok].sum(axis=1, keepdims=True), 1e-12, None)
            reports[name] = classification_report(y[ok], align_proba(proba, model.classes_, all_ids, name), classes)
    return reports


def _track(out: Path, cfg: TrainConfig, report: dict[str, Any], tracking_uri: str | None, split: str, seed: int,
           names: list[str]) -> dict[str, Any]:
    """Log params, validation metrics, timings and the bundle's files to MLflow (RUN_DIR/mlflow by default)."""
    import logging

    from signlang.training.tracking import make_tracker

    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    uri = tracking_uri or cfg.tracking.tracking_uri
    try:
        tracker = make_tracker(cfg.tracking, enabled=True, tracking_uri=uri, out_dir=out / "mlflow")
        with tracker:
            tracker.set_tags({"split": split, "models": ",".join(names)})
            tracker.log_params({**flatten_config(cfg), "split": split, "seed": seed, "models": ",".join(names)})
            metrics = {f"val_{m}_{k}": v for m, s in report["validation_summary"].items() for k, v in s.items()}
            tracker.log_metrics({**metrics, **{f"time_{k}": v for k, v in report["timings"].items() if isinstance(v, float)}})
            for name, history in report.get("history", {}).items():  # per-epoch curves of the final fits
                for epoch, row in enumerate(history, start=1):
                    tracker.log_metrics({f"{name}_{k}": float(v) for k, v in row.items() if isinstance(v, (int, float))}, step=epoch)
            for p in sorted(out.iterdir()):
                if p.is_file() and not p.name.startswith("."):
                    tracker.log_artifact(p, "bundle")
            return {"tracking_uri": tracker.tracking_uri, "run_id": tracker.run_id}
    except ImportError as exc:
        return {"skipped": str(exc)}


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------
def calibrate_bundle(bundle_dir: PathLike, data: DataArg, split: str | None = EVALUATE_ALL, *, seed: int | None = None,
                     allow_overlap: bool = False, open_set: str | None = None,
                     target_false_rejection: float | None = None, cells: PathLike | None = AUTO) -> dict[str, Any]:
    """Fit a bundle's temperature on held-out clips of ``data`` and write it into the bundle's manifest.

    ``split``: which clips of ``data`` (default every clip: a set of people or sessions the bundle never
    saw; score the bundle on *other* clips afterwards). Only the manifest changes (``meta.temperature`` and
    ``extra.calibration``), atomically; the weights are untouched. Returns what was fitted.

    Open set: ``open_set`` (a method of ``models.openset.OPEN_SET_SCORES``) fits a rule on the same clips after
    the new temperature; without it a rule the bundle already has is refitted with its method; ``"none"``
    removes it. ``target_false_rejection`` defaults to the existing rule's target, else 0.05. The rule goes to
    ``meta.open_set`` (``extra.open_set`` says what it was fitted on) and the record's ``open_set``.
    """
    from signlang.models.bundle import load_bundle, set_open_set, set_temperature
    from signlang.models.openset import OPEN_SET_SCORES, OpenSetRule

    bundle = load_bundle(bundle_dir)
    ens = bundle.ensemble
    if ens is None:
        raise ValueError(f"{bundle_dir}: a single-model bundle has no combined output to recalibrate; train the ensemble")
    existing = OpenSetRule.from_json((bundle.manifest.get("meta") or {}).get("open_set"))
    if open_set is not None and open_set != "none":
        OPEN_SET_SCORES.get(open_set)
        if open_set == "unknown_class":
            raise ValueError("--open-set unknown_class: that score needs a model trained with a 'none of these' class; "
                             "choose a probability score")
    target = float(target_false_rejection if target_false_rejection is not None
                   else (existing.record.get("target_false_rejection", 0.05) if existing else 0.05))
    if not 0.0 < target < 0.5:
        raise ValueError(f"--false-rejection must be in (0, 0.5), got {target!r}")
    method = None if open_set == "none" else (open_set or (existing.method if existing else None))
    clips, source, spec, use_seed, idx, y, notes, overlap = heldout_part(bundle.manifest, bundle.classes, bundle_dir, data, split,
                                                                         seed=seed, allow_overlap=allow_overlap, purpose="calibrate",
                                                                         cells=cells)
    seen = np.isin(y, ens.classes_)  # signs in the bundle's vocabulary that its models never trained on cannot be scored
    if not seen.all():
        notes.append(f"{int((~seen).sum())} clip(s) of signs the models never trained on left out")
        idx, y = idx[seen], y[seen]
    if len(np.unique(y)) < 2:
        raise ValueError(f"{data if not isinstance(data, ClipSet) else 'the data'}: the held-out clips hold fewer than 2 signs; "
                         "a temperature needs clips of several signs" + "".join(f" ({n})" for n in notes))
    X = normalize([clips.landmarks[i] for i in idx], bundle.preprocessing)
    before = float(ens.temperature_)
    fitted = ens.calibrate(X, y)
    record = {"method": "temperature", "fitted_on": f"{spec} clips of {source.get('path') or 'the data'}", "audit": source.get("audit"),
              "data": source, "split": spec, "seed": use_seed, "previous_temperature": before, "notes": notes, **fitted}
    set_temperature(bundle_dir, ens.temperature_, record)
    if method is not None:
        rule = open_set_from_clips(ens, X, y, method, target, fitted_on=record["fitted_on"])
        set_open_set(bundle_dir, rule.to_json(), {"method": rule.method, **rule.record, "previous": existing.to_json() if existing else None})
        record["open_set"] = {"method": rule.method, "threshold": rule.threshold, **rule.record}
    elif open_set == "none" and existing is not None:
        set_open_set(bundle_dir, None, {"method": "none", "why": "removed by signlang calibrate --open-set none",
                                        "previous": existing.to_json()})
        record["open_set"] = {"method": "none"}
    return record

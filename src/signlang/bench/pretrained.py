"""Rebuild the pretrained model shipped in ``signlang/pretrained/`` from the shared data.

``signlang benchmark pretrained`` (this module's :func:`build_pretrained`) trains the joint model:
the main benchmark (traduttore, 33 signs) and the cross-signer set (asl_crowd_8signs, the kept cells
of its ``label_audit.csv``; its ``thanks`` read as ``thank-you``; only the signs of
:func:`signlang.bench.accuracy.joint_crowd`: at least 20 people, or a traduttore sign) in one union
vocabulary of 34 signs, every clip, with the shipped CPU configuration, then writes the bundle and its
parity-checked ONNX export (``onnx/``, so that the shipped model runs without torch), the sha256 of both
manifests into ``index.json``, and keeps the model card beside it. Same data, same library versions and the same thread count give
the same files.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from signlang._io import sha256_file, write_json
from signlang.bench.accuracy import CROWD_DATA, CROWD_TO_MAIN, JOINT_MIN_PEOPLE, MAIN_DATA, fit_stacking, joint_crowd, union
from signlang.bench.common import shared_data_path

PathLike = str | os.PathLike[str]


def heldout_temperature(path: PathLike) -> dict[str, Any]:
    """A temperature fitted on the held-out probabilities the joint benchmark saved
    (``signlang benchmark accuracy --parts joint`` -> ``*_joint_proba.npz``): the crowd's people, each scored
    by the fit that never saw them, and the main set's test part as scored by every fit."""
    from signlang.models.calibration import TemperatureScaling

    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            proba = np.concatenate([z["crowd_proba"], z["main_proba"].reshape(-1, z["main_proba"].shape[-1])])
            y = np.concatenate([z["crowd_y"], np.tile(z["main_y"], z["main_proba"].shape[0])])
            classes = [str(c) for c in z["classes"]]
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{p}: not the held-out probabilities of `signlang benchmark accuracy --parts joint` "
                         f"({type(exc).__name__}: {exc})") from None
    scaler = TemperatureScaling().fit(proba, y)
    return {"method": "temperature", "fitted_on": f"the joint benchmark's held-out probabilities ({p.name})",
            "classes": classes, **scaler.fit_report_}


def build_pretrained(out: PathLike, *, name: str = "asl-cafe", config: str = "cpu", combiner: str | None = None,
                     models: list[str] | None = None, main: PathLike | None = None, crowd: PathLike | None = None,
                     temperature_from: PathLike | None = None, min_people: int = JOINT_MIN_PEOPLE) -> dict[str, Any]:
    """Train the joint model on all clips of both sets into ``out/name`` and pin it in ``out/index.json``.

    ``combiner`` / ``models`` override ``ensemble.combiner`` / ``ensemble.models`` of the config.
    ``temperature_from``: the ``*_joint_proba.npz`` of the joint benchmark (same recipe, held-out people
    and sessions); the model is calibrated with the temperature fitted there (:func:`heldout_temperature`),
    since a model trained on every clip has none left to fit it on. ``min_people``: a crowd sign that is not a
    main-set sign joins with at least this many people (:func:`signlang.bench.accuracy.joint_crowd`).
    """
    import torch

    from signlang.models.bundle import save_bundle
    from signlang.training.config import config_to_dict, load_config, merge_overrides, shipped_config_path
    from signlang.training.pipeline import load_data, normalize, preprocessing_of

    torch.set_num_threads(1)
    cfg = load_config(shipped_config_path(config))
    if combiner is not None:
        cfg = merge_overrides(cfg, {"ensemble.combiner": combiner})
    if models:
        cfg = merge_overrides(cfg, {"ensemble.models": list(models)})
    main_path = Path(main) if main else shared_data_path(*MAIN_DATA)
    crowd_path = Path(crowd) if crowd else shared_data_path(*CROWD_DATA)
    main_clips, main_src = load_data(main_path)
    crowd_clips, crowd_src = load_data(crowd_path)  # the label audit beside it applies (kept cells)
    crowd_clips, crowd_signs = joint_crowd(crowd_clips, main_clips.classes, min_people=min_people)
    joint = union(main_clips, crowd_clips, CROWD_TO_MAIN)
    t0 = time.perf_counter()
    pre = preprocessing_of(cfg)
    idx = np.arange(len(joint))
    X = normalize(joint.landmarks, pre)
    calibration = heldout_temperature(temperature_from) if temperature_from else None  # a bad file fails before training
    ens = fit_stacking(cfg, joint, idx, X, "random:0.2", cfg.seed)
    fit_s = time.perf_counter() - t0
    folder = Path(out) / name
    report = {
        "kind": "pretrained", "name": name, "config": config_to_dict(cfg), "config_name": config,
        "data": {"main": main_src, "crowd": crowd_src, "n_clips": len(joint), "n_main": len(main_clips), "n_crowd": len(crowd_clips),
                 "rename": CROWD_TO_MAIN, "crowd_signs": crowd_signs},
        "calibration": f"temperature fitted on {temperature_from} (manifest: extra.calibration)" if temperature_from else "none",
        "fit_s": fit_s, "command": f"signlang benchmark pretrained --out {out} --name {name} --config {config}"
                                   + (f" --combiner {combiner}" if combiner else "") + (f" --models {','.join(models)}" if models else "")
                                   + (f" --temperature-from {temperature_from}" if temperature_from else ""),
    }
    save_bundle(folder, ens, classes=joint.classes, preprocessing=pre, report=report,
                extra={"split": {"spec": "none (every clip of both sets)", "seed": cfg.seed}, "models": list(cfg.ensemble.models)})
    if calibration is not None:
        calibrate_pretrained(folder, temperature_from, calibration)
    pin_pretrained(Path(out), name, f"joint model, {len(joint.classes)} ASL signs (traduttore + {crowd_path.stem}, kept cells), "
                                    f"{cfg.ensemble.combiner} combiner")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {**report, "bytes": size, "classes": list(joint.classes)}


def pretrained_segmenter(*, config: str = "cpu", main: PathLike | None = None, crowd: PathLike | None = None,
                         min_people: int = JOINT_MIN_PEOPLE, overrides: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """The pretrained model's temporal segmenter (the config's ``segmenter:`` section, enabled) trained on streams
    of the same joint data as the classifier: 90 % of the clips (a seeded random draw) make the training streams,
    streams of the other 10 % choose its epoch and decoding thresholds. ``overrides``: config keys (e.g.
    ``{"segmenter.n_streams": 20}``). ``(segmenter, what it was fitted on)``."""
    import torch

    from signlang.training.config import load_config, merge_overrides, shipped_config_path
    from signlang.training.pipeline import fit_segmenter, load_data

    torch.set_num_threads(1)
    cfg = merge_overrides(load_config(shipped_config_path(config)), {**(overrides or {}), "segmenter.enabled": True})
    main_clips, _ = load_data(Path(main) if main else shared_data_path(*MAIN_DATA))
    crowd_clips, _ = load_data(Path(crowd) if crowd else shared_data_path(*CROWD_DATA))
    crowd_clips, _ = joint_crowd(crowd_clips, main_clips.classes, min_people=min_people)
    joint = union(main_clips, crowd_clips, CROWD_TO_MAIN)
    perm = np.random.default_rng(cfg.seed).permutation(len(joint))
    n_val = len(joint) // 10
    val_idx, fit_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    t0 = time.perf_counter()
    seg = fit_segmenter(cfg, joint, fit_idx, val_idx, cfg.seed)
    best = max(seg.history_, key=lambda r: r["f1"]) if seg.history_ else None
    record = {"fitted_on": f"streams of {len(fit_idx)} joint clips (seed {cfg.seed}); epoch and decoder chosen on streams "
                           f"of the other {len(val_idx)}", "config": config, "fit_s": time.perf_counter() - t0,
              "validation": best, "decoder": seg.decoder_search_.get("chosen") if seg.decoder_search_ else None}
    return seg, record


def add_segmenter(out: PathLike, name: str, **kwargs: Any) -> dict[str, Any]:
    """Train :func:`pretrained_segmenter` and store it in the existing ``out/name`` (``segmenter.safetensors``,
    pinned by the manifest), then re-export and re-pin it; returns what the segmenter was fitted on."""
    from signlang.inference.pretrained import pretrained_index
    from signlang.models.bundle import attach_segmenter

    folder = Path(out) / name
    if not (folder / "manifest.json").is_file():
        raise ValueError(f"{folder}: no bundle to add a segmenter to; build it first (signlang benchmark pretrained)")
    seg, record = pretrained_segmenter(**kwargs)
    attach_segmenter(folder, seg)
    pin_pretrained(Path(out), name, pretrained_index(Path(out)).get(name, {}).get("description", name))
    return record


def heldout_open_set(path: PathLike, temperature: float, method: str = "max_prob", target_false_rejection: float = 0.05) -> Any:
    """An open-set rule fitted on the joint benchmark's held-out probabilities (after ``temperature``): the known
    clips are the crowd's people and the main set's test part (as for :func:`heldout_temperature`); the clips of
    the crowd signs left out of the vocabulary (``unknown_proba``, when the file has them) are reported in the
    rule's record (share declined, AUROC) and pick the constant of a score that has one."""
    from signlang.models.openset import fit_open_set
    from signlang.models.temperature import apply_temperature

    p = Path(path)
    with np.load(p, allow_pickle=False) as z:
        known = np.concatenate([z["crowd_proba"], z["main_proba"].reshape(-1, z["main_proba"].shape[-1])])
        y = np.concatenate([z["crowd_y"], np.tile(z["main_y"], z["main_proba"].shape[0])])
        unknown = z["unknown_proba"] if "unknown_proba" in z.files and len(z["unknown_proba"]) else None
        signs = sorted(set(str(s) for s in z["unknown_sign"])) if unknown is not None else []
    rule = fit_open_set(apply_temperature(known, temperature), method, target_false_rejection,
                        None if unknown is None else apply_temperature(unknown, temperature), y_known_valid=y,
                        fitted_on=f"the joint benchmark's held-out probabilities ({p.name}); unknown signs: {', '.join(signs) or 'none'}")
    return rule


def calibrate_pretrained(folder: PathLike, temperature_from: PathLike, calibration: dict[str, Any] | None = None,
                         open_set: tuple[str, float] | None = None) -> dict[str, Any]:
    """Write the temperature fitted on the joint benchmark's held-out probabilities into a pretrained bundle
    (whose classes must be the benchmark's); ``calibration``: :func:`heldout_temperature` of it, if already fitted.
    ``open_set``: ``(method, target false rejection)`` of an open-set rule fitted on the same probabilities
    (:func:`heldout_open_set`) and stored as ``meta.open_set``; its record is returned under ``open_set``."""
    from signlang.models.bundle import load_bundle, set_open_set, set_temperature

    calibration = dict(calibration or heldout_temperature(temperature_from))
    classes = list(load_bundle(folder).classes)
    if calibration.pop("classes") != classes:
        raise ValueError(f"{temperature_from}: its classes differ from those of {folder}; rerun the joint benchmark")
    set_temperature(folder, calibration["temperature"], calibration)
    if open_set is not None:
        rule = heldout_open_set(temperature_from, calibration["temperature"], *open_set)
        set_open_set(folder, rule.to_json(), {"method": rule.method, **rule.record})
        calibration["open_set"] = {"method": rule.method, "threshold": rule.threshold, **rule.record}
    return calibration


def export_pretrained(folder: Path) -> Path:
    """The ONNX export of the bundle in ``folder``, with its one graph ``model.onnx`` (so that serving the shipped
    model never exports), written into ``folder/onnx`` (parity-checked by :func:`signlang.inference.export.export_bundle`)
    unless the one there was made from this very bundle; an export without ``model.onnx`` gets it added."""
    import json

    from signlang._io import atomic_dir
    from signlang.inference.export import add_onegraph, export_bundle
    from signlang.inference.pretrained import ONNX_SUBDIR

    target = folder / ONNX_SUBDIR
    bundle_sha = sha256_file(folder / "manifest.json")
    manifest = target / "manifest.json"
    fresh = manifest.is_file() and json.loads(manifest.read_text(encoding="utf-8")).get("source", {}).get("bundle_manifest_sha256") == bundle_sha
    if not fresh:
        with atomic_dir(target) as staging:
            export_bundle(folder, staging, onegraph=True)
    elif "onegraph" not in json.loads(manifest.read_text(encoding="utf-8")):  # written before the one graph: add it
        add_onegraph(folder, target)
    data = json.loads(manifest.read_text(encoding="utf-8"))
    if data["source"].get("bundle") != "..":  # shipped: the bundle is the folder above, not a path on the build machine
        data["source"]["bundle"] = ".."
        write_json(manifest, data)
    return target


def pin_pretrained(out: Path, name: str, description: str) -> None:
    """Export ``out/name`` to ONNX (when its export is missing or stale) and record the sha256 of both
    manifests and the one-line ``description`` in ``out/index.json``."""
    from signlang.inference.pretrained import INDEX_FILE, pretrained_index

    folder = out / name
    onnx = export_pretrained(folder)
    index = pretrained_index(out)
    index[name] = {"manifest_sha256": sha256_file(folder / "manifest.json"),
                   "onnx_manifest_sha256": sha256_file(onnx / "manifest.json"), "description": description}
    write_json(out / INDEX_FILE, index)

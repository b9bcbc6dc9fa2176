"""The model bundle: one folder that holds a trained predictor, with no pickle anywhere.

Layout::

    manifest.json          format "signlang-bundle" v1: classes, preprocessing, models, meta-learner
                           inputs, package versions and the sha256 of every other file
    <name>.*               one or more files per model, written by its model kind (models.registry.MODEL_KINDS:
                           a network's safetensors, XGBoost's JSON model, ...); the manifest entry says the kind
    meta.json              the stacking meta-learner (absent for a single-model bundle)
    segmenter.safetensors  optional: the temporal segmenter (models.segmenter; its settings in the
                           manifest's ``segmenter`` entry)
    report.json            optional evaluation report

:func:`save_bundle` writes every file atomically into a temporary sibling folder and renames it
into place. :func:`load_bundle` checks the format, refuses pickle-like files, verifies every
file's sha256 *before* parsing it, and rebuilds the predictor from the verified bytes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from signlang._io import TMP_PREFIX, atomic_dir, atomic_write, sha256_file, write_json
from signlang.models.ensemble import StackingEnsemble, align_proba
from signlang.models.openset import OpenSetRule
from signlang.models.registry import MODEL_KINDS, ModelKind, kind_for

FORMAT_NAME = "signlang-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REPORT = "report.json"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".joblib", ".ckpt")
_RESERVED = {"manifest", "report", "meta", "segmenter"}
SEGMENTER_FILE = "segmenter.safetensors"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class BundleError(ValueError):
    """A bundle folder that cannot be trusted or read (the message names the file and the reason)."""


# --- model kinds: how each estimator class is written and rebuilt (models.registry.MODEL_KINDS) -------
def _kind_of(est: Any, name: str) -> ModelKind:
    return kind_for(est, f"save_bundle: model {name!r}")


def _classes_list(classes: np.ndarray) -> list[Any]:
    return [c.item() if isinstance(c, np.generic) else c for c in np.asarray(classes).tolist()]


# --- the bundle -------------------------------------------------------------------------------
@dataclass
class Bundle:
    """A loaded bundle: ``model`` (a StackingEnsemble or one estimator) ready for ``predict_proba``."""

    path: Path
    classes: tuple[str, ...]
    preprocessing: dict[str, Any]
    model: Any
    manifest: dict[str, Any]
    report: dict[str, Any] | None = None
    models: dict[str, Any] = field(default_factory=dict)
    segmenter: Any = None  # a fitted models.segmenter.StreamSegmenter, or None

    @property
    def ensemble(self) -> StackingEnsemble | None:
        """The stacking ensemble, or None for a single-model bundle."""
        return self.model if isinstance(self.model, StackingEnsemble) else None

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities ``(N, len(classes))`` over all class names (classes the model never saw get 0)."""
        proba = self.model.predict_proba(X)
        return align_proba(proba, self.model.classes_, np.arange(len(self.classes)), f"bundle {self.path}")


def _versions() -> dict[str, str]:
    import safetensors
    import sklearn
    import torch
    import xgboost

    import signlang

    return {"signlang": signlang.__version__, "numpy": np.__version__, "torch": torch.__version__,
            "xgboost": xgboost.__version__, "scikit-learn": sklearn.__version__, "safetensors": safetensors.__version__}


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.lower() in _RESERVED:
        raise ValueError(f"save_bundle: model name {name!r} must match {_NAME_RE.pattern} and not be one of {sorted(_RESERVED)}")
    return name


def _check_label_ids(model_classes: np.ndarray, classes: tuple[str, ...]) -> None:
    ids = np.asarray(model_classes)
    if not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= len(classes):
        raise ValueError(f"save_bundle: the model's classes_ must be integer indices into the {len(classes)} class names, got {ids[:10].tolist()}")


def save_bundle(
    out_dir: str | os.PathLike[str],
    ensemble: Any,
    *,
    classes: Any,
    preprocessing: dict[str, Any],
    report: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    name: str | None = None,
    overwrite: bool = False,
    open_set: dict[str, Any] | None = None,
    segmenter: Any = None,
) -> Path:
    """Write a fitted StackingEnsemble (or one fitted estimator, named ``name``) as a bundle folder.

    ``classes`` are the class names that the model's integer ``classes_`` index; ``preprocessing``
    (normalisation and feature settings) and ``extra`` are stored in the manifest as given.
    An existing ``out_dir`` is replaced only with ``overwrite=True``. ``open_set``: an
    :class:`~signlang.models.openset.OpenSetRule` as JSON, stored as ``meta.open_set`` (a stacking
    ensemble only). ``segmenter``: a fitted :class:`~signlang.models.segmenter.StreamSegmenter`
    stored beside the classifier. Returns ``out_dir``.
    """
    out = Path(out_dir)
    class_names = tuple(str(c) for c in classes)
    if not class_names:
        raise ValueError("save_bundle: classes is empty")
    if out.exists() and not overwrite:
        raise FileExistsError(f"save_bundle: {out} already exists (pass overwrite=True to replace it)")
    if not isinstance(preprocessing, dict):
        raise ValueError(f"save_bundle: preprocessing must be a dict, got {type(preprocessing).__name__}")
    if not hasattr(ensemble, "classes_"):
        raise ValueError(f"save_bundle: the {type(ensemble).__name__} is not fitted")
    _check_label_ids(ensemble.classes_, class_names)

    payload: dict[str, bytes] = {}
    entries: list[dict[str, Any]] = []
    meta_entry: dict[str, Any] | None = None
    if isinstance(ensemble, StackingEnsemble):
        predictor = "stacking"
        members = list(ensemble.estimators_)
        meta_kind = _kind_of(ensemble.meta_, "meta")
        meta_entry, meta_files = meta_kind.save(ensemble.meta_, "meta")
        meta_entry.update(inputs=ensemble.meta_feature_names_, passthrough_pooled=bool(ensemble.passthrough_pooled),
                          feature_blocks=None if ensemble.feature_blocks is None else list(ensemble.feature_blocks),
                          n_folds=int(ensemble.n_folds), temperature=float(getattr(ensemble, "temperature_", 1.0)))
        rule = open_set if open_set is not None else getattr(ensemble, "open_set_", None)
        if rule is not None:
            meta_entry["open_set"] = OpenSetRule.from_json(rule, source="save_bundle: open_set").to_json()  # type: ignore[union-attr]
        payload.update(meta_files)
    else:
        if open_set is not None:
            raise ValueError("save_bundle: an open-set rule needs a stacking ensemble (it reads the combined probabilities)")
        predictor = "single"
        default = getattr(ensemble, "arch", None) or type(ensemble).__name__.lower()
        members = [(name or default, ensemble)]
    for member_name, est in members:
        entry, files = _kind_of(est, member_name).save(est, _check_name(member_name))
        if set(files) & set(payload):
            raise ValueError(f"save_bundle: two models would write {sorted(set(files) & set(payload))}")
        entries.append(entry)
        payload.update(files)

    manifest: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "predictor": predictor,
        "classes": list(class_names),
        "label_ids": _classes_list(ensemble.classes_),
        "preprocessing": preprocessing,
        "models": entries,
        "meta": meta_entry,
        "versions": _versions(),
        "extra": extra or {},
        "files": {},
    }
    if segmenter is not None:
        seg_entry, seg_bytes = _segmenter_payload(segmenter)
        manifest["segmenter"] = seg_entry
        payload[SEGMENTER_FILE] = seg_bytes

    with atomic_dir(out) as tmp:
        for fname, raw in payload.items():
            with atomic_write(tmp / fname, "wb") as fh:
                fh.write(raw)
        if report is not None:
            write_json(tmp / REPORT, report)
        manifest["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if not p.name.startswith(TMP_PREFIX)}
        write_json(tmp / MANIFEST, manifest)
    return out


def _segmenter_payload(segmenter: Any) -> tuple[dict[str, Any], bytes]:
    import safetensors.torch

    entry, tensors = segmenter.to_entry()
    return {**entry, "file": SEGMENTER_FILE}, safetensors.torch.save(tensors, metadata={"signlang": json.dumps({"arch": "segmenter"})})


def attach_segmenter(folder: str | os.PathLike[str], segmenter: Any) -> None:
    """Store a fitted segmenter in an existing bundle (replacing any), with its sha256 in the manifest."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    entry, raw = _segmenter_payload(segmenter)
    with atomic_write(folder / SEGMENTER_FILE, "wb") as fh:
        fh.write(raw)
    manifest["segmenter"] = entry
    manifest["files"] = {**manifest["files"], SEGMENTER_FILE: hashlib.sha256(raw).hexdigest()}
    write_json(folder / MANIFEST, manifest)


def _load_segmenter(entry: Any, files: dict[str, bytes], folder: Path) -> Any:
    import safetensors.torch

    from signlang.models.segmenter import StreamSegmenter

    if not isinstance(entry, dict) or entry.get("file") not in files:
        raise BundleError(f"{folder / MANIFEST}: 'segmenter' needs a 'file' listed in 'files', got {entry!r}")
    try:
        return StreamSegmenter.from_entry(entry, safetensors.torch.load(files[entry["file"]]))
    except Exception as exc:  # a bad entry or weights file
        raise BundleError(f"{folder / entry['file']}: cannot load the segmenter: {exc}") from None


def load_segmenter(folder: str | os.PathLike[str]) -> Any:
    """The segmenter of a bundle (its file sha256-verified), or None when it has none."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    entry = manifest.get("segmenter")
    if not entry:
        return None
    name = entry.get("file") if isinstance(entry, dict) else None
    if name not in manifest["files"]:
        raise BundleError(f"{folder / MANIFEST}: 'segmenter' needs a 'file' listed in 'files', got {entry!r}")
    raw = (folder / name).read_bytes() if (folder / name).is_file() else b""
    if hashlib.sha256(raw).hexdigest() != manifest["files"][name]:
        raise BundleError(f"{folder / name}: missing, or its sha256 does not match the manifest")
    return _load_segmenter(entry, {name: raw}, folder)


def _read_manifest(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise FileNotFoundError(f"bundle folder not found: {folder}")
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"{path}: missing; {folder} is not a signlang bundle")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: expected a JSON object")
    if manifest.get("format") != FORMAT_NAME:
        raise BundleError(f"{path}: unknown format {manifest.get('format')!r} (expected {FORMAT_NAME!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: unsupported format_version {manifest.get('format_version')!r} (this signlang reads {FORMAT_VERSION})")
    for key in ("classes", "preprocessing", "models", "files", "predictor"):
        if key not in manifest:
            raise BundleError(f"{path}: missing field {key!r}")
    if not isinstance(manifest["files"], dict):
        raise BundleError(f"{path}: field 'files' must map file names to sha256")
    return manifest


def _verified_files(folder: Path, manifest: dict[str, Any]) -> dict[str, bytes]:
    """Read every listed file and check its sha256; refuse pickle-like and unsafe names."""
    pickles = sorted({p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES}
                     | {n for n in manifest["files"] if Path(n).suffix.lower() in PICKLE_SUFFIXES})
    if pickles:
        raise BundleError(f"{folder}: refusing pickle-like file(s) {pickles}; a bundle holds only JSON and safetensors")
    contents: dict[str, bytes] = {}
    for fname, digest in manifest["files"].items():
        if not isinstance(fname, str) or Path(fname).name != fname or fname in ("", ".", "..", MANIFEST):
            raise BundleError(f"{folder / MANIFEST}: invalid file name {fname!r} in 'files'")
        path = folder / fname
        if not path.is_file():
            raise BundleError(f"{path}: listed in the manifest but missing")
        raw = path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != digest:
            raise BundleError(f"{path}: sha256 does not match the manifest; the file was altered or corrupted")
        contents[fname] = raw
    return contents


def _load_member(entry: dict[str, Any], files: dict[str, bytes], folder: Path) -> Any:
    if not isinstance(entry, dict) or "kind" not in entry or "file" not in entry or "name" not in entry:
        raise BundleError(f"{folder / MANIFEST}: a model entry needs name, kind and file, got {entry!r}")
    try:
        kind = MODEL_KINDS.get(entry["kind"])
    except ValueError as exc:
        raise BundleError(f"{folder / MANIFEST}: model {entry['name']!r}: {exc}") from None
    if entry["file"] not in files:
        raise BundleError(f"{folder / MANIFEST}: model {entry['name']!r} uses {entry['file']!r}, which has no sha256 in 'files'")
    try:
        return kind.load(entry, files, str(folder))
    except ValueError as exc:  # a kind names the file and the reason
        raise BundleError(str(exc)) from None


def set_temperature(folder: str | os.PathLike[str], temperature: float, record: dict[str, Any]) -> None:
    """Write a stacking bundle's calibration temperature (``meta.temperature``) and what it was fitted on
    (``extra.calibration``) into its manifest, atomically; the weights and their hashes are untouched."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    if manifest["predictor"] != "stacking" or not isinstance(manifest.get("meta"), dict):
        raise ValueError(f"{folder}: a single-model bundle has no combined output to recalibrate; train the ensemble")
    if isinstance(temperature, bool) or not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    manifest["meta"] = {**manifest["meta"], "temperature": float(temperature)}
    manifest["extra"] = {**(manifest.get("extra") or {}), "calibration": record}
    write_json(folder / MANIFEST, manifest)


def set_open_set(folder: str | os.PathLike[str], rule: dict[str, Any] | None, record: dict[str, Any]) -> None:
    """Write a stacking bundle's open-set rule (``meta.open_set``, None removes it) and what it was fitted on
    (``extra.open_set``) into its manifest, atomically; the weights and their hashes are untouched."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    if manifest["predictor"] != "stacking" or not isinstance(manifest.get("meta"), dict):
        raise ValueError(f"{folder}: a single-model bundle has no combined output for an open-set rule; train the ensemble")
    meta = {k: v for k, v in manifest["meta"].items() if k != "open_set"}
    if rule is not None:
        meta["open_set"] = OpenSetRule.from_json(rule, source=f"{folder}: open_set").to_json()  # type: ignore[union-attr]
    manifest["meta"] = meta
    manifest["extra"] = {**(manifest.get("extra") or {}), "open_set": record}
    write_json(folder / MANIFEST, manifest)


def _temperature(meta_entry: dict[str, Any], folder: Path) -> float:
    """The calibration temperature of a bundle's combiner (1.0 when it records none)."""
    value = meta_entry.get("temperature", 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise BundleError(f"{folder / MANIFEST}: meta.temperature must be a positive number, got {value!r}")
    return float(value)


def _open_set(meta_entry: dict[str, Any], folder: Path) -> dict[str, Any] | None:
    """The bundle's open-set rule as stored (``meta.open_set``; None when it records none), checked."""
    from signlang.models.openset import OpenSetRule

    try:
        rule = OpenSetRule.from_json(meta_entry.get("open_set"), source=f"{folder / MANIFEST}: meta.open_set")
    except ValueError as exc:
        raise BundleError(str(exc)) from None
    return None if rule is None else rule.to_json()


def load_bundle(folder: str | os.PathLike[str]) -> Bundle:
    """Load and verify a bundle written by :func:`save_bundle`; raises :class:`BundleError` on any doubt."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    files = _verified_files(folder, manifest)
    members = [(e["name"], _load_member(e, files, folder)) for e in manifest["models"]]
    if not members:
        raise BundleError(f"{folder / MANIFEST}: no models listed")
    label_ids = np.asarray(manifest.get("label_ids", list(range(len(manifest["classes"])))))
    if manifest["predictor"] == "stacking":
        meta_entry = manifest.get("meta")
        if not isinstance(meta_entry, dict):
            raise BundleError(f"{folder / MANIFEST}: a stacking bundle needs a 'meta' entry")
        meta = _load_member(meta_entry, files, folder)
        blocks = meta_entry.get("feature_blocks")
        model: Any = StackingEnsemble.from_fitted(
            members, meta, label_ids, passthrough_pooled=bool(meta_entry.get("passthrough_pooled", False)),
            feature_blocks=None if blocks is None else tuple(blocks), meta_feature_names=meta_entry.get("inputs"),
            n_folds=int(meta_entry.get("n_folds", 5)), temperature=_temperature(meta_entry, folder),
            open_set=_open_set(meta_entry, folder),
        )
    elif manifest["predictor"] == "single" and len(members) == 1:
        model = members[0][1]
    else:
        raise BundleError(f"{folder / MANIFEST}: unknown predictor {manifest['predictor']!r} with {len(members)} model(s)")
    report = None
    if REPORT in files:
        try:
            report = json.loads(files[REPORT].decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{folder / REPORT}: not valid JSON ({exc})") from None
    segmenter = _load_segmenter(manifest["segmenter"], files, folder) if manifest.get("segmenter") else None
    return Bundle(path=folder, classes=tuple(manifest["classes"]), preprocessing=manifest["preprocessing"],
                  model=model, manifest=manifest, report=report, models=dict(members), segmenter=segmenter)

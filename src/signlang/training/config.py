"""Training configuration: YAML validated into nested dataclasses with strict keys and types.

A config is a :class:`TrainConfig` made of one dataclass per section (``data``, ``augment``,
``optim``, ``ensemble``, ``tracking``), ``seed`` and ``device``, plus one section per registered
model (``transformer``, ``bilstm``, ``xgboost``, ...) whose keys are that model's constructor
keyword arguments (:mod:`signlang.models.registry`; old keys are read as aliases, with a warning). Loading is strict so that a typo never silently falls back to a default: an unknown
key is a ``ValueError`` naming the full dotted key and the closest valid one (``optim.lrr`` ->
"did you mean 'optim.lr'?"), and a value of the wrong type names the key and the expected type.

The shipped configs live in ``signlang/configs/``: ``train.yaml`` (GPU-size, the reference
numbers) and ``cpu.yaml`` (small and fast for 2 CPU cores). :func:`default_config` picks one by
the hardware.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from signlang._io import YAML_EXP_FLOAT, load_yaml
from signlang.features.augment import build_transform
from signlang.models.calibration import CALIBRATION_METHODS
from signlang.models.combiners import COMBINERS
from signlang.models.openset import OPEN_SET_SCORES
from signlang.models.registry import MODELS, ModelSpec

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
"""Folder of the shipped YAML configs (``src/signlang/configs``; the repo's ``configs/`` links to it)."""

Device = Literal["auto", "cpu", "cuda"]


@dataclass
class DataConfig:
    """Normalisation of the landmarks and which feature blocks to compute."""

    target_frames: int = 32
    smooth_window: int = 5
    smooth_order: int = 2
    max_gap: int = 8
    feature_blocks: list[str] | None = None  # None: the default blocks (features.engineering.FEATURE_BLOCKS); optional blocks (OPTIONAL_BLOCKS) must be named
    canonical_hand: bool = False  # mirror clips whose dominant hand is the left (features.normalize)
    level_shoulders: bool = False  # turn each clip so its shoulder line is horizontal (features.normalize)


@dataclass
class OptimConfig:
    """Optimisation of the neural networks (AdamW + warm-up/cosine, early stopping on macro-F1)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_frac: float = 0.05
    label_smoothing: float = 0.1
    grad_clip: float | None = 1.0
    accumulation_steps: int = 1
    amp: bool = False
    patience: int = 5
    num_workers: int = 0
    augment_copies: int = 0
    """With ``augment``: 0 augments and featurises every batch on the fly (fresh variants each epoch,
    featurising costs about half a CPU epoch); K > 0 featurises K augmented copies of the training
    set once, and each epoch every clip is drawn from its original or one of its copies (cheap)."""
    frame_mask: float = 0.0
    """Fraction of each training clip's frames hidden from the network per batch (set to missing in
    the feature mask, on the tensors: free); at least one detected frame is always kept."""


@dataclass
class OpenSetConfig:
    """Open-set recognition (``models.openset``): the knownness score and the share of known clips
    its threshold may decline, fitted on the validation part by ``signlang train`` (refit by ``signlang calibrate``)."""

    method: str = "max_prob"  # models.openset.OPEN_SET_SCORES
    target_false_rejection: float = 0.05


@dataclass
class EnsembleConfig:
    """Out-of-fold stacking: how many folds, whether the meta-learner also sees pooled features, and
    the combiner of the base models' probabilities (``models.combiners``: the XGBoost meta-learner,
    a logistic regression on the out-of-fold probabilities, or their plain mean, which needs no folds)."""

    n_folds: int = 5
    passthrough_pooled: bool = False
    models: list[str] = field(default_factory=lambda: ["transformer", "bilstm", "xgboost"])
    combiner: str = "mean"  # models.combiners.COMBINERS; chosen on validation (docs/benchmarks.md, the combiner)
    calibration: str = "temperature"  # models.calibration.CALIBRATION_METHODS: fitted on the validation part when there is one
    open_set: OpenSetConfig | None = None  # None: the bundle never answers "unknown"


@dataclass
class TrackingConfig:
    """Experiment tracking (MLflow); off by default so the core needs no mlflow."""

    enabled: bool = False
    tracking_uri: str | None = None
    experiment: str = "signlang"


@dataclass
class TrainConfig:
    """The whole training configuration."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: list[dict[str, Any]] = field(default_factory=list)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    seed: int = 0
    device: Device = "auto"
    sections: dict[str, Any] = field(default_factory=lambda: default_sections())
    """One section per registered model (``cfg.transformer``, ``cfg.xgboost``, ...): the model's
    constructor keyword arguments (see :mod:`signlang.models.registry`); YAML writes each at the
    top level under the model's name."""

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("sections")
        if sections is not None and name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or model section {name!r}")

    def section(self, model: str) -> Any:
        """The config section of ``model`` (a registered model name or alias)."""
        name = MODELS.canonical(model)
        return self.sections[name] if name in self.sections else MODELS.get(name).section()


def default_sections() -> dict[str, Any]:
    """The default section of every registered model, by name (sorted: the order never depends on
    which module was imported first)."""
    return {name: spec.section() for name, spec in sorted(MODELS.items())}


# ----------------------------------------------------------------------------------------------
# validation


def _type_name(tp: Any) -> str:
    """Readable name of a type hint: ``int``, ``float | None``, ``list[str]``, ``'auto' | 'cpu'``."""
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "None"
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", str(tp))


def _all_keys(cls: type) -> list[str]:
    """Every valid dotted key of a dataclass tree (for 'did you mean' suggestions)."""
    out: list[str] = []
    hints = typing.get_type_hints(cls)
    if cls is TrainConfig:
        for name, spec in MODELS.items():
            out.append(name)
            out.extend(f"{name}.{f.name}" for f in dataclasses.fields(spec.section))
    for f in dataclasses.fields(cls):
        if cls is TrainConfig and f.name == "sections":
            continue
        out.append(f.name)
        tp = hints[f.name]
        inner = [a for a in get_args(tp) if dataclasses.is_dataclass(a)] if get_origin(tp) in (Union, types.UnionType) else []
        tp = inner[0] if len(inner) == 1 else tp
        if dataclasses.is_dataclass(tp):
            out.extend(f"{f.name}.{k}" for k in _all_keys(tp))
    return out


def _unknown_key_error(key: str, root: type) -> ValueError:
    candidates = _all_keys(root)
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ValueError(f"unknown config key {key!r}{hint}")


def _coerce(value: Any, tp: Any, key: str, root: type) -> Any:
    """Check ``value`` against the type hint ``tp`` and return it (ints widen to float)."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"config key {key!r}: expected a mapping (section {tp.__name__}), got {type(value).__name__}")
        return _build(tp, value, key, root)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ValueError(f"config key {key!r}: expected {_type_name(tp)}, got None")
        options = [a for a in args if a is not type(None)]
        if len(options) == 1 and (get_origin(options[0]) in (list, dict) or dataclasses.is_dataclass(options[0])):
            return _coerce(value, options[0], key, root)  # keep the inner error (e.g. 'key[1]')
        for a in options:
            try:
                return _coerce(value, a, key, root)
            except ValueError:
                continue
        raise ValueError(f"config key {key!r}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ValueError(f"config key {key!r}: expected one of {_type_name(tp)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key {key!r}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        (item_tp,) = get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{key}[{i}]", root) for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key {key!r}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        item_tps = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(item_tps) != len(value):
            raise ValueError(f"config key {key!r}: expected {_type_name(tp)}, got {value!r}")
        return tuple(_coerce(v, t, f"{key}[{i}]", root) for i, (v, t) in enumerate(zip(value, item_tps)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"config key {key!r}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        k_tp, v_tp = get_args(tp) or (Any, Any)
        return {_coerce(k, k_tp, key, root): _coerce(v, v_tp, f"{key}.{k}", root) for k, v in value.items()}
    if tp is Any:
        return copy.deepcopy(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config key {key!r}: expected bool, got {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config key {key!r}: expected int, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and YAML_EXP_FLOAT.match(value):
            return float(value)  # `1e-4` from a plain yaml.safe_load (see signlang._io.load_yaml)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config key {key!r}: expected float, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"config key {key!r}: expected str, got {type(value).__name__} {value!r}")
        return value
    return copy.deepcopy(value)  # a model's own argument type: its constructor checks it


def _section_dict(spec: ModelSpec, d: Any, key: str) -> dict[str, Any]:
    """A model section with its old keys (``key_aliases``) renamed to the constructor's names."""
    if not isinstance(d, dict):
        raise ValueError(f"config key {key!r}: expected a mapping (section of model {spec.name!r}), got {type(d).__name__}")
    out: dict[str, Any] = {}
    for k, v in d.items():
        new = spec.key_aliases.get(k)
        if new is not None:
            if new in d:
                raise ValueError(f"config key '{key}.{k}' is the old name of '{key}.{new}'; give only '{key}.{new}'")
            warnings.warn(f"config key '{key}.{k}' is deprecated; write '{key}.{new}'", DeprecationWarning, stacklevel=4)
            k = new
        out[k] = v
    return out


def _build_root(d: dict[str, Any]) -> TrainConfig:
    """The top level: fixed sections, plus one section per registered model (by name or alias)."""
    hints = typing.get_type_hints(TrainConfig)
    fixed = {f.name for f in dataclasses.fields(TrainConfig)} - {"sections"}
    kwargs: dict[str, Any] = {}
    sections = default_sections()
    for k, v in d.items():
        if k in fixed:
            kwargs[k] = _coerce(v, hints[k], str(k), TrainConfig)
        elif isinstance(k, str) and k in MODELS:
            spec = MODELS.get(k)
            sections[spec.name] = _build(spec.section, _section_dict(spec, v, str(k)), spec.name, TrainConfig)
        else:
            raise _unknown_key_error(str(k), TrainConfig)
    return TrainConfig(**kwargs, sections=sections)


def _check_section(cfg: TrainConfig, name: str, section: Any) -> None:
    """A model section is valid when its model builds from it (a network on the meta device)."""
    import torch

    spec = MODELS.get(name)
    try:
        if spec.is_network:
            with torch.device("meta"):
                spec.build(section, n_features=1, n_classes=2)
        else:
            check = getattr(spec.build(section, seed=cfg.seed), "check_params", None)
            if check is not None:
                check()
    except (ValueError, TypeError) as exc:
        raise ValueError(f"config section {name!r}: {exc}") from exc
    max_len = getattr(section, "max_len", None)
    if isinstance(max_len, int) and max_len < cfg.data.target_frames:
        raise ValueError(f"config key '{name}.max_len' must be >= data.target_frames, got {max_len!r}")


def _build(cls: type, d: dict[str, Any], prefix: str, root: type) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for k, v in d.items():
        full = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            raise _unknown_key_error(full, root)
        kwargs[k] = _coerce(v, hints[k], full, root)
    return cls(**kwargs)


def _check_values(cfg: TrainConfig) -> None:
    """Range checks that types alone cannot express."""
    checks: list[tuple[str, bool, str]] = [
        ("data.target_frames", cfg.data.target_frames >= 2, ">= 2"),
        ("data.smooth_window", cfg.data.smooth_window >= 1, ">= 1 (1 = no smoothing)"),
        ("data.max_gap", cfg.data.max_gap >= 0, ">= 0"),
        ("optim.epochs", cfg.optim.epochs > 0, "> 0"),
        ("optim.batch_size", cfg.optim.batch_size > 0, "> 0"),
        ("optim.lr", cfg.optim.lr > 0, "> 0"),
        ("optim.weight_decay", cfg.optim.weight_decay >= 0, ">= 0"),
        ("optim.warmup_frac", 0.0 <= cfg.optim.warmup_frac < 1.0, "in [0, 1)"),
        ("optim.label_smoothing", 0.0 <= cfg.optim.label_smoothing < 1.0, "in [0, 1)"),
        ("optim.grad_clip", cfg.optim.grad_clip is None or cfg.optim.grad_clip > 0, "> 0 or null"),
        ("optim.accumulation_steps", cfg.optim.accumulation_steps >= 1, ">= 1"),
        ("optim.patience", cfg.optim.patience >= 1, ">= 1"),
        ("optim.num_workers", cfg.optim.num_workers >= 0, ">= 0"),
        ("optim.augment_copies", cfg.optim.augment_copies >= 0, ">= 0"),
        ("optim.frame_mask", 0.0 <= cfg.optim.frame_mask < 1.0, "in [0, 1)"),
        ("ensemble.n_folds", cfg.ensemble.n_folds >= 2, ">= 2"),
        ("ensemble.models", len(cfg.ensemble.models) >= 1, "a non-empty list"),
        ("ensemble.combiner", cfg.ensemble.combiner in COMBINERS, f"one of {', '.join(COMBINERS)}"),
        ("ensemble.calibration", cfg.ensemble.calibration in CALIBRATION_METHODS, f"one of {', '.join(CALIBRATION_METHODS)}"),
        ("ensemble.passthrough_pooled", not (cfg.ensemble.passthrough_pooled and cfg.ensemble.combiner != "xgboost"),
         "false unless ensemble.combiner is 'xgboost'"),
    ]
    open_set = cfg.ensemble.open_set
    if open_set is not None:
        checks += [
            ("ensemble.open_set.method", open_set.method in OPEN_SET_SCORES and open_set.method != "unknown_class",
             f"one of {', '.join(m for m in OPEN_SET_SCORES.names() if m != 'unknown_class')}"),
            ("ensemble.open_set.target_false_rejection", 0.0 < open_set.target_false_rejection < 0.5, "in (0, 0.5)"),
        ]
    for key, ok, what in checks:
        if not ok:
            raise ValueError(f"config key {key!r} must be {what}, got {_get(cfg, key)!r}")
    for name, section in cfg.sections.items():
        _check_section(cfg, name, section)
    for i, model in enumerate(cfg.ensemble.models):
        try:
            MODELS.canonical(model)
        except ValueError as exc:
            raise ValueError(f"config key 'ensemble.models[{i}]': {exc}") from None
    for i, spec in enumerate(cfg.augment):
        if "name" not in spec:
            raise ValueError(f"config key 'augment[{i}]': each transform needs a 'name', got {spec!r}")
        try:
            build_transform(dict(spec))
        except ValueError as exc:
            raise ValueError(f"config key 'augment[{i}]': {exc}") from exc


def _get(cfg: Any, dotted: str) -> Any:
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


# ----------------------------------------------------------------------------------------------
# public API


def config_from_dict(d: dict[str, Any] | None) -> TrainConfig:
    """Validate a plain mapping (e.g. parsed YAML) into a :class:`TrainConfig`.

    Missing keys take their defaults; unknown keys and wrong types raise ``ValueError``.
    """
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ValueError(f"config: expected a mapping at the top level, got {type(d).__name__}")
    cfg = _build_root(d)
    _check_values(cfg)
    return cfg


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain nested dict of ``cfg`` (round-trips through :func:`config_from_dict` and YAML); the
    model sections sit at the top level, after ``augment``."""
    d = dataclasses.asdict(cfg)
    sections = d.pop("sections")
    out: dict[str, Any] = {}
    for k, v in d.items():
        out[k] = v
        if k == "augment":
            out.update(sections)
    return out


def flatten_config(cfg: TrainConfig) -> dict[str, Any]:
    """``{"optim.lr": 0.001, ...}``: one entry per leaf (lists stay whole), e.g. for tracking params."""
    out: dict[str, Any] = {}

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                walk(v, key)
            else:
                out[key] = v

    walk(config_to_dict(cfg), "")
    return out


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """Parse a YAML file; ``ValueError`` naming the file when it cannot be read or parsed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{p}: cannot read {what} ({exc})") from exc
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{p}: not valid YAML ({exc})") from exc


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a YAML config; errors name the file."""
    p = Path(path)
    data = read_yaml(p)
    try:
        return config_from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from exc


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write ``cfg`` as YAML, atomically."""
    from signlang._io import atomic_write

    with atomic_write(path, "w") as fh:
        yaml.safe_dump(config_to_dict(cfg), fh, sort_keys=False)


def merge_overrides(cfg: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """A new config with dotted-key overrides applied: ``{"optim.lr": 1e-3, "seed": 1}``.

    Keys and values are validated exactly like a YAML file; ``cfg`` is not modified.
    """
    d = config_to_dict(cfg)
    for key, value in overrides.items():
        parts = str(key).split(".")
        if parts[0] in MODELS:  # a model section: its name or key may be an old alias
            spec = MODELS.get(parts[0])
            parts[0] = spec.name
            if len(parts) == 2 and parts[1] in spec.key_aliases:
                warnings.warn(f"config key '{key}' is deprecated; write '{spec.name}.{spec.key_aliases[parts[1]]}'", DeprecationWarning, stacklevel=2)
                parts[1] = spec.key_aliases[parts[1]]
        node: Any = d
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                raise _unknown_key_error(str(key), TrainConfig)
            if i == len(parts) - 1:
                node[part] = value
            else:
                node = node[part]
    return config_from_dict(d)


def shipped_config_path(name: str) -> Path:
    """Path of a shipped config by name (``"train"`` or ``"cpu"``)."""
    p = CONFIG_DIR / f"{name}.yaml"
    if not p.is_file():
        avail = sorted(q.stem for q in CONFIG_DIR.glob("*.yaml"))
        raise ValueError(f"no shipped config {name!r} in {CONFIG_DIR}; available: {avail}")
    return p


def default_config(cuda: bool | None = None) -> TrainConfig:
    """``configs/train.yaml`` when CUDA is available (or ``cuda=True``), else ``configs/cpu.yaml``."""
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    return load_config(shipped_config_path("train" if cuda else "cpu"))


def normalize_config(cfg: TrainConfig) -> Any:
    """The :class:`signlang.features.normalize.NormalizeConfig` of ``cfg.data``."""
    from signlang.features.normalize import NormalizeConfig

    d = cfg.data
    return NormalizeConfig(target_frames=d.target_frames, smooth_window=d.smooth_window, smooth_order=d.smooth_order, max_gap=d.max_gap,
                           canonical_hand=d.canonical_hand, level_shoulders=d.level_shoulders)


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when available else ``"cpu"``; ``"cuda"``/``"cuda:N"`` without CUDA is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"config key 'device' is {device!r} but CUDA is not available")
    if device not in ("cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ValueError(f"config key 'device': expected 'auto' | 'cpu' | 'cuda', got {device!r}")
    return device

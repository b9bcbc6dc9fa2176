"""The search space of ``signlang tune``: dotted config keys -> Optuna distributions, validated like a config."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signlang.models.registry import MODELS
from signlang.training.config import CONFIG_DIR, TrainConfig, flatten_config, merge_overrides, read_yaml

PathLike = str | os.PathLike[str]

DEFAULT_SPACE = CONFIG_DIR / "space.yaml"
"""The shipped search space (the seed project's ranges)."""
SHIPPED_SPACES = {"seed": DEFAULT_SPACE, "cpu": CONFIG_DIR / "space_cpu.yaml"}
"""Search spaces by name: ``seed`` (GPU-size networks) and ``cpu`` (small networks, pairs with cpu.yaml)."""


def model_sections(model: str) -> tuple[str, ...]:
    """The config sections a model's trials search: its own section, ``optim`` for a network
    (it trains with it), and ``data``; ``ValueError`` for a model the registry does not know."""
    spec = MODELS.get(model)
    return (spec.name, "optim", "data") if spec.is_network else (spec.name, "data")

# ----------------------------------------------------------------------------------------------
# search space


@dataclass(frozen=True)
class ParamSpec:
    """One searched config key: ``categorical`` (``choices``) or ``float``/``int`` (``low..high``)."""

    key: str
    type: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    def suggest(self, trial: Any) -> Any:
        """Ask an Optuna trial for this key's value (the trial's parameter name is the dotted key)."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a point of this key's range (for enqueued trials)."""
        if self.type == "categorical":
            return any(type(value) is type(c) and value == c for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and not isinstance(value, int):
            return False
        return float(self.low) <= float(value) <= float(self.high)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        if self.type == "categorical":
            return {"type": self.type, "choices": list(self.choices)}
        d: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            d["step"] = self.step
        return d


@dataclass(frozen=True)
class SearchSpace:
    """The searched keys, in file order."""

    params: tuple[ParamSpec, ...]

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def for_model(self, model: str) -> "SearchSpace":
        """The keys that ``model``'s trials search (see :func:`model_sections`); ``ValueError`` if none.

        When the space names no key of the model's own section, the tunable space declared in
        its registration (``register_model(..., space=...)``) is searched as well.
        """
        sections = model_sections(model)
        spec = MODELS.get(model)
        kept = tuple(p for p in self.params if p.key.split(".")[0] in sections)
        if spec.space and not any(p.key.split(".")[0] == spec.name for p in kept):
            own = space_from_dict({f"{spec.name}.{k}": dict(v) for k, v in spec.space.items()}, f"model {spec.name!r} registration")
            kept = own.params + kept
        if not kept:
            raise ValueError(f"the search space has no key for model {model!r} (searched sections: {', '.join(sections)}; "
                             f"space keys: {', '.join(self.keys) or 'none'})")
        return SearchSpace(kept)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """``{dotted key: value}`` sampled by ``trial``."""
        return {p.key: p.suggest(trial) for p in self.params}

    def to_dict(self) -> dict[str, Any]:
        return {p.key: p.to_dict() for p in self.params}


_TYPES = ("categorical", "float", "int")
_ENTRY_KEYS = {"categorical": {"type", "choices"}, "float": {"type", "low", "high", "log", "step"},
               "int": {"type", "low", "high", "log", "step"}}


def _number(value: Any, key: str, what: str, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise ValueError(f"search-space key {key!r}: {what} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"search-space key {key!r}: {what} must be finite, got {value!r}")
    return int(value) if integer else float(value)


def _check_values_fit_config(key: str, values: Sequence[Any]) -> None:
    """Each value must be valid for ``key`` in a config (type and range), else a ValueError naming it."""
    base = TrainConfig()
    for v in values:
        try:
            merge_overrides(base, {key: v})
        except ValueError as exc:
            raise ValueError(f"search-space key {key!r}: value {v!r} is not valid for the config ({exc})") from None


def _parse_entry(key: str, entry: Any, leaves: set[str]) -> ParamSpec:
    if key not in leaves:
        import difflib

        close = difflib.get_close_matches(key, sorted(leaves), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"search-space key {key!r} is not a config key{hint}")
    if not isinstance(entry, dict):
        raise ValueError(f"search-space key {key!r}: expected a mapping like {{type: float, low: ..., high: ...}}, got {entry!r}")
    kind = entry.get("type")
    if kind not in _TYPES:
        raise ValueError(f"search-space key {key!r}: 'type' must be one of {', '.join(_TYPES)}, got {kind!r}")
    unknown = sorted(set(entry) - _ENTRY_KEYS[kind])
    if unknown:
        raise ValueError(f"search-space key {key!r}: unknown field(s) {unknown} for type {kind} (allowed: {sorted(_ENTRY_KEYS[kind])})")
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"search-space key {key!r}: 'choices' must be a non-empty list, got {choices!r}")
        if any(not (c is None or isinstance(c, (bool, int, float, str))) for c in choices):
            raise ValueError(f"search-space key {key!r}: choices must be numbers, strings, booleans or null, got {choices!r}")
        _check_values_fit_config(key, choices)
        return ParamSpec(key, kind, choices=tuple(choices))
    integer = kind == "int"
    for need in ("low", "high"):
        if need not in entry:
            raise ValueError(f"search-space key {key!r}: type {kind} needs '{need}'")
    low = _number(entry["low"], key, "'low'", integer)
    high = _number(entry["high"], key, "'high'", integer)
    if not low < high:
        raise ValueError(f"search-space key {key!r}: 'low' must be below 'high', got low={low!r} high={high!r}")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"search-space key {key!r}: 'log' must be true or false, got {log!r}")
    if log and low <= 0:
        raise ValueError(f"search-space key {key!r}: a log scale needs low > 0, got low={low!r}")
    step = entry.get("step")
    if step is not None:
        step = _number(step, key, "'step'", integer)
        if step <= 0:
            raise ValueError(f"search-space key {key!r}: 'step' must be > 0, got {step!r}")
        if log:
            raise ValueError(f"search-space key {key!r}: 'step' and 'log: true' cannot be combined")
    _check_values_fit_config(key, [low, high])
    return ParamSpec(key, kind, low=low, high=high, log=log, step=step)


def space_from_dict(d: Any, source: str = "search space") -> SearchSpace:
    """Validate a mapping ``{dotted key: entry}`` into a :class:`SearchSpace`; errors name ``source`` and the key."""
    if not isinstance(d, dict) or not d:
        raise ValueError(f"{source}: expected a non-empty mapping of config keys to search entries, got {type(d).__name__}")
    leaves = set(flatten_config(TrainConfig()))
    try:
        return SearchSpace(tuple(_parse_entry(str(k), v, leaves) for k, v in d.items()))
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def default_space_name(cuda: bool | None = None) -> str:
    """The shipped space that suits the hardware, as :func:`~signlang.training.config.default_config`
    picks the training config: ``seed`` (configs/space.yaml) with CUDA, ``cpu`` otherwise."""
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    return "seed" if cuda else "cpu"


def load_space(path: PathLike | None = None) -> SearchSpace:
    """Read and validate a search-space YAML, or a shipped one by name (``seed``, ``cpu``);
    default: the shipped space for this hardware (:func:`default_space_name`)."""
    if path is None:
        path = default_space_name()
    if not Path(path).is_file() and str(path) in SHIPPED_SPACES:
        path = SHIPPED_SPACES[str(path)]
    p = Path(path)
    return space_from_dict(read_yaml(p, "search space"), str(p))

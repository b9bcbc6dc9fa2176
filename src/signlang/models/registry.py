"""The model registry: every base model of the ensemble in one :class:`~signlang._registry.Registry`.

A model is one file and one YAML section. ``@register_model(name, ...)`` on its class declares all
the rest of the toolkit needs:

* the **config section** ``name:`` of a training YAML: the constructor's keyword arguments with
  their defaults (the one place for them), minus the arguments the pipeline supplies
  (``n_features``/``n_classes`` for a network); ``key_aliases`` keep old YAML keys working;
* its **tunable space** (``space``: ``{"n_layers": {"type": "categorical", "choices": [1, 2]}}``,
  keys relative to the section; used by ``signlang tune`` when the space file names none of them);
* its **Grad-CAM layer** (``cam``: a :class:`CamSpec`) and its **export adapter** (``export``: a
  function building a traceable module with the same logits, for ONNX).

A *network* is a ``torch.nn.Module`` with ``forward(x: (B, T, F) float, mask: (B, T) bool) ->
logits (B, C)`` that keeps its constructor's keyword arguments in ``self.config`` (a JSON-able
dict) so that a bundle can rebuild it; other models (XGBoost) are sklearn-style estimators built
with ``seed``, ``classes`` and ``feature_blocks`` supplied.

A **model kind** (:class:`ModelKind`, ``register_kind``) is how one *estimator class* lives past
training: its bundle save/load, its runner on precomputed features (what the predictor runs), its
ONNX exporter, its feature inputs (``sequence``: per-frame features and mask; ``pooled``: the
pooled table; ``probabilities``: a combiner's stacked input) and its fit signature. Every consumer
(``models.bundle``, ``inference.torch_backend``/``plan``/``export``, ``training.tune``) reads
:data:`MODEL_KINDS`; a kind is declared once, in the estimator's own file (``models.base``: every
network; ``models.trees``: XGBoost; ``models.combiners``: the linear combiner). Built-ins are found by
importing every module of ``signlang.models`` (no hand-kept list).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import nn

from signlang._registry import Registry

NETWORK_ARGS = ("n_features", "n_classes")
"""Constructor arguments of a network that come from the data, not from the config."""


@dataclass(frozen=True)
class CamSpec:
    """Where Grad-CAM reads a network, and how it weighs the activations.

    ``layer(module)`` is the hooked submodule; ``read`` says whether its first positional
    *input* or its *output* (first tuple element) is the ``(B, T', D)`` activation. When
    ``T' > T`` the leading ``T' - T`` tokens (a CLS token) are dropped. ``weighting``:
    ``"channel"`` is classic Grad-CAM (``alpha_d`` = gradient averaged over the real frames,
    map = ``relu(A @ alpha)``), ``"token"`` uses each frame's own gradient
    (map = ``relu(sum_d G[t, d] A[t, d])``), which is the one that works when the output reads a
    single token. ``attention(module, act, mask)`` returns pooling weights ``(B, T)`` to multiply
    the map by, or is ``None``.
    """

    layer: Callable[[nn.Module], nn.Module]
    read: str = "output"
    weighting: str = "channel"
    attention: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if self.read not in ("input", "output") or self.weighting not in ("channel", "token"):
            raise ValueError(f"CamSpec: read must be input/output and weighting channel/token, got {self.read!r}, {self.weighting!r}")


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model (see the module docstring)."""

    name: str
    cls: type
    section: type
    supplied: tuple[str, ...] = NETWORK_ARGS
    key_aliases: Mapping[str, str] = field(default_factory=dict)
    space: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    cam: CamSpec | None = None
    export: Callable[[nn.Module], nn.Module] | None = None
    task: str = "clip"  # "clip": a classifier of isolated clips (ensemble member); "frames": a frame tagger (the segmenter)

    @property
    def is_network(self) -> bool:
        return issubclass(self.cls, nn.Module)

    def kwargs(self, section: Any) -> dict[str, Any]:
        """Constructor keyword arguments from a config section object."""
        return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}

    def build(self, section: Any, **supplied: Any) -> Any:
        """An instance from a config section plus the supplied arguments the constructor takes."""
        params = inspect.signature(self.cls.__init__).parameters
        return self.cls(**self.kwargs(section), **{k: v for k, v in supplied.items() if k in params})


BUILTINS = ("signlang.models.*",)
"""Where built-in models and kinds register themselves: every module of ``signlang.models``."""

MODELS: Registry[ModelSpec] = Registry("model", builtins=BUILTINS)
"""Every registered model by name (networks and estimators)."""

# --- model kinds -----------------------------------------------------------------------------------
SEQUENCE, POOLED, PROBABILITIES = "sequence", "pooled", "probabilities"
KIND_INPUTS = (SEQUENCE, POOLED, PROBABILITIES)
"""What a kind's runner and ONNX graph read: ``sequence`` ``(x (N, T, F) float32, mask (N, T) bool)``,
``pooled`` ``(N, P)`` float32 (:func:`signlang.features.engineering.pool_features`), ``probabilities``
``(N, D)`` float32 (a combiner's input: base probabilities side by side, + pooled passthrough)."""

ONNX_OUTPUT = {SEQUENCE: "probs", POOLED: "probabilities", PROBABILITIES: "probabilities"}
"""The output name of a kind's ONNX graph, by its inputs; its input names are ``x``/``mask``
(sequence) or ``input`` (pooled, probabilities)."""


def _fit_plain(est: Any, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Any:
    return est.fit(X, y)


@dataclass(frozen=True)
class ModelKind:
    """How one estimator class (and its subclasses) is saved, loaded, run, exported and fitted.

    * ``name``: the bundle manifest's ``kind``; ``plan_name``: its name in an ensemble plan and an
      ONNX export (default ``name``; an alias of it in :data:`MODEL_KINDS`);
    * ``save(est, name) -> (manifest entry, {file name: bytes})`` (the entry holds ``name``,
      ``kind``, ``file``); ``load(entry, {file: bytes}, where) -> est`` (``ValueError`` naming
      ``where``/the file on bad bytes);
    * ``run(est, inputs) -> (N, len(est.classes_))`` float32 probabilities, ``inputs`` as
      :data:`KIND_INPUTS` says (the predictor's path; same numbers as ``est.predict_proba``);
    * ``to_onnx(est, n_features) -> bytes``: the graph of ``run`` (names: :data:`ONNX_OUTPUT`);
    * ``fit(est, X (N, T, 75, 3), y (N,), X_val, y_val) -> est``: how a search fits it with a
      validation part (default ``est.fit(X, y)``; training and stacking call ``est.fit(X, y)``);
      ``distributed``: whether its ``fit`` trains together on every process of a distributed run
      (a network under DDP); otherwise rank 0 alone fits it.

    A base model's estimator also has ``classes_`` and ``feature_blocks`` (which feature blocks
    its inputs use, None = all).
    """

    name: str
    estimator: type
    inputs: str
    save: Callable[[Any, str], tuple[dict[str, Any], dict[str, bytes]]]
    load: Callable[[dict[str, Any], dict[str, bytes], str], Any]
    run: Callable[[Any, Any], Any]
    to_onnx: Callable[[Any, int], bytes]
    fit: Callable[..., Any] = _fit_plain
    plan_name: str = ""
    distributed: bool = False

    def __post_init__(self) -> None:
        if self.inputs not in KIND_INPUTS:
            raise ValueError(f"model kind {self.name!r}: inputs must be one of {KIND_INPUTS}, got {self.inputs!r}")
        if not isinstance(self.estimator, type):
            raise TypeError(f"model kind {self.name!r}: estimator must be a class, got {self.estimator!r}")
        if not self.plan_name:
            object.__setattr__(self, "plan_name", self.name)

    @property
    def onnx_output(self) -> str:
        return ONNX_OUTPUT[self.inputs]


MODEL_KINDS: Registry[ModelKind] = Registry("model kind", builtins=BUILTINS)
"""Every model kind by bundle name (plan names are aliases)."""


def register_kind(kind: ModelKind) -> ModelKind:
    """Register ``kind`` (a taken name or estimator class is a ``ValueError``); returns it."""
    known = MODEL_KINDS._entries.get(kind.name)
    if known is not None and (known.estimator.__module__, known.estimator.__qualname__) == (kind.estimator.__module__, kind.estimator.__qualname__):
        MODEL_KINDS.unregister(kind.name)  # the same class again (a module reload)
    taken = [k.name for k in MODEL_KINDS._entries.values() if k.estimator is kind.estimator]
    if taken:
        raise ValueError(f"register_kind({kind.name!r}): {kind.estimator.__name__} already is model kind {taken[0]!r}")
    MODEL_KINDS.register(kind.name, kind, aliases=() if kind.plan_name == kind.name else (kind.plan_name,))
    return kind


def kind_for(est: Any, name: str = "model") -> ModelKind:
    """The most specific registered kind along ``est``'s class hierarchy; ``TypeError`` naming ``name`` otherwise."""
    by_class = {k.estimator: k for k in MODEL_KINDS.values()}
    for klass in type(est).__mro__:
        if klass in by_class:
            return by_class[klass]
    known = ", ".join(f"{k.name} ({k.estimator.__name__})" for k in MODEL_KINDS.values())
    raise TypeError(f"{name}: a {type(est).__name__} is no registered model kind; known: {known} (declare one with register_kind)")

C = TypeVar("C", bound=type)


def _section_type(name: str, cls: type, supplied: tuple[str, ...]) -> type:
    """A dataclass whose fields are ``cls.__init__``'s keyword arguments (minus ``supplied``)."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # annotations naming local types: validate those keys loosely
        hints = {}
    fields: list[tuple[str, Any, Any]] = []
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.name in supplied or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is inspect.Parameter.empty:
            raise TypeError(f"register_model({name!r}): constructor argument {p.name!r} needs a default (it is the config default)")
        default = p.default
        fdef = field(default_factory=lambda d=default: type(d)(d)) if isinstance(default, (list, dict)) else field(default=default)
        fields.append((p.name, hints.get(p.name, Any), fdef))
    title = "".join(part.capitalize() for part in name.replace("-", "_").split("_"))

    def __reduce__(self: Any) -> tuple[Any, ...]:  # pickled by model name: the class is generated
        return _rebuild_section, (name, {f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    return dataclasses.make_dataclass(f"{title}Section", fields, namespace={"__reduce__": __reduce__})


def _rebuild_section(name: str, values: dict[str, Any]) -> Any:
    return MODELS.get(name).section(**values)


def register_model(
    name: str,
    *,
    aliases: tuple[str, ...] = (),
    key_aliases: Mapping[str, str] | None = None,
    space: Mapping[str, Mapping[str, Any]] | None = None,
    cam: CamSpec | None = None,
    export: Callable[[nn.Module], nn.Module] | None = None,
    supplied: tuple[str, ...] | None = None,
    task: str = "clip",
) -> Callable[[C], C]:
    """Class decorator registering a model under ``name`` (see the module docstring).

    ``supplied``: constructor arguments the pipeline passes (default ``n_features``/``n_classes``
    for a network); ``aliases``: older names of the model; a taken name is a ``ValueError``;
    ``task``: ``"clip"`` (an isolated-clip classifier, the default) or ``"frames"`` (a frame tagger:
    the segmenter, never an ensemble member).
    """

    def decorator(cls: C) -> C:
        if not isinstance(cls, type):
            raise TypeError(f"register_model({name!r}): {cls!r} is not a class")
        sup = tuple(supplied) if supplied is not None else NETWORK_ARGS
        section = _section_type(name, cls, sup)
        names = {f.name for f in dataclasses.fields(section)}
        for old, new in (key_aliases or {}).items():
            if new not in names or old in names:
                raise ValueError(f"register_model({name!r}): key alias {old!r} -> {new!r} must map an unused key to a constructor argument ({sorted(names)})")
        for key in space or {}:
            if key not in names:
                raise ValueError(f"register_model({name!r}): tunable key {key!r} is not a constructor argument ({sorted(names)})")
        if task not in ("clip", "frames"):
            raise ValueError(f"register_model({name!r}): task must be 'clip' or 'frames', got {task!r}")
        spec = ModelSpec(name, cls, section, sup, dict(key_aliases or {}), dict(space or {}), cam, export, task)
        known = MODELS._entries.get(name)
        if known is not None and (known.cls.__module__, known.cls.__qualname__) == (cls.__module__, cls.__qualname__):
            MODELS.unregister(name)  # the same class again (a module reload)
        MODELS.register(name, spec, aliases=aliases)
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    return decorator


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; ``ValueError`` with the known names otherwise."""
    return MODELS.get(name)


def list_models() -> list[str]:
    """Sorted names of the registered networks."""
    return sorted(n for n, s in MODELS.items() if s.is_network)


def get_model_class(name: str) -> type[nn.Module]:
    """The network class registered as ``name``; ``ValueError`` listing the known names otherwise."""
    spec = MODELS.get(name)
    if not spec.is_network:
        raise ValueError(f"model {name!r} is not a network; networks: {', '.join(list_models())}")
    return spec.cls


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the network registered as ``name`` with ``kwargs``.

    Raises ``ValueError`` for an unknown name (listing the known ones), for a keyword the
    constructor does not accept (naming it) and for a missing required keyword.
    """
    cls = get_model_class(name)
    params = inspect.signature(cls.__init__).parameters
    accepted = {k for k, p in params.items() if k != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"model {name!r}: unknown argument(s) {unknown}; accepted: {sorted(accepted)}")
    required = sorted(
        k for k, p in params.items()
        if k in accepted and p.default is inspect.Parameter.empty and k not in kwargs
    )
    if required:
        raise ValueError(f"model {name!r}: missing required argument(s) {required}")
    return cls(**kwargs)

"""The network registry: ``@register_model(name)`` and ``build_model(name, **kwargs)`` (timm-style).

Every registered network is a ``torch.nn.Module`` with
``forward(x: (B, T, F) float, mask: (B, T) bool) -> logits (B, C)`` whose constructor takes
``n_features``, ``n_classes`` and hyper-parameters, and which keeps the constructor's keyword
arguments in ``self.config`` (a plain JSON-able dict) so that a model bundle can rebuild it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

MODEL_REGISTRY: dict[str, type[nn.Module]] = {}
"""Registered network classes by name."""

# Modules of this package that register the built-in networks; imported on first lookup so that
# ``import signlang.models.registry`` stays cheap and the built-ins are always available.
_BUILTIN_MODULES = ("signlang.models.transformer", "signlang.models.bilstm")

M = TypeVar("M", bound=type[nn.Module])


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator that registers a network class under ``name``.

    Registering a second, different class under a taken name raises ``ValueError``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_model: the name must be a non-empty string, got {name!r}")

    def decorator(cls: M) -> M:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"register_model({name!r}): {cls!r} is not a torch.nn.Module subclass")
        known = MODEL_REGISTRY.get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"register_model: the name {name!r} is already taken by {known.__module__}.{known.__qualname__}")
        MODEL_REGISTRY[name] = cls
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    return decorator


def _load_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)


def list_models() -> list[str]:
    """Sorted names of all registered networks."""
    _load_builtins()
    return sorted(MODEL_REGISTRY)


def get_model_class(name: str) -> type[nn.Module]:
    """The class registered as ``name``; ``ValueError`` listing the known names otherwise."""
    _load_builtins()
    try:
        return MODEL_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODEL_REGISTRY))}") from None


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

"""``Registry[T]``: the one name -> object table every stage uses (models, transforms, splits,
loaders, base models, trial runners, bundle kinds, ...).

One policy everywhere: registering a name that is taken by a different object is a
``ValueError`` (re-registering the very same object, e.g. on a module reload, is a no-op); an
unknown name is an :class:`UnknownNameError` (a ``ValueError``) that lists the known names and
suggests the closest one. Iteration follows registration order (loaders are tried in it).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar, overload

T = TypeVar("T")


class UnknownNameError(ValueError, LookupError):
    """An unknown registry name; the message lists the known names and a did-you-mean."""


def _same(a: object, b: object) -> bool:
    if a is b:
        return True
    # a reloaded module re-registers an equal definition (same module and qualified name)
    key = lambda o: (getattr(o, "__module__", None), getattr(o, "__qualname__", None))  # noqa: E731
    return key(a)[1] is not None and key(a) == key(b)


class Registry(Generic[T]):
    """Names -> objects of one kind (``what`` names that kind in error messages).

    ``builtins``: modules imported on the first lookup, so that importing the registry stays cheap
    and the built-in entries are always there; ``"pkg.*"`` imports every module of package ``pkg``
    (no hand-kept list: a new file there registers itself). ``aliases`` map old names to current ones (read
    by :meth:`get` and ``in``; not listed by :meth:`names`).
    """

    def __init__(self, what: str, builtins: Iterable[str] = ()) -> None:
        self.what = what
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._builtins = tuple(builtins)
        self._loaded = not self._builtins

    # -- registering ------------------------------------------------------------------------
    @overload
    def register(self, name: str, obj: T, *, aliases: Iterable[str] = ()) -> T: ...
    @overload
    def register(self, name: str, obj: None = None, *, aliases: Iterable[str] = ()) -> Callable[[T], T]: ...

    def register(self, name: str, obj: T | None = None, *, aliases: Iterable[str] = ()) -> T | Callable[[T], T]:
        """``register(name, obj)``, or ``@register(name)`` as a decorator; returns ``obj``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.what} registry: a name must be a non-empty string, got {name!r}")

        def add(o: T) -> T:
            known = self._entries.get(name)
            if known is not None and not _same(known, o):
                raise ValueError(f"{self.what} {name!r} is already registered (name already taken by {_describe(known)})")
            if name in self._aliases:
                raise ValueError(f"{self.what} {name!r} is already an alias of {self._aliases[name]!r}")
            self._entries[name] = o
            for old in aliases:
                self.alias(old, name)
            return o

        return add if obj is None else add(obj)

    def alias(self, old: str, name: str) -> None:
        """Let ``old`` (e.g. a name an earlier release wrote) resolve to ``name``."""
        if old in self._entries or self._aliases.get(old, name) != name:
            raise ValueError(f"{self.what} {old!r} is already registered; it cannot become an alias of {name!r}")
        self._aliases[old] = name

    def unregister(self, name: str) -> None:
        """Remove ``name`` and its aliases (for tests that register temporary entries)."""
        self._entries.pop(name, None)
        for old in [a for a, n in self._aliases.items() if n == name]:
            del self._aliases[old]

    # -- looking up ---------------------------------------------------------------------------
    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for mod in self._builtins:
                for name in _expand(mod):
                    importlib.import_module(name)

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` (itself or the name it is an alias of)."""
        self._load()
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        close = difflib.get_close_matches(str(name), list(self._entries) + list(self._aliases), n=1, cutoff=0.6)
        hint = f"; did you mean {self._aliases.get(close[0], close[0])!r}?" if close else ""
        known = ", ".join(sorted(self.names())) or "none"
        raise UnknownNameError(f"unknown {self.what} {name!r}; known: {known}{hint}")

    def get(self, name: str) -> T:
        """The object registered as ``name`` (or an alias of it); :class:`UnknownNameError` otherwise."""
        return self._entries[self.canonical(name)]

    __getitem__ = get

    def names(self) -> list[str]:
        """Registered names in registration order (aliases not included)."""
        self._load()
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        self._load()
        return list(self._entries.items())

    def values(self) -> list[T]:
        self._load()
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, names={self.names()})"


def _expand(mod: str) -> list[str]:
    """``"pkg.*"`` -> every public module of ``pkg`` (sorted); any other name -> itself."""
    if not mod.endswith(".*"):
        return [mod]
    pkg = importlib.import_module(mod[:-2])
    return sorted(f"{pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def _describe(obj: object) -> str:
    obj = getattr(obj, "cls", obj)  # a spec wrapping a class names the class
    mod, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{mod}.{qual}" if qual else type(obj).__name__

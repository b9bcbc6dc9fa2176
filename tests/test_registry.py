"""``Registry[T]``: one duplicate policy (an error), did-you-mean on unknown names, aliases, lazy built-ins."""

from __future__ import annotations

import sys

import pytest

from signlang._registry import Registry, UnknownNameError


def test_register_get_names_in_order() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("b", 2)

    @reg.register("a")
    def a() -> int:
        return 1

    assert reg.names() == ["b", "a"] and reg.get("b") == 2 and reg["a"] is a
    assert "a" in reg and "c" not in reg and len(reg) == 2 and list(reg) == ["b", "a"]
    assert reg.items() == [("b", 2), ("a", a)] and reg.values() == [2, a]


def test_a_taken_name_is_an_error_but_the_same_object_again_is_not() -> None:
    reg: Registry[object] = Registry("widget")
    obj = object()
    reg.register("x", obj)
    reg.register("x", obj)  # e.g. a module imported twice
    with pytest.raises(ValueError, match=r"widget 'x' is already registered"):
        reg.register("x", object())
    with pytest.raises(ValueError, match="non-empty string"):
        reg.register("", obj)


def test_unknown_name_lists_the_known_ones_and_suggests_the_closest() -> None:
    reg: Registry[int] = Registry("split protocol")
    for i, n in enumerate(["random", "blocked", "signer"]):
        reg.register(n, i)
    with pytest.raises(UnknownNameError, match=r"unknown split protocol 'blokced'; known: blocked, random, signer; did you mean 'blocked'\?"):
        reg.get("blokced")
    with pytest.raises(ValueError) as info:  # a ValueError (and a LookupError) for callers that catch either
        reg.get("zzz")
    assert "did you mean" not in str(info.value) and isinstance(info.value, LookupError)


def test_aliases_resolve_but_are_not_listed_and_unregister_removes_them() -> None:
    reg: Registry[int] = Registry("model kind")
    reg.register("pooled_xgboost", 1, aliases=("xgboost_pooled",))
    assert reg.get("xgboost_pooled") == 1 and reg.canonical("xgboost_pooled") == "pooled_xgboost"
    assert reg.names() == ["pooled_xgboost"] and "xgboost_pooled" in reg
    with pytest.raises(ValueError, match="already an alias"):
        reg.register("xgboost_pooled", 2)
    with pytest.raises(ValueError, match="cannot become an alias"):
        reg.alias("pooled_xgboost", "other")
    reg.unregister("pooled_xgboost")
    assert "xgboost_pooled" not in reg and reg.names() == []


def test_builtins_are_imported_on_first_lookup(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "reg_builtin_probe.py").write_text(
        "from signlang._registry import Registry\nREG = Registry('probe', builtins=('reg_builtin_probe_entries',))\n"
    )
    (tmp_path / "reg_builtin_probe_entries.py").write_text("from reg_builtin_probe import REG\nREG.register('one', 1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import reg_builtin_probe

    assert "reg_builtin_probe_entries" not in sys.modules  # importing the registry stays cheap
    assert reg_builtin_probe.REG.names() == ["one"] and "probe" in repr(reg_builtin_probe.REG)

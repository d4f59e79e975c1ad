"""Registries refuse duplicates and answer unknown names with the known ones."""

from __future__ import annotations

import pytest

from pld_sim.registry import Registry


def test_add_lookup_and_errors() -> None:
    registry: Registry[int] = Registry("widget")
    assert registry.add("a", 1) == 1
    assert registry.lookup("a") == 1 and "a" in registry and sorted(registry) == ["a"]
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        registry.add("a", 2)
    with pytest.raises(ValueError, match=r"unknown widget 'b'; known widgets: \['a'\]"):
        registry.lookup("b")


def test_lazy_entries_import_their_module_on_first_lookup() -> None:
    registry: Registry[int] = Registry("codec", lazy={"json": "json"})
    assert registry.names() == ["json"] and "json" not in registry
    registry.add("json", 7)  # what importing the module would do
    assert registry.lookup("json") == 7
    broken: Registry[int] = Registry("codec", lazy={"zip": "json"})  # the module does not register it
    with pytest.raises(ValueError, match=r"unknown codec 'zip'; known codecs: \['zip'\]"):
        broken.lookup("zip")

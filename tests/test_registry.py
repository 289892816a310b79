"""utils.registry: the one registry every growing kind (tasks, algorithms, robot kinds) uses."""

import sys

import pytest

from robo_policies.utils.errors import UnknownNameError
from robo_policies.utils.registry import Registry


def test_unknown_names_list_the_known_ones_and_duplicates_are_bugs():
    registry: Registry[int] = Registry("widget", "widgets")
    registry.add("b", 2)
    registry.add("a", 1)
    assert registry.names() == ["a", "b"] and registry.get("b") == 2
    with pytest.raises(UnknownNameError, match="^unknown widget 'c'; known widgets: a, b$"):
        registry.get("c")
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        registry.add("a", 3)


def test_builtin_modules_are_imported_on_the_first_lookup_only(tmp_path, monkeypatch):
    (tmp_path / "builtin_widgets.py").write_text(
        "from test_registry_probe import REGISTRY\nREGISTRY.add('gear', 7)\n")
    probe = type(sys)("test_registry_probe")
    probe.REGISTRY = Registry("widget", "widgets", builtin_modules=("builtin_widgets",))
    monkeypatch.setitem(sys.modules, "test_registry_probe", probe)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "builtin_widgets" not in sys.modules
    assert probe.REGISTRY.get("gear") == 7 and "builtin_widgets" in sys.modules
    monkeypatch.delitem(sys.modules, "builtin_widgets")

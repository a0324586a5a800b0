import sys

import pytest

from utils.errors import UsageError
from utils.registry import Registry, import_submodules


def widgets() -> Registry[int]:
    reg: Registry[int] = Registry("widget")

    @reg.register("one", "uno", help="the first widget", size=1)
    def one(scale: int = 1) -> int:
        """One, scaled."""
        return scale

    @reg.register("two", size=2)
    def two() -> int:
        """Two.

        More text that is not the help.
        """
        return 2

    return reg


def test_entries_carry_their_metadata_in_registration_order():
    reg = widgets()
    assert [e.name for e in reg.entries()] == ["one", "two"]
    assert reg.entry("uno").name == "one" and reg.entry("uno").aliases == ("uno",)
    assert reg.meta("one")["size"] == 1 and reg.meta("two")["size"] == 2
    assert [e.help for e in reg.entries()] == ["the first widget", "Two"]  # metadata, else the docstring's first line
    assert reg.names() == ["one", "two", "uno"] and reg.names(aliases=False) == ["one", "two"]
    assert reg.describe() == "one (uno): the first widget; two: Two"


def test_metadata_is_read_only():
    with pytest.raises(TypeError):
        widgets().meta("one")["size"] = 3


def test_temporary_registration_is_removed_even_after_an_error():
    reg = widgets()
    with pytest.raises(RuntimeError), reg.register_temporarily("three", lambda: 3):
        assert reg.create("three") == 3 and "three" in reg.names()
        raise RuntimeError
    assert "three" not in reg
    with pytest.raises(UsageError, match="unknown widget 'three'; choose one of: one, two, uno"):
        reg.create("three")


def test_a_name_clashing_with_an_alias_is_refused_and_registers_nothing():
    reg = widgets()
    with pytest.raises(ValueError, match="'uno' is registered twice"):
        reg.register("four", "uno")(lambda: 4)
    assert "four" not in reg


def test_import_submodules_imports_every_module_but_the_skipped(tmp_path, monkeypatch):
    package = tmp_path / "pkg_for_test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("LOADED = True\n")
    (package / "b.py").write_text("raise RuntimeError('must be skipped')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import pkg_for_test

    import_submodules("pkg_for_test", pkg_for_test.__path__, skip={"b"})
    assert sys.modules["pkg_for_test.a"].LOADED and "pkg_for_test.b" not in sys.modules


def test_a_class_registers_only_under_its_own_name():
    registry: Registry[object] = Registry("widget")

    @registry.register_class("round", help="a round one")
    class Round:
        name = "round"

    assert registry.get("round") is Round and registry.entry("round").help == "a round one"
    with pytest.raises(ValueError, match="widget class Square has name 'box' but is registered as 'square'"):

        @registry.register_class("square")
        class Square:
            name = "box"

    assert "square" not in registry

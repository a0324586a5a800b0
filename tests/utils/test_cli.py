from __future__ import annotations

import dataclasses

import pytest

from utils.cli import ArgumentParser, add_dataclass_flags, dataclass_from_args, dataclass_from_record, flat_record


@dataclasses.dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    batch_size: int = 8


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = "a"
    inner: Inner = dataclasses.field(default_factory=lambda: Inner(lr=0.5))
    limit: int | None = None
    verbose: bool = False


@dataclasses.dataclass(frozen=True)
class Clash:
    lr: float = 1.0
    inner: Inner = dataclasses.field(default_factory=Inner)


def parse(argv):
    parser = add_dataclass_flags(ArgumentParser(prog="t"), Outer, {"lr": "learning rate"})
    return parser, parser.parse_args(argv)


def test_nested_fields_become_flat_flags_with_the_owner_defaults():
    parser, args = parse([])
    assert vars(args) == {"name": "a", "lr": 0.5, "batch_size": 8, "limit": None, "verbose": False}
    assert "learning rate (default: 0.5)" in parser.format_help()
    assert dataclass_from_args(Outer, args) == Outer()


def test_flags_fill_the_nested_config():
    _, args = parse(["--lr", "0.25", "--batch_size", "4", "--limit", "none", "--verbose", "--name", "b"])
    assert dataclass_from_args(Outer, args) == Outer(name="b", inner=Inner(lr=0.25, batch_size=4), verbose=True)
    assert dataclass_from_args(Outer, args, lr=0.75).inner == Inner(lr=0.75, batch_size=4)


def test_flat_record_round_trip():
    cfg = Outer(name="c", inner=Inner(lr=0.3, batch_size=2), limit=7)
    record = flat_record(cfg)
    assert record == {"name": "c", "lr": 0.3, "batch_size": 2, "limit": 7, "verbose": False}
    assert list(record) == ["name", "lr", "batch_size", "limit", "verbose"]  # nested fields in place of their field
    assert dataclass_from_record(Outer, record) == cfg


def test_missing_names_keep_defaults_and_unknown_ones_are_ignored():
    assert dataclass_from_record(Outer, {"batch_size": 3, "other": 1}) == Outer(inner=Inner(lr=0.5, batch_size=3))


def test_a_name_twice_in_the_flattened_config_is_a_bug():
    with pytest.raises(ValueError, match="field 'lr' appears twice"):
        flat_record(Clash())

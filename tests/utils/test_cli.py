from __future__ import annotations

import dataclasses

import pytest

from utils.cli import (
    ArgumentParser,
    add_dataclass_flags,
    dataclass_from_args,
    dataclass_from_record,
    escape_help,
    flat_record,
    int_at_least,
)
from utils.errors import UsageError


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
class Percent:
    share: float = 0.5
    unit: str = "%"


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


@dataclasses.dataclass(frozen=True)
class Derived(Outer):
    total: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", self.inner.batch_size * 2)


def test_a_derived_field_is_recorded_but_has_no_flag_and_is_never_read_back():
    parser = add_dataclass_flags(ArgumentParser(prog="t"), Derived)
    assert "--total" not in parser.format_help()
    cfg = dataclass_from_args(Derived, parser.parse_args(["--batch_size", "3"]))
    assert cfg.total == 6 and flat_record(cfg)["total"] == 6
    assert dataclass_from_record(Derived, {**flat_record(cfg), "total": 99}) == cfg


def test_a_name_twice_in_the_flattened_config_is_a_bug():
    with pytest.raises(ValueError, match="field 'lr' appears twice"):
        flat_record(Clash())


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("5% of the images", "5%% of the images"),
        ("100%", "100%%"),
        ("already 5%% escaped", "already 5%% escaped"),
        ("%(default)s and %(prog)s", "%(default)s and %(prog)s"),
        ("%(nonsense)s is not argparse's", "%%(nonsense)s is not argparse's"),
        ("% (spaced)s", "%% (spaced)s"),
        ("no percent", "no percent"),
    ],
)
def test_escape_help_doubles_bare_percent_signs_only(text, escaped):
    assert escape_help(text) == escaped
    assert escape_help(escaped) == escaped  # escaping twice changes nothing


def test_a_percent_in_dataclass_help_or_default_does_not_crash_help():
    parser = add_dataclass_flags(ArgumentParser(prog="t"), Percent, {"share": "share of 100% (5%% pre-escaped)"})
    text = " ".join(parser.format_help().split())
    assert "share of 100% (5% pre-escaped) (default: 0.5)" in text
    assert "(default: %)" in text


def test_any_help_added_to_the_parser_may_hold_a_percent_sign():
    parser = ArgumentParser(prog="t")
    parser.add_argument("--keep", default=90, help="keep 90% (default: %(default)s)")
    parser.add_argument_group("costs").add_argument("--drop", help="drop 10% (bare % in a group)")
    text = " ".join(parser.format_help().split())
    assert "keep 90% (default: 90)" in text and "drop 10% (bare % in a group)" in text


def test_int_at_least_names_the_flag_and_the_bound():
    parser = ArgumentParser(prog="t")
    parser.add_argument("--steps", type=int_at_least(1), default=3)
    assert parser.parse_args(["--steps", "1"]).steps == 1
    with pytest.raises(UsageError, match=r"t: argument --steps: must be >= 1, got 0"):
        parser.parse_args(["--steps", "0"])
    with pytest.raises(UsageError, match=r"argument --steps: invalid int value: 'ten'"):
        parser.parse_args(["--steps", "ten"])

"""What every command-line entry point shares: logging set-up and the one-line, exit-2 handling of `UsageError`."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

from utils.errors import UsageError

USAGE_EXIT = 2
_NONE = ("none", "None", "")
_KINDS: dict[str, type] = {"int": int, "float": float, "str": str}
T = TypeVar("T")
# What argparse fills into a help text: the attributes of an action, and `prog`.
_HELP_KEYS = frozenset({*vars(argparse.Action(["--x"], "x")), "prog"})
_PERCENT = re.compile(r"%%|%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]|%")


def escape_help(text: str) -> str:
    """`text` ready for argparse to print literally: every bare `%` doubled, nothing else changed.

    `%%` and argparse's own placeholders (`%(default)s`, `%(prog)s`, `%(choices)s`, ...) are kept, so escaping twice
    changes nothing.
    """

    def one(match: re.Match[str]) -> str:
        literal = match.group(0) == "%" or (match.group(1) is not None and match.group(1) not in _HELP_KEYS)
        return match.group(0).replace("%", "%%") if literal else match.group(0)

    return _PERCENT.sub(one, text)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, escaping each help text first, so a `%` in one can never crash `--help`."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return escape_help(super()._get_help_string(action) or "")


class ArgumentParser(argparse.ArgumentParser):
    """An `argparse` parser whose errors are `UsageError`s, so a bad flag is one line and exit 2 like the rest.

    Its help texts may hold a bare `%` (see `escape_help`).
    """

    def __init__(self, *args: Any, formatter_class: type[argparse.HelpFormatter] = HelpFormatter, **kwargs: Any):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing the usage text."""
        raise UsageError(f"{self.prog}: {message}")


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run `main(argv)`; a `UsageError` becomes one `error:` line on stderr and exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return main(argv) or 0
    except UsageError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return USAGE_EXIT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse `type`: an integer no smaller than `minimum` (anything else is a one-line usage error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _optional(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text in _NONE else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error message
    return parse


def _leaves(obj: Any) -> Iterator[tuple[dataclasses.Field[Any], Any]]:
    """Each leaf field of dataclass instance `obj` with its value, nested dataclasses expanded in place."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value)
        else:
            yield f, value


def flat_record(obj: Any) -> dict[str, Any]:
    """The fields of dataclass instance `obj` as one flat dict, nested dataclasses flattened in place of their field.

    Its keys are the flag names `add_dataclass_flags` adds, and it is the `config` record runs write to files.
    """
    record: dict[str, Any] = {}
    for f, value in _leaves(obj):
        if f.name in record:
            raise ValueError(f"field {f.name!r} appears twice in the flattened {type(obj).__name__}")
        record[f.name] = value
    return record


def dataclass_from_record(cls: type[T], record: Mapping[str, Any]) -> T:
    """An instance of dataclass `cls` from a flat record as `flat_record` writes it (its inverse).

    A nested dataclass field starts from its default instance and takes its own fields from the record; names the
    record lacks keep their defaults, and names `cls` lacks are ignored, as are derived fields (`init=False`), which
    the instance computes.
    """
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            values[f.name] = dataclass_from_record(type(default), {**flat_record(default), **record})
        elif f.name in record:
            values[f.name] = record[f.name]
    return cls(**values)


def add_dataclass_flags(
    parser: argparse.ArgumentParser, cls: type, helps: Mapping[str, str] | None = None, hyphens: bool = False
) -> argparse.ArgumentParser:
    """One `--field` flag per leaf field of dataclass `cls`, nested dataclass fields flattened (see `flat_record`).

    Bool fields are switches; `X | None` fields accept `none`; derived fields (`init=False`) have no flag. Defaults
    are those of `cls()`. Help texts are printed literally (a `%` in them or in a default is escaped, whatever the
    parser's formatter). With `hyphens` each flag is spelled `--field-name`, `--field_name` kept as an alias.
    """
    helps = helps or {}
    for f, default in _leaves(cls()):
        if not f.init:
            continue
        text = escape_help(helps.get(f.name, ""))
        spellings = dict.fromkeys([f"--{f.name.replace('_', '-')}" if hyphens else f"--{f.name}", f"--{f.name}"])
        if str(f.type) == "bool":
            parser.add_argument(*spellings, dest=f.name, action="store_true", help=text or None)
            continue
        base = _KINDS[str(f.type).split(" |")[0]]
        kind = _optional(base) if "None" in str(f.type) else base
        shown = str(default).replace("%", "%%")
        help_text = f"{text} (default: {shown})".strip()
        parser.add_argument(*spellings, dest=f.name, type=kind, default=default, help=help_text)
    return parser


def dataclass_from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """An instance of dataclass `cls` from the parsed flags `add_dataclass_flags` added (`overrides` win)."""
    return dataclass_from_record(cls, {**vars(args), **overrides})

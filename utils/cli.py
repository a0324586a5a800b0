"""What every command-line entry point shares: logging set-up and the one-line, exit-2 handling of `UsageError`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from utils.errors import UsageError

USAGE_EXIT = 2


class ArgumentParser(argparse.ArgumentParser):
    """An `argparse` parser whose errors are `UsageError`s, so a bad flag is one line and exit 2 like the rest."""

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

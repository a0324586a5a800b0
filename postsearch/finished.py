"""Reading a finished search for `post_search.py --expr`: from one of its `iter_{k}.stats`, or from its folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from search.archive import Archive
from search.config import SearchConfig
from search.files import CONFIG_FILE, read_json, scan_archive, search_config
from search.objectives import Objective, fit_objectives
from search.state import SearchState, read_record
from utils.errors import UsageError


@dataclass(frozen=True)
class FinishedSearch:
    """A finished search as `post_search.py` reads it: settings, archive, folder and the iteration it stopped at."""

    config: SearchConfig
    archive: Archive
    folder: Path
    iteration: int

    def objective(self, name: str) -> Objective:
        """Objective `name` as the search used it at its last iteration (normalised over the archive if it is so).

        A network lacking a number the objective needs is a `UsageError`.
        """
        try:
            return fit_objectives([self.config.objective(name)], self.archive.normalising_records(self.iteration))[0]
        except ValueError as err:
            raise UsageError(f"the networks of this search do not record what {name} needs: {err}") from None


def read_search(expr: str | Path, scan: bool = False) -> FinishedSearch:
    """The configuration, archive, folder and last iteration of a finished search.

    `expr` is an `iter_{k}.stats` file, or with `scan` the search folder, whose archive is rebuilt from its net
    folders (`scan_archive`) and whose configuration is its `search.json`. Anything unreadable is a `UsageError`
    naming `--expr` (or `--get_archive`) and the file.
    """
    expr = Path(expr)
    if scan:
        if not expr.is_dir():
            raise UsageError(f"--get_archive rebuilds the archive of a search folder: --expr {expr} is not a folder")
        config = search_config(read_json(expr / CONFIG_FILE, "--expr"), expr / CONFIG_FILE)
        archive = scan_archive(expr, config.space())
        if not len(archive):
            raise UsageError(f"--expr {expr} holds no successful evaluation in iter_*/net_*/")
        return FinishedSearch(config, archive, expr, max(e.iteration for e in archive))
    if expr.is_dir():
        raise UsageError(f"--expr {expr} is a folder: give its iter_{{k}}.stats, or --get_archive to rebuild it")
    record = read_record(expr, "--expr")
    config = search_config(record["config"], expr)
    state = SearchState.from_record(record, config.space(), expr, "--expr")
    return FinishedSearch(config, state.archive, expr.parent, state.iteration)

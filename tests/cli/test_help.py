"""Every command-line entry point answers `--help` (exit 0, a usage line), and lists its registries' choices.

Entry points are discovered: every root `*.py` and every package module with a `__main__` guard (run with
`python -m`), so a CLI added later is covered without editing this file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from acc_predictor import PREDICTORS
from data import DATASETS
from deploy import list_formats
from evaluator import BACKENDS, EVALUATORS
from hw import list_cost_models
from search.algorithms import ALGORITHMS
from search.objectives import OBJECTIVES
from search_space import SEARCH_SPACES

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {"tests", "supernets/weights", "bench/cache", "bench/results"}  # and hidden ones (.venv, .git)
GUARD = 'if __name__ == "__main__":'

# flag -> the registered names its help must list
CHOICES = {
    "--dataset": DATASETS.names(aliases=False),
    "--predictor": PREDICTORS.names(aliases=False),
    "--search_space": SEARCH_SPACES.names(aliases=False),
    "--evaluator": EVALUATORS.names(aliases=False),
    "--backend": BACKENDS.names(aliases=False),
    "--algorithm": ALGORITHMS.names(aliases=False),
    "--sec_obj": [name for name in OBJECTIVES.names(aliases=False) if name != "top1"],
    "--prefer": OBJECTIVES.names(aliases=False),
    "--export": list_formats(),
    "--regularizer": list_cost_models(),
}


def sources() -> list[Path]:
    """Every `.py` file of the repository outside `SKIP_DIRS`, relative to its root."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        here = Path(folder).relative_to(ROOT)
        dirs[:] = [d for d in dirs if not d.startswith(".") and (here / d).as_posix() not in SKIP_DIRS]
        found += [here / f for f in files if f.endswith(".py")]
    return sorted(found)


def entry_points() -> list[str]:
    """`x.py` for each root script and `pkg.module` for each package module with a `__main__` guard."""
    found = []
    for relative in sources():
        if GUARD not in (ROOT / relative).read_text(encoding="utf-8"):
            continue
        if len(relative.parts) == 1:
            found.append(relative.name)
        else:
            module = relative.with_suffix("").parts
            found.append(".".join(module[:-1] if module[-1] == "__main__" else module))
    return found


def command(entry: str) -> list[str]:
    """The command line that runs `entry`."""
    return [sys.executable, entry] if entry.endswith(".py") else [sys.executable, "-m", entry]


ENTRY_POINTS = entry_points()


def test_discovery_finds_the_known_entry_points():
    known = {"msunas.py", "post_search.py", "train.py", "early_exit.train", "supernets.train", "supernets.default"}
    assert known <= set(ENTRY_POINTS)
    assert {"bench.predictors", "bench.search_efficiency", "bench.supernet"} <= set(ENTRY_POINTS)
    assert "bench.report" not in ENTRY_POINTS  # a library module, not a CLI


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_help_exits_0_with_a_usage_line_listing_the_registered_choices(entry):
    env = {**os.environ, "COLUMNS": "1000", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}  # no wrapped lines
    result = subprocess.run(
        [*command(entry), "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage: "), result.stdout[:500]
    assert "Traceback" not in result.stderr
    options = result.stdout.split("options:", 1)[-1]
    for flag, names in CHOICES.items():
        if f"  {flag} " in options or f"  {flag}," in options:
            missing = [name for name in names if name not in options]
            assert not missing, f"{entry} {flag}: its help does not list {missing}"

"""Every command-line entry point answers `--help` (exit 0, a usage line), and lists its registries' choices.

Entry points are discovered: every root `*.py` and every package module with a `__main__` guard (run with
`python -m`), so a CLI added later is covered without editing this file.
"""

from __future__ import annotations

import json
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


# Runs each entry point as `python x.py --help` / `python -m pkg.module --help` would (as `__main__`), in one
# interpreter so that torch is imported once, not once per entry point; prints {entry: [exit code, stdout, stderr]}.
RUNNER = """
import contextlib, io, json, runpy, sys, warnings
warnings.simplefilter("ignore", RuntimeWarning)  # runpy: a module already imported as another one's dependency
answers = {}
for entry in sys.argv[1:]:
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = [entry, "--help"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if entry.endswith(".py"):
                runpy.run_path(entry, run_name="__main__")
            else:
                runpy.run_module(entry, run_name="__main__", alter_sys=True)
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        except BaseException:
            import traceback
            traceback.print_exc(file=err)
            code = 1
    answers[entry] = [code, out.getvalue(), err.getvalue()]
print(json.dumps(answers))
"""

ENTRY_POINTS = entry_points()


def test_discovery_finds_the_known_entry_points():
    known = {"msunas.py", "post_search.py", "train.py", "early_exit.train", "supernets.train", "supernets.default"}
    assert known <= set(ENTRY_POINTS)
    assert {"bench.predictors", "bench.search_efficiency", "bench.supernet"} <= set(ENTRY_POINTS)
    assert "bench.report" not in ENTRY_POINTS  # a library module, not a CLI


@pytest.fixture(scope="module")
def helps() -> dict[str, list]:
    """Every entry point's `--help`: exit code, stdout, stderr."""
    env = {**os.environ, "COLUMNS": "1000", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}  # no wrapped lines
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, *ENTRY_POINTS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_help_exits_0_with_a_usage_line_listing_the_registered_choices(helps, entry):
    code, stdout, stderr = helps[entry]
    assert code == 0, stderr[-2000:]
    assert stdout.startswith("usage: "), stdout[:500]
    assert "Traceback" not in stderr
    options = stdout.split("options:", 1)[-1]
    for flag, names in CHOICES.items():
        if f"  {flag} " in options or f"  {flag}," in options:
            missing = [name for name in names if name not in options]
            assert not missing, f"{entry} {flag}: its help does not list {missing}"

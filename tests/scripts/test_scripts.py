import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from supernets.checkpoint import save_supernet_weights
from supernets.ofa_mbv3 import SupernetConfig, build_supernet

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))
TINY = [
    "--n_doe",
    "4",
    "--iterations",
    "1",
    "--n_iter",
    "2",
    "--pop_size",
    "8",
    "--n_gen",
    "2",
    "--predictor",
    "carts",
    "--n_bn_cal",
    "16",
    "--lr",
    "16",
    "--ur",
    "16",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    return str(save_supernet_weights(build_supernet(SupernetConfig()), tmp_path_factory.mktemp("w") / "net.pth"))


def run_script(script: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PY": sys.executable, **(env or {})},
    )


def test_every_script_is_commented_and_parses():
    assert {s.name for s in SCRIPTS} >= {"search_cnas.sh", "search_tinyml.sh", "search_digits.sh"}
    for script in SCRIPTS:
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n#") and ("msunas.py" in text or "-m oneshot.search" in text)
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_tinyml_script_runs_with_tiny_overrides(weights, tmp_path):
    save = tmp_path / "run"
    done = run_script(ROOT / "scripts" / "search_tinyml.sh", *TINY, "--supernet_path", weights, "--save", str(save))
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads((save / "iter_1.stats").read_text())
    assert len(stats["archive"]) == 6
    assert stats["objectives"] == ["top1", "tiny_ml"] and stats["config"]["pmax"] == 2.5


def test_darts_script_searches_the_darts_space_and_its_flags_are_checked_first(tmp_path):
    save = tmp_path / "run"
    done = run_script(ROOT / "scripts" / "search_darts.sh", "--n_epochs", "0", "--save", str(save))
    assert done.returncode == 2 and "--n_epochs must be >= 1" in done.stderr and not save.exists()


def test_cnas_script_needs_its_data(tmp_path):
    done = run_script(ROOT / "scripts" / "search_cnas.sh", env={"DATA": "", "SUPERNET": ""})
    assert done.returncode != 0 and "set DATA" in done.stderr
    done = run_script(
        ROOT / "scripts" / "search_cnas.sh",
        "--save",
        str(tmp_path / "r"),
        env={"DATA": str(tmp_path / "nodata"), "SUPERNET": str(tmp_path / "none.pth")},
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: ")


def test_nachos_script_searches_avg_macs(weights, tmp_path):
    save = tmp_path / "run"
    flags = [*TINY, "--warmup_ee_epochs", "0", "--ee_epochs", "0", "--supernet_path", weights, "--save", str(save)]
    done = run_script(ROOT / "scripts" / "search_nachos.sh", *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads((save / "iter_1.stats").read_text())
    assert stats["objectives"] == ["top1", "avg_macs"] and stats["config"]["search_space"] == "cbnmobilenetv3"
    assert len(stats["archive"]) == 6 and "avg_macs" in stats["surrogate"]
    entry = stats["evaluations"]["entries"][0]["stats"]
    assert entry["avg_macs"] <= entry["macs"] + sum(entry["head_macs"]) and len(entry["exits_ratio"]) >= 1


@pytest.mark.parametrize(
    ("script", "flags", "message"),
    [
        ("search_edanas.sh", ["--ee_epochs", "-1"], "--ee_epochs"),
        ("search_flatnas.sh", ["--n_perturb", "0"], "--n_perturb must be >= 1"),
    ],
)
def test_edanas_and_flatnas_scripts_pass_their_flags_to_checks_made_before_any_work(
    script, flags, message, weights, tmp_path
):
    """The searches themselves run in tests/search (FlatNAS) and the nachos script above (early exits)."""
    save = tmp_path / "run"
    done = run_script(ROOT / "scripts" / script, *TINY, *flags, "--supernet_path", weights, "--save", str(save))
    assert done.returncode == 2 and message in done.stderr and not save.exists()

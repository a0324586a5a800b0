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


@pytest.mark.parametrize(
    ("script", "space"), [("search_edanas.sh", "eemobilenetv3"), ("search_nachos.sh", "cbnmobilenetv3")]
)
def test_early_exit_scripts_search_avg_macs(script, space, weights, tmp_path):
    save = tmp_path / "run"
    flags = [*TINY, "--warmup_ee_epochs", "0", "--ee_epochs", "0", "--supernet_path", weights, "--save", str(save)]
    done = run_script(ROOT / "scripts" / script, *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads((save / "iter_1.stats").read_text())
    assert stats["objectives"] == ["top1", "avg_macs"] and stats["config"]["search_space"] == space
    assert len(stats["archive"]) == 6 and "avg_macs" in stats["surrogate"]
    entry = stats["evaluations"]["entries"][0]["stats"]
    assert entry["avg_macs"] <= entry["macs"] + sum(entry["head_macs"]) and len(entry["exits_ratio"]) >= 1


def test_flatnas_script_searches_top1_robust(weights, tmp_path):
    save = tmp_path / "run"
    done = run_script(
        ROOT / "scripts" / "search_flatnas.sh",
        *TINY,
        "--n_perturb",
        "1",
        "--supernet_path",
        weights,
        "--save",
        str(save),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads((save / "iter_1.stats").read_text())
    assert stats["objectives"] == ["top1_robust", "macs"] and stats["config"]["eval_robust"] is True
    assert len(stats["archive"]) == 6 and "robustness" in stats["surrogate"] and stats["alpha_norm"] > 0
    assert all("robustness" in e["stats"] for e in stats["evaluations"]["entries"])


def test_oneshot_script_searches_then_trains_the_found_architecture(tmp_path):
    tiny = "--epochs 1 --steps-per-epoch 1 --batch-size 8 --width-mult 0.25 --resolution 8 --generation_num 1"
    tiny += " --population 3 --parent-num 2 --n-bn-cal 8 --valid-limit 16 --device cpu"
    done = run_script(
        ROOT / "scripts" / "search_oneshot.sh", *tiny.split(), env={"SAVE": str(tmp_path), "TRAIN_EPOCHS": "1"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = tmp_path / "spos-fairstrict" / "evolution"
    stats = json.loads((found / "net.stats").read_text())
    assert stats["search"]["strategy"] == "evolution" and 0 <= stats["test_top1"] <= 100
    assert (found / "ckpt.pth").is_file() and (found / "search.png").is_file()

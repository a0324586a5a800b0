"""The same seed gives the same archive as the stored reference search.

Rewritten for issue 14 (integer mutation on widened bounds, surrogate features, candidates by hypervolume gain):
the initial design is unchanged, the later iterations propose differently.
"""

import json
from pathlib import Path

import pytest

import msunas
from utils.cli import run_cli

GOLDEN = Path(__file__).parent / "data" / "golden_archive.json"
ARGV = [
    "--sec_obj", "macs", "--lr", "16", "--ur", "20", "--n_doe", "6", "--iterations", "2", "--n_iter", "3",
    "--pop_size", "10", "--n_gen", "3", "--predictor", "carts", "--n_bn_cal", "32", "--device", "cpu", "--seed", "1",
]  # fmt: skip


def summary(stats: dict) -> dict:
    """What must not change: every evaluated architecture in order, with its iteration and numbers, and the HV."""
    return {
        "entries": [
            {"iteration": e["iteration"], "arch": e["arch"], **{k: e["stats"][k] for k in ("top1", "params", "macs")}}
            for e in stats["evaluations"]["entries"]
        ],
        "hv_history": stats["hv_history"],
        "ref_point": stats["ref_point"],
    }


def test_tiny_search_reproduces_the_stored_archive(weights, tmp_path):
    save = tmp_path / "run"
    assert run_cli(msunas.main, ["--supernet_path", weights, "--save", str(save), *ARGV]) == 0
    got = summary(json.loads((save / "iter_2.stats").read_text()))
    want = json.loads(GOLDEN.read_text())
    assert [(e["iteration"], e["arch"]) for e in got["entries"]] == [
        (e["iteration"], e["arch"]) for e in want["entries"]
    ]
    numbers = ("top1", "params", "macs")
    for g, w in zip(got["entries"], want["entries"], strict=True):
        assert [g[k] for k in numbers] == pytest.approx([w[k] for k in numbers], rel=1e-9, abs=1e-9)
    assert got["hv_history"] == pytest.approx(want["hv_history"], rel=1e-9)
    assert got["ref_point"] == pytest.approx(want["ref_point"], rel=1e-9)

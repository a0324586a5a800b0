import json

import numpy as np
import pytest

import bench.report as report
from bench import predictors, search_efficiency
from search_space.ofa_mbv3 import CostModel, OFAMobileNetV3Space
from supernets.ofa_mbv3 import SupernetConfig

CARD = {
    "name": "synthetic",
    "dataset": "digits",
    "resolutions": [24, 28, 32],
    "epochs": 0,
    "valid_images": 300,
    "supernet": {"n_classes": 10, "width_mult": 1.0},
}


@pytest.fixture
def table(tmp_path, monkeypatch):
    """A pool whose accuracy grows with MACs, with a little structure the predictors can learn."""
    monkeypatch.setattr(report, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(report, "README", tmp_path / "README.md")
    space = OFAMobileNetV3Space(lr=24, ur=32)
    cost = CostModel(SupernetConfig())
    rows = []
    for arch in space.sample(120, np.random.default_rng(0)):
        c = cost(arch)
        rows.append(
            {"arch": arch, "top1": 80 + 4 * np.log(c.macs) + 0.1 * sum(arch["d"]), "macs": c.macs, "params": c.params}
        )
    path = tmp_path / "table.json"
    path.write_text(json.dumps({"card": CARD, "rows": rows, "repeat": rows[:10]}))
    return path


def test_pool_evaluator_hands_out_each_member_once(table):
    data = json.loads(table.read_text())
    space = OFAMobileNetV3Space(lr=24, ur=32)
    pool = search_efficiency.PoolEvaluator(data, space)
    first = data["rows"][0]["arch"]
    a, b = pool.evaluate([first, first], ["x", "y"])
    assert a.arch == first and a.top1 == data["rows"][0]["top1"]
    assert b.arch != first and b.ok  # the nearest *free* member


def test_search_efficiency_runs_and_reports(table, tmp_path):
    argv = [
        "--table",
        str(table),
        "--seeds",
        "1",
        "--n_doe",
        "10",
        "--iterations",
        "2",
        "--n_iter",
        "4",
        "--predictor",
        "carts",
    ]
    assert search_efficiency.main(argv) == 0
    results = json.loads((tmp_path / "results" / "search_efficiency.json").read_text())
    assert results["budget"] == 18
    for algorithm in ("msunas", "nsga2", "random"):
        curve = results["algorithms"][algorithm]["curves"][0]
        assert [n for n, _ in curve] == [10, 14, 18]
        assert all(0 < hv <= 1 for _, hv in curve)
    assert "## Search efficiency" in (tmp_path / "README.md").read_text()


def test_predictor_scores_are_out_of_sample(table):
    data = json.loads(table.read_text())
    scores = predictors.score_predictors(data, seeds=1, sizes=(25,))
    for name, by_n in scores.items():
        assert set(by_n[25]) == {"tau", "rho", "rmse", "fit_s"}
        assert -1 <= by_n[25]["tau"][0] <= 1, name
    assert scores["rbf"][25]["tau"][0] > 0.5

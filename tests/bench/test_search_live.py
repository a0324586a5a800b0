import argparse

import numpy as np
import pytest

from bench import search_live
from search.pareto import hypervolume


def test_hv_curve_scores_each_iteration_prefix_against_the_pool():
    entries = [
        {"iteration": 0, "stats": {"top1": 90.0, "macs": 4.0}},
        {"iteration": 0, "stats": {"top1": 80.0, "macs": 1.0}},
        {"iteration": 1, "stats": {"top1": 95.0, "macs": 3.0}},
    ]
    stats = {"iteration": 1, "evaluations": {"entries": entries}}
    ref = np.array([30.0, 5.0])
    curve = search_live.hv_curve(stats, ref, pool_hv=100.0)
    assert [n for n, _ in curve] == [2, 3]
    assert curve[0][1] == pytest.approx(hypervolume(np.array([[10.0, 4.0], [20.0, 1.0]]), ref) / 100)
    assert curve[0][1] == pytest.approx((20 * 1 + 10 * 3) / 100)  # the two-point front's area by hand
    assert curve[1][1] > curve[0][1]


def test_the_live_run_uses_the_tables_supernet_resolutions_and_budget(tmp_path):
    table = {"card": {"dataset": "fashion_mnist", "resolutions": [24, 28, 32]}}
    args = argparse.Namespace(n_doe=40, iterations=10, n_iter=8, backend="process", n_workers=2, device="cpu", seed=0)
    argv = search_live.search_argv(table, tmp_path / "w.pth", tmp_path / "run", args)
    flags = dict(zip(argv[::2], argv[1::2], strict=True))
    assert flags["--lr"] == "24" and flags["--ur"] == "32" and flags["--sec_obj"] == "macs"
    assert flags["--supernet_path"] == str(tmp_path / "w.pth") and flags["--n_doe"] == "40"


def test_without_the_table_it_skips_with_one_line(tmp_path, capsys):
    assert search_live.main(["--table", str(tmp_path / "table-x.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("skipped: needs the table") and out.count("\n") == 1

import json

import pytest

import bench.report as report
from bench import inner_search

TINY = "--engines pit --seeds 1 --n_doe 4 --iterations 1 --n_iter 1 --none_factor 2 --resolution 16".split()
TINY += ["--inner_images", "64", "--n_bn_cal", "32"]


def test_the_benchmark_compares_inner_and_plain_searches_and_splits_the_time(weights, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(report, "README", tmp_path / "README.md")
    assert inner_search.main([*TINY, "--weights", weights]) == 0
    results = json.loads((tmp_path / "results" / "inner_search.json").read_text())
    assert results["n_evals"] == 5 and set(results["engines"]) == {"pit"}
    pit = results["engines"]["pit"]
    assert pit["cost"] == "macs" and set(pit["hv"]) == {"pit", "none, equal evaluations", "none, equal wall time"}
    assert all(0.0 <= v <= 1.0 for values in pit["hv"].values() for v in values)
    assert 0 <= pit["none_evaluations_in_equal_time"][0] <= 6
    split = pit["time_split"]
    assert 0 < split["inner_s"] < split["evaluation_s"]
    assert split["rest_s"] == pytest.approx(split["evaluation_s"] - split["inner_s"])
    assert (tmp_path / "results" / "inner_search.png").is_file()
    assert "<!-- inner_search:begin -->" in (tmp_path / "README.md").read_text()

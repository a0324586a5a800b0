import json

import pytest

import bench.report as report
from bench import robustness

from .test_early_exit_bench import weights  # noqa: F401  (the untrained 16 px digits supernet with its card)

TINY = (
    "--seeds 0 --n_doe 4 --iterations 0 --n_iter 2 --n_perturb 1 --train_limit 64 --valid_limit 64 --test_limit 16 "
    "--measure_perturb 1 --n_timed 1 --repeats 1"
)


def test_the_benchmark_compares_both_searches_and_times_the_measurement(weights, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(report, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(report, "README", tmp_path / "README.md")
    assert robustness.main(["--weights", str(weights), *TINY.split()]) == 0
    results = json.loads((tmp_path / "results" / "robustness.json").read_text())
    pair = results["seeds"]["0"]
    assert set(pair) == {"top1", "top1_robust"}
    assert "robustness" in pair["top1_robust"]["stats"] and "robustness" not in pair["top1"]["stats"]
    for chosen in pair.values():
        measured = chosen["measured"]
        assert 0 <= measured["test_top1"] <= 100 and measured["robustness"] >= 0 and 0 <= measured["mCE"] <= 100
    medians = results["medians"]
    assert medians["top1"]["mCE"] == pair["top1"]["measured"]["mCE"]  # one seed: its own numbers
    (cost,) = results["cost"]
    assert cost["ratio"] == pytest.approx(cost["flatness_s"] / cost["validation_s"])
    readme = (tmp_path / "README.md").read_text()
    assert "<!-- robustness:begin -->" in readme and "target: at most 5x" in readme


def test_without_the_weights_it_skips_with_one_line(tmp_path, capsys):
    assert robustness.main(["--weights", str(tmp_path / "missing.pth")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("skipped: needs the supernet weights") and out.count("\n") == 1

import json

import bench.report as report
from bench import fbnetv2 as bench_fbnetv2


def test_fbnetv2_benchmark_runs_and_reports(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(report, "README", tmp_path / "README.md")
    monkeypatch.setattr(bench_fbnetv2, "RESULTS", tmp_path / "results")
    argv = ["--resolution", "8", "--arrays", "8", "16", "--strengths", "0", "10", "--widths", "0.5"]
    assert bench_fbnetv2.main([*argv, "--epochs", "1", "--final_epochs", "1"]) == 0
    rows = json.loads((tmp_path / "results" / "fbnetv2.json").read_text())["rows"]
    assert [(r["method"], r["array"]) for r in rows] == [
        ("fbnetv2", 8),
        ("fbnetv2", 8),
        ("fbnetv2", 16),
        ("fbnetv2", 16),
        ("uniform", 8),
        ("uniform", 16),
    ]
    assert all(0 < r["latency_ratio"] <= 1 and 0 <= r["valid_top1"] <= 100 for r in rows)
    assert (tmp_path / "results" / "fbnetv2.png").stat().st_size > 0
    assert "<!-- fbnetv2:begin -->" in (tmp_path / "README.md").read_text()

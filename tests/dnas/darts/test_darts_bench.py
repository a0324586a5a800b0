import json

import bench.report as report
from bench import darts as bench_darts


def test_sensor_task_is_balanced_and_shaped_like_sensor_data():
    x, y = bench_darts.sensor_task(600, 0)
    assert x.shape == (600, 3, 64, 1)
    assert y.bincount(minlength=6).min() > 60


def test_darts_benchmark_runs_and_reports(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(report, "README", tmp_path / "README.md")
    argv = ["--epochs", "1", "--final_epochs", "1", "--channels", "2", "--layers", "1", "--nodes", "1"]
    argv += ["--n_train", "64", "--n_valid", "32", "--n_test", "32", "--modes", "none", "Memory"]
    assert bench_darts.main(argv) == 0
    rows = json.loads((tmp_path / "results" / "darts.json").read_text())["rows"]
    assert [(r["task"], r["mode"], r["unrolled"]) for r in rows] == [
        ("sensor-1d", "none", False),
        ("sensor-1d", "none", True),
        ("sensor-1d", "Memory", False),
        ("digits-2d", "none", False),
        ("digits-2d", "none", True),
        ("digits-2d", "Memory", False),
    ]
    assert all(0 <= r["test_top1"] <= 100 and r["params"] > 0 and r["macs"] > 0 for r in rows)
    assert "<!-- darts:begin -->" in (tmp_path / "README.md").read_text()

import json

import bench.report as report
from bench import pit as bench_pit


def test_pit_benchmark_runs_and_reports(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(report, "README", tmp_path / "README.md")
    monkeypatch.setattr(bench_pit, "RESULTS", tmp_path / "results")
    argv = ["--dataset", "digits", "--resolution", "16", "--limit", "128", "--vld_size", "100"]
    argv += [
        "--seed_epochs",
        "1",
        "--pit_epochs",
        "1",
        "--ft_epochs",
        "1",
        "--strengths",
        "1",
        "100",
        "--mask_lr",
        "0.5",
    ]
    assert bench_pit.main(argv) == 0
    results = json.loads((tmp_path / "results" / "pit.json").read_text())
    seed = results["seed_model"]
    assert seed["params"] == 77466 and [r["strength"] for r in results["rows"]] == [1, 100]
    assert all(0 <= r["top1"] <= 100 and r["params"] <= seed["params"] for r in results["rows"])
    assert results["rows"][1]["macs"] < seed["macs"]
    assert (tmp_path / "results" / "pit.png").stat().st_size > 0
    assert "<!-- pit:begin -->" in (tmp_path / "README.md").read_text()

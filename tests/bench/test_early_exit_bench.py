import json

import pytest

import bench.report as report
from bench import early_exit
from evaluator.supernet import SupernetEvalConfig
from supernets.checkpoint import save_supernet_weights
from supernets.train import SupernetTrainer, TrainConfig
from utils.io import write_json

SUPERNET = TrainConfig(dataset="digits", resolution=16, seed=0, n_bn_cal=32, n_card_random=0)
TINY = (
    "--n_doe 4 --iterations 0 --n_iter 2 --backend sequential --train_limit 64 --valid_limit 64 --n_bn_cal 16 "
    "--warmup_ee_epochs 1 --ee_epochs 0 --n_nets 2 --infer_images 8 --batch_sizes 1 4 --repeats 1"
)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """An untrained 16 px digits supernet with its card, as `python -m supernets.train` writes them."""
    trainer = SupernetTrainer(SUPERNET, tmp_path_factory.mktemp("supernet"), "cpu")
    save_supernet_weights(trainer.net, trainer.weights_path)
    write_json(trainer.card_path, trainer.card(train_time_s=0.0))
    return trainer.weights_path


def test_the_benchmark_runs_both_searches_and_writes_its_outputs(weights, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(report, "README", tmp_path / "README.md")
    assert early_exit.main(["--weights", str(weights), *TINY.split()]) == 0
    results = json.loads((tmp_path / "results" / "early_exit.json").read_text())
    searches = results["searches"]
    assert searches["single_exit"]["cost"] == "macs" and searches["early_exit"]["cost"] == "avg_macs"
    assert searches["single_exit"]["evaluations"] == searches["early_exit"]["evaluations"] == 4
    assert all("b" in r["arch"] for r in searches["early_exit"]["archive"])
    assert all("b" not in r["arch"] for r in searches["single_exit"]["archive"])
    members = results["front_members"]
    assert 1 <= len(members) <= 2
    for member in members:
        assert member["evaluation_s"]["supernet"] > 0 and member["evaluation_s"]["ee"] > 0
        inference = member["inference"]
        assert inference["images"] == 8 and set(inference["timings"]) == {"1", "4"}
        assert sum(inference["exits_ratio"]) == pytest.approx(1.0)
        assert inference["predicted_speedup"] == pytest.approx(inference["macs"] / inference["avg_macs"])
    assert (tmp_path / "results" / "early_exit_fronts.png").is_file()
    readme = (tmp_path / "README.md").read_text()
    assert "<!-- early_exit:begin -->" in readme and "### MACs per input at equal validation top-1" in readme
    assert "results/early_exit_fronts.png" in readme


def test_without_the_weights_it_skips_with_one_line(tmp_path, capsys):
    assert early_exit.main(["--weights", str(tmp_path / "missing.pth")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("skipped: needs the supernet weights") and out.count("\n") == 1


def test_the_training_split_is_cut_to_the_limit_and_the_rest_kept(weights):
    base = SupernetEvalConfig(supernet_path=str(weights), dataset="digits", vld_size=300)
    full = base.dataset_splits()
    cut = early_exit.LimitedEvalConfig(supernet_path=str(weights), dataset="digits", vld_size=300, train_limit=50)
    splits = cut.dataset_splits()
    assert len(splits.train) == 50 and bool((splits.train.images == full.train.images[:50]).all())
    assert len(splits.valid) == len(full.valid) == 300 and len(splits.test) == len(full.test)


EE_FRONT = [(80.0, 2.0), (85.0, 3.0), (90.0, 5.0)]
SE_FRONT = [(82.0, 4.0), (86.0, 6.0), (88.0, 8.0)]


def test_fronts_are_compared_at_levels_both_reach():
    levels = early_exit.common_levels(EE_FRONT, SE_FRONT, 5)
    assert levels == [80.0, 82.0, 84.0, 86.0, 88.0]  # from min(80, 82) to min(90, 88)
    rows = early_exit.compare_fronts(EE_FRONT, SE_FRONT, levels)
    assert [(r["ee_macs"], r["se_macs"]) for r in rows] == [(2.0, 4.0), (3.0, 4.0), (3.0, 6.0), (5.0, 6.0), (5.0, 8.0)]
    assert [r["ratio"] for r in rows] == [0.5, 0.75, 0.5, 5 / 6, 0.625]
    assert [r["saved"] for r in rows] == [2.0, 1.0, 3.0, 1.0, 3.0]
    line = early_exit.ratio_line(rows)
    assert line.startswith("At equal validation top-1 the early-exit front spends 0.50 to 0.83 times")
    assert line.endswith("over these 5 levels (median 0.62).")


def test_a_level_one_front_never_reaches_is_left_out():
    assert early_exit.cheapest_at(SE_FRONT, 88.5) is None
    assert early_exit.compare_fronts(EE_FRONT, SE_FRONT, [89.0, 90.0]) == []
    assert early_exit.common_levels([(82.0, 1.0)], SE_FRONT, 3) == [82.0]


def test_front_points_keeps_the_non_dominated_records_cheapest_first():
    records = [
        {"top1": 85.0, "avg_macs": 3.0},
        {"top1": 80.0, "avg_macs": 2.0},
        {"top1": 84.0, "avg_macs": 4.0},  # dominated by the first
        {"top1": 90.0, "avg_macs": 5.0},
        {"top1": 79.0, "avg_macs": 2.0},  # dominated by the second
    ]
    assert early_exit.front_points(records, "avg_macs") == [1, 0, 3]


def test_spread_takes_both_ends_and_evenly_spaced_members_between():
    assert early_exit.spread(7, 3) == [0, 3, 6]
    assert early_exit.spread(2, 3) == [0, 1]
    assert early_exit.spread(1, 3) == [0]

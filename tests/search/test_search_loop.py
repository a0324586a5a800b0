import json

import numpy as np
import pandas as pd
import pytest

import evaluator.supernet as supernet_module
import msunas
from search.loop import Search
from search.state import SearchState
from search_space.ofa_mbv3 import CostModel
from supernets.ofa_mbv3 import SupernetConfig
from utils.cli import run_cli


def argv(weights, save, *extra):
    return [
        "--supernet_path",
        weights,
        "--save",
        str(save),
        "--lr",
        "16",
        "--ur",
        "20",
        "--n_doe",
        "6",
        "--iterations",
        "2",
        "--n_iter",
        "3",
        "--pop_size",
        "10",
        "--n_gen",
        "3",
        "--predictor",
        "carts",
        "--n_bn_cal",
        "32",
        "--device",
        "cpu",
        "--seed",
        "1",
        *extra,
    ]


def run(weights, save, *extra):
    assert run_cli(msunas.main, argv(weights, save, *extra)) == 0
    return json.loads((save / "iter_2.stats").read_text())


def archive_summary(stats):
    return [
        (e["arch"], e["stats"]["top1"], e["stats"]["macs"], e["iteration"]) for e in stats["evaluations"]["entries"]
    ]


@pytest.fixture(scope="module")
def full_run(weights, tmp_path_factory):
    save = tmp_path_factory.mktemp("full") / "run"
    return save, run(weights, save, "--sec_obj", "macs")


def test_end_to_end_files(full_run):
    save, stats = full_run
    assert len(stats["archive"]) == 6 + 2 * 3
    assert stats["objectives"] == ["top1", "macs"]
    for arch, err, macs in stats["archive"]:
        assert set(arch) == {"ks", "e", "d", "r"} and 0 <= err <= 100 and macs > 0
    first = json.loads((save / "iter_0.stats").read_text())
    archs = [row[0] for row in first["archive"]]
    assert {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 16} in archs
    assert {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 20} in archs
    assert stats["ref_point"] == first["ref_point"]
    assert len(stats["hv_history"]) == 3 and stats["hv"] == stats["hv_history"][-1]
    assert stats["hv_history"] == sorted(stats["hv_history"])  # the archive only grows
    assert stats["surrogate"]["name"] == "carts" and -1 <= stats["surrogate"]["tau"] <= 1
    surrogate = stats["surrogate"]  # what the surrogate promised for this iteration's candidates, and what came
    assert 0 <= surrogate["n_proposed"] <= 3 and len(surrogate["predicted_top1"]) == 3
    measured = [
        row["stats"]["top1"] for row in json.loads((save / "iter_2.stats").read_text())["evaluations"]["entries"][-3:]
    ]
    assert surrogate["measured_top1"] == measured
    assert surrogate["prospective_tau"] is None or -1 <= surrogate["prospective_tau"] <= 1
    assert stats["seed"] == 1 and stats["config"]["sec_obj"] == "macs"
    for k in range(3):
        assert (save / f"iter_{k}.stats").is_file() and (save / f"pareto_iter_{k}.png").is_file()
    net = save / "iter_1" / "net_0"
    assert json.loads((net / "net_0.subnet").read_text()) in [row[0] for row in stats["archive"]]
    assert {"top1", "params", "macs", "activations"} <= set(json.loads((net / "net_0.stats").read_text()))
    assert (save / "hv.png").is_file() and (save / "search.json").is_file()
    frame = pd.read_csv(save / "archive.csv")
    assert len(frame) == 12 and {"iteration", "top1", "macs", "arch"} <= set(frame.columns)
    assert not list(save.rglob("*.tmp"))


def test_nothing_is_evaluated_twice(full_run):
    _, stats = full_run
    keys = [json.dumps(row[0], sort_keys=True) for row in stats["archive"]]
    assert len(keys) == len(set(keys))


class Killed(BaseException):
    """Stands for the process being killed."""


def kill_at_evaluation(monkeypatch, n: int) -> list[str]:
    """Make the supernet evaluator "kill the process" when it starts its `n`-th evaluation; returns the calls."""
    calls = []
    real = supernet_module.SupernetEvaluator.evaluate_one

    def dying(self, arch, out_dir):
        calls.append(json.dumps(arch, sort_keys=True))
        if len(calls) == n:
            raise Killed
        return real(self, arch, out_dir)

    monkeypatch.setattr(supernet_module.SupernetEvaluator, "evaluate_one", dying)
    return calls


def test_killed_and_resumed_run_equals_uninterrupted_run(weights, full_run, tmp_path, monkeypatch):
    _, reference = full_run
    save = tmp_path / "run"
    real = supernet_module.SupernetEvaluator.evaluate_one
    calls = kill_at_evaluation(monkeypatch, 8)  # in the middle of iteration 1: two of its three candidates done
    with pytest.raises(Killed):
        msunas.main(argv(weights, save, "--sec_obj", "macs"))
    assert (save / "iter_0.stats").is_file() and not (save / "iter_1.stats").exists()
    monkeypatch.setattr(supernet_module.SupernetEvaluator, "evaluate_one", real)
    counted = []
    monkeypatch.setattr(
        supernet_module.SupernetEvaluator,
        "evaluate_one",
        lambda self, arch, out: counted.append(1) or real(self, arch, out),
    )
    assert run_cli(msunas.main, argv(weights, save, "--sec_obj", "macs", "--resume", str(save / "iter_0.stats"))) == 0
    resumed = json.loads((save / "iter_2.stats").read_text())
    assert archive_summary(resumed) == archive_summary(reference)
    assert resumed["hv_history"] == reference["hv_history"]
    assert len(calls) - 1 + len(counted) == 12  # the killed evaluation is the only one run twice


def test_same_seed_same_archive_other_seed_differs(weights, full_run, tmp_path):
    _, reference = full_run
    other = run(weights, tmp_path / "b", "--sec_obj", "macs", "--seed", "2")
    assert archive_summary(other) != archive_summary(reference)


def test_a_failed_evaluation_lands_in_failed_and_the_search_goes_on(weights, tmp_path, monkeypatch):
    real = supernet_module.SupernetEvaluator._train_and_validate

    def flaky(self, arch):
        if arch["d"] == [4] * 5:
            raise FloatingPointError("non-finite training loss nan")
        return real(self, arch)

    monkeypatch.setattr(supernet_module.SupernetEvaluator, "_train_and_validate", flaky)
    save = tmp_path / "run"
    stats = run(weights, save, "--sec_obj", "params")
    failed = stats["evaluations"]["failed"]
    assert len(failed) == 1 and failed[0]["arch"]["d"] == [4] * 5
    assert "non-finite training loss" in failed[0]["stats"]["error"]
    assert len(stats["archive"]) == 6 + 2 * 3 - 1
    folder = next((save / "failed").iterdir())
    assert (folder / f"{folder.name.split('_', 2)[2]}.error").read_text().startswith("FloatingPointError")
    frame = pd.read_csv(save / "archive.csv")
    assert (frame["status"] == "failed").sum() == 1


def test_constraints_keep_violators_off_the_front(weights, tmp_path):
    stats = run(weights, tmp_path / "run", "--sec_obj", "params", "--mmax", "8", "--n_doe", "8")
    entries = stats["evaluations"]["entries"]
    assert any(e["stats"]["macs"] > 8 for e in entries)  # the largest is in the initial design
    from search.pareto import non_dominated

    objectives = np.array([[100 - e["stats"]["top1"], e["stats"]["params"]] for e in entries])
    feasible = np.array([e["stats"]["macs"] <= 8 for e in entries])
    front = non_dominated(objectives, feasible=feasible)
    assert all(entries[i]["stats"]["macs"] <= 8 for i in front)
    later = [e for e in entries if e["iteration"] > 0]
    assert sum(e["stats"]["macs"] <= 8 for e in later) >= len(later) - 1


def test_latency_objective_on_the_chosen_systolic_array(weights, tmp_path):
    stats = run(weights, tmp_path / "run", "--sec_obj", "latency", "--systolic_array", "8x8")
    cost = CostModel(SupernetConfig(n_classes=10), array=(8, 8))
    for arch, _err, latency in stats["archive"]:
        assert latency == pytest.approx(cost(arch).latency)
    assert all(e["stats"]["latency"] == pytest.approx(cost(e["arch"]).latency) for e in stats["evaluations"]["entries"])


def test_single_objective_with_sec_obj_none(weights, tmp_path, capsys):
    stats = run(weights, tmp_path / "run", "--sec_obj", "none")
    assert stats["objectives"] == ["top1"]
    assert all(row[2] is None for row in stats["archive"])
    out = capsys.readouterr().out
    assert "final top architectures" in out
    assert f"python post_search.py --save {tmp_path / 'run' / 'final'} --expr {tmp_path / 'run'}/iter_2.stats" in out
    assert f"python train.py --subnet {tmp_path / 'run' / 'final'}/net-top1_0/net.subnet" in out


def test_the_default_search_is_bi_objective_and_ends_with_the_next_commands(weights, tmp_path, capsys):
    stats = run(weights, tmp_path / "run")
    assert stats["objectives"] == ["top1", "macs"]
    out = capsys.readouterr().out
    table = out[out.index("final front") :].splitlines()[1:]
    columns = table[0].split()
    macs = [float(line.split()[columns.index("macs")]) for line in table[1 : table.index("")]]
    assert macs == sorted(macs) and len(macs) >= 2  # a real front, sorted by the second objective
    assert "--prefer trade-off" in out and "net-trade-off_0/net.subnet --epochs 3 --export onnx" in out


@pytest.mark.parametrize("algorithm", ["random", "nsga2"])
def test_baselines_spend_the_same_budget_and_write_the_same_files(weights, tmp_path, algorithm):
    save = tmp_path / algorithm
    stats = run(weights, save, "--sec_obj", "macs", "--algorithm", algorithm)
    assert len(stats["archive"]) == 12 and stats["config"]["algorithm"] == algorithm
    assert (save / "archive.csv").is_file() and (save / "hv.png").is_file()


def test_patience_stops_on_a_flat_hypervolume():
    search = Search.__new__(Search)
    search.config = type("C", (), {"patience": 2})()
    search.state = SearchState(archive=None, hv_history=[1.0, 2.0, 2.0])
    assert not search.stalled()
    search.state.hv_history.append(2.0)
    assert search.stalled()
    search.state.hv_history.append(3.0)
    assert not search.stalled()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sec_obj", "flops"], "unknown objective 'flops'"),
        (["--lr", "40", "--ur", "32"], "--lr 40 is larger than --ur 32"),
        (["--predictor", "xgb"], "unknown predictor 'xgb'"),
        (["--algorithm", "bogus"], "unknown algorithm 'bogus'"),
        (["--n_iter", "abc"], "invalid int value"),
        (["--dataset", "cifar10", "--data", "/nonexistent"], "/nonexistent"),
        (["--n_classes", "7"], "--n_classes 7 but dataset digits has 10"),
        (["--systolic_array", "16by16"], "--systolic_array must be ROWSxCOLS"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(weights, tmp_path, capsys, extra, message):
    save = tmp_path / "run"
    assert run_cli(msunas.main, [*argv(weights, save), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not save.exists()


def test_unreadable_resume_and_occupied_save_are_refused(full_run, weights, tmp_path, capsys):
    save, _ = full_run
    before = {p: p.stat().st_mtime_ns for p in save.rglob("*")}
    assert run_cli(msunas.main, argv(weights, save, "--sec_obj", "macs")) == 2
    assert "already holds a search" in capsys.readouterr().err
    bad = tmp_path / "iter_3.stats"
    bad.write_text("{not json")
    assert run_cli(msunas.main, argv(weights, tmp_path / "x", "--resume", str(bad))) == 2
    assert "not readable JSON" in capsys.readouterr().err
    assert run_cli(msunas.main, argv(weights, tmp_path / "x", "--resume", str(tmp_path / "nope.stats"))) == 2
    assert "--resume file not found" in capsys.readouterr().err
    assert run_cli(msunas.main, argv(weights, save, "--sec_obj", "params", "--resume", str(save / "iter_1.stats"))) == 2
    assert "--sec_obj 'macs' (now 'params')" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in save.rglob("*")} == before

"""FlatNAS searches: `--first_obj top1_robust` with `--eval_robust`, alpha_norm refitted every iteration, resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest

import evaluator.supernet as supernet_module
import msunas
import post_search
from robustness.flatness import FlatnessConfig, measure_flatness
from search.config import SearchConfig, parse_config
from search.objectives import create_objective, fit_objectives
from search_space import create_search_space
from training.config import SharpnessConfig
from utils.cli import run_cli

from .test_search_loop import Killed, archive_summary, argv, kill_at_evaluation

FLAT = ["--first_obj", "top1_robust", "--eval_robust", "--n_perturb", "1", "--sigma_min", "0.1", "--sigma_max", "0.1"]
FLAT += ["--alpha", "0.6", "--sec_obj", "params", "--n_doe", "5", "--n_iter", "2"]


def run(weights, save, *extra):
    assert run_cli(msunas.main, argv(weights, save, *FLAT, *extra)) == 0
    return json.loads((save / "iter_2.stats").read_text())


def expected_alpha_norm(entries, iteration):
    """mean(top1_err) / mean(robustness) over the networks evaluated before `iteration` (the design at 0)."""
    used = [e["stats"] for e in entries if e["iteration"] < iteration or e["iteration"] == iteration == 0]
    return np.mean([100 - s["top1"] for s in used]) / np.mean([s["robustness"] for s in used])


@pytest.fixture(scope="module")
def flat_run(weights, tmp_path_factory):
    save = tmp_path_factory.mktemp("flat") / "run"
    return save, run(weights, save)


def test_every_network_records_its_flatness_and_the_archive_is_reweighted_each_iteration(flat_run):
    save, stats = flat_run
    assert stats["objectives"] == ["top1_robust", "params"]
    entries = stats["evaluations"]["entries"]
    assert all(e["stats"]["sigma"] == [0.1] and e["stats"]["robustness"] >= 0 for e in entries)
    assert any(e["stats"]["robustness"] > 0 for e in entries)
    for k in range(3):
        record = json.loads((save / f"iter_{k}.stats").read_text())
        alpha_norm = expected_alpha_norm(record["evaluations"]["entries"], k)
        assert record["alpha_norm"] == pytest.approx(alpha_norm, rel=1e-12)
        assert record["fitted_objectives"]["top1_robust"] == {"alpha": 0.6, "alpha_norm": record["alpha_norm"]}
        for (arch, value, params), e in zip(record["archive"], record["evaluations"]["entries"], strict=True):
            s = e["stats"]
            assert arch == e["arch"] and params == s["params"]
            assert value == pytest.approx(0.6 * (100 - s["top1"]) + alpha_norm * 0.4 * s["robustness"], rel=1e-12)
    assert "robustness" in stats["surrogate"]  # a second surrogate predicts robustness


def test_the_recorded_flatness_is_the_networks_own(weights, flat_run):
    _, stats = flat_run
    entry = stats["evaluations"]["entries"][0]
    cfg = supernet_module.SupernetEvalConfig(supernet_path=weights, n_bn_cal=32, device="cpu", seed=1, split_seed=1)
    evaluator = supernet_module.SupernetEvaluator(cfg)
    subnet = evaluator._subnet(create_search_space("ofa_mbv3").unrestricted().validate(entry["arch"]))
    flat = FlatnessConfig(sigma_min=0.1, sigma_max=0.1, n_perturb=1)
    measured = measure_flatness(subnet, evaluator.splits, "valid", entry["arch"]["r"], flat, seed=1)
    assert measured.robustness == pytest.approx(entry["stats"]["robustness"], abs=1e-9)


def test_a_resumed_flatnas_search_uses_the_values_an_uninterrupted_one_did(weights, flat_run, tmp_path, monkeypatch):
    _, reference = flat_run
    save = tmp_path / "run"
    real = supernet_module.SupernetEvaluator.evaluate_one
    kill_at_evaluation(monkeypatch, 6)  # in the middle of iteration 1
    with pytest.raises(Killed):
        msunas.main(argv(weights, save, *FLAT))
    monkeypatch.setattr(supernet_module.SupernetEvaluator, "evaluate_one", real)
    resumed = run(weights, save, "--resume", str(save / "iter_0.stats"))
    assert archive_summary(resumed) == archive_summary(reference)
    assert resumed["alpha_norm"] == reference["alpha_norm"] and resumed["archive"] == reference["archive"]
    assert resumed["hv_history"] == reference["hv_history"]


def test_post_search_prefers_top1_robust_and_robustness_as_the_search_defined_them(flat_run, tmp_path):
    save, stats = flat_run
    objective = fit_objectives(
        [create_objective("top1_robust", alpha=0.6)],
        [e["stats"] for e in stats["evaluations"]["entries"] if e["iteration"] < 2],
    )[0]
    entries = stats["evaluations"]["entries"]
    for prefer, key in [("top1_robust", objective.value), ("robustness", lambda s: s["robustness"])]:
        out = tmp_path / prefer
        command = ["--save", str(out), "--expr", str(save / "iter_2.stats"), "--prefer", prefer]
        assert run_cli(post_search.main, command) == 0
        chosen = json.loads((out / f"net-{prefer}_0" / "net.subnet").read_text())
        written = json.loads((out / f"net-{prefer}_0" / "net.stats").read_text())
        assert written["alpha_norm"] == stats["alpha_norm"] and written["alpha"] == 0.6
        assert written["top1_robust"] == pytest.approx(objective.value(written))
        front_best = min(key(e["stats"]) for e in entries if e["arch"] == chosen)
        assert front_best == pytest.approx(min(key(e["stats"]) for e in entries if _on_front(e, stats)))


def _on_front(entry, stats):
    """Whether `entry` is on the iteration's front of (top1_robust, params), as recorded in the archive rows."""
    rows = [(row[1], row[2]) for row in stats["archive"]]
    mine = rows[stats["evaluations"]["entries"].index(entry)]
    return not any(r[0] <= mine[0] and r[1] <= mine[1] and r != mine for r in rows)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--first_obj", "top1_robust"], "needs robustness, which the supernet evaluator measures only with"),
        (["--first_obj", "top1_robust", "--eval_robust", "--sigma_min", "0", "--sigma_max", "0"], "--sigma_min"),
        (["--first_obj", "top1_robust", "--eval_robust", "--n_perturb", "0"], "--n_perturb must be >= 1"),
        (["--first_obj", "top1_robust", "--eval_robust", "--alpha", "1.5"], "--alpha must lie in [0, 1]"),
        (["--first_obj", "robustness"], "--first_obj must be one of top1, top1_robust"),
        (["--sec_obj", "mCE"], "needs mCE, which the supernet evaluator measures only with --ood_eval"),
        (["--ood_eval", "--corruptions", "fogg"], "unknown corruption 'fogg'"),
        (["--n_epochs", "1", "--optim", "adam"], "--optim must be one of sgd, sam, asam, got 'adam'"),
        (["--adaptive"], "--adaptive needs --optim sam or asam"),
        (["--search_space", "cbnmobilenetv3", "--eval_robust"], "measure single-exit networks, not the ee"),
    ],
)
def test_bad_robustness_settings_are_one_line_and_write_nothing(weights, tmp_path, capsys, extra, message):
    save = tmp_path / "run"
    assert run_cli(msunas.main, argv(weights, save, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not save.exists()


def test_sam_fine_tuning_of_every_candidate_reaches_the_evaluator(weights, tmp_path):
    cfg = parse_config(argv(weights, tmp_path / "run", "--n_epochs", "1", "--optim", "asam", "--rho", "0.5"))
    config = supernet_module.SupernetEvaluator.arguments(cfg)["config"]
    assert config.optim.sharpness == SharpnessConfig(optim="asam", rho=0.5) and config.n_epochs == 1
    assert cfg.to_dict()["optim"] == "asam" and SearchConfig.from_dict(cfg.to_dict()) == cfg

"""`python -m oneshot.search` and `python -m oneshot.train` end to end on the embedded digits, with tiny budgets.

Every space x training strategy x search strategy runs (the three searches of one space and training strategy share
the supernet their title's first run trained); the found architecture keeps to the target, its numbers are the
lookup table's and the scorer's, and `msunas.py` searches the same supernet through its registered space.
"""

import dataclasses
import json

import pytest
import torch

import msunas
from hw.measure import measure_counts
from oneshot import search as oneshot_search
from oneshot import train as oneshot_train
from oneshot.config import OneShotSearchConfig
from oneshot.lut import lookup_table
from oneshot.results import SUPERNET_NAME
from oneshot.sampling import SAMPLE_STRATEGIES
from oneshot.spaces import ONESHOT_SPACES, create_oneshot_spec
from oneshot.strategies import SEARCH_STRATEGIES
from search_space import create_search_space, read_subnet
from utils.cli import dataclass_from_args, run_cli

SPACES = ONESHOT_SPACES.names(aliases=False)
SAMPLERS = SAMPLE_STRATEGIES.names(aliases=False)
STRATEGIES = SEARCH_STRATEGIES.names(aliases=False)
WIDTH, RESOLUTION = 0.25, 8
TINY = f"--width-mult {WIDTH} --resolution {RESOLUTION} --epochs 1 --steps-per-epoch 1 --batch-size 8 --n-bn-cal 8"
TINY += " --valid-limit 32 --random-iteration 3 --generation_num 2 --population 3 --parent-num 2 --search-steps 2"
TINY += " --device cpu --seed 3"


def midway_target(space: str) -> float:
    """A MACs target (millions) halfway between the space's smallest and largest path at the tiny settings."""
    lut = lookup_table(create_oneshot_spec(space, "cifar", WIDTH), 10, RESOLUTION)
    return (lut.smallest("macs")[1] + lut.largest("macs")[1]) / 2e6


def search(save, title, *flags):
    argv = ["--save", str(save), "--title", title, *TINY.split(), *flags]
    return run_cli(oneshot_search.main, argv)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("space", SPACES)
def test_every_space_training_and_search_strategy_runs_and_keeps_to_the_target(space, sampler, tmp_path):
    """One strategy per combination through the command line (each strategy four times), the others on its supernet."""
    target = midway_target(space)
    written = STRATEGIES[(SPACES.index(space) + SAMPLERS.index(sampler)) % len(STRATEGIES)]
    argv = ["--search-space", space, "--sample-strategy", sampler, "--target-hc", f"{target:.6f}"]
    assert search(tmp_path, "t", *argv, "--search-strategy", written) == 0
    folder = tmp_path / "t"
    card = json.loads((folder / "supernet.json").read_text())
    assert card["train_config"]["sample_strategy"] == sampler and card["search_space"] == space
    assert card["log"]["steps"] == 1
    registered = create_search_space(space).unrestricted()
    out = folder / written
    arch = read_subnet(out / "net.subnet", registered)
    stats = json.loads((out / "net.stats").read_text())
    record = json.loads((out / "search.json").read_text())
    assert arch["r"] == RESOLUTION and record["arch"] == arch and stats["strategy"] == written
    assert stats["macs"] <= target + 1e-9 and 0 <= stats["top1"] <= 100
    costs = registered.cost_function(10, WIDTH)(arch)
    assert stats["params"] == pytest.approx(costs.params) and stats["macs"] == pytest.approx(costs.macs)
    assert stats["flops"] == pytest.approx(2 * costs.macs)
    assert (out / "search.png").stat().st_size > 0
    parsed = oneshot_search.build_parser().parse_args(["--save", str(tmp_path), "--title", "t", *TINY.split(), *argv])
    experiment = oneshot_search.prepare(dataclass_from_args(OneShotSearchConfig, parsed))  # the title's supernet
    for strategy in STRATEGIES:
        run = dataclasses.replace(experiment, config=experiment.config.replace(search_strategy=strategy))
        outcome = oneshot_search.search(run, torch.device("cpu"))
        assert outcome.strategy == strategy and outcome.best_cost <= experiment.config.target and outcome.history


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    """A finished spos search (uniform supernet, evolution) with its results folder."""
    save = tmp_path_factory.mktemp("oneshot")
    assert search(save, "spos", "--search-space", "spos", "--search-strategy", "evolution") == 0
    return save


def test_the_found_network_is_what_the_record_says_and_scored_on_validation(found):
    out = found / "spos" / "evolution"
    record = json.loads((out / "search.json").read_text())
    space = create_search_space("spos").unrestricted()
    network = space.build_network(record["arch"], 10, WIDTH)
    counts = measure_counts(network, (3, RESOLUTION, RESOLUTION))
    assert record["params"] == counts.params / 1e6 and record["macs"] == counts.macs / 1e6
    best = max(record["outcome"]["history"], key=lambda s: s["top1"])
    assert record["top1"] == best["top1"] == record["outcome"]["best_top1"]
    assert record["split"] == {"dataset": "digits", "seed": 3, "vld_size": record["split"]["vld_size"]}


def test_the_same_seed_gives_the_same_search(found, tmp_path):
    assert search(tmp_path, "spos", "--search-space", "spos", "--search-strategy", "evolution") == 0
    a, b = (json.loads((s / "spos" / "evolution" / "search.json").read_text()) for s in (found, tmp_path))
    assert a["outcome"]["history"] == b["outcome"]["history"]
    weights = [torch.load(s / "spos" / SUPERNET_NAME, weights_only=True)["state_dict"] for s in (found, tmp_path)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_oneshot_train_trains_the_found_architecture_from_scratch(found):
    argv = ["--save", str(found), "--title", "spos", "--search-strategy", "evolution", "--epochs", "1"]
    assert run_cli(oneshot_train.main, [*argv, "--device", "cpu", "--batch_size", "16"]) == 0
    out = found / "spos" / "evolution"
    stats = json.loads((out / "net.stats").read_text())
    assert 0 <= stats["test_top1"] <= 100 and stats["search"]["strategy"] == "evolution"
    assert (out / "ckpt.pth").is_file()


def test_msunas_searches_a_oneshot_supernet_through_its_registered_space(found, tmp_path):
    argv = ["--search_space", "spos", "--supernet_path", str(found / "spos" / SUPERNET_NAME), "--width_mult", "0.25"]
    argv += ["--lr", "8", "--ur", "8", "--n_doe", "4", "--iterations", "1", "--n_iter", "2", "--pop_size", "8"]
    argv += ["--n_gen", "2", "--predictor", "carts", "--n_bn_cal", "8", "--device", "cpu", "--save", str(tmp_path)]
    assert run_cli(msunas.main, argv) == 0
    stats = json.loads((tmp_path / "iter_1.stats").read_text())
    assert len(stats["archive"]) == 6 and stats["config"]["search_space"] == "spos"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--search-space", "nasnet"], "unknown --search-space 'nasnet'"),
        (["--sample-strategy", "greedy"], "unknown --sample-strategy 'greedy'"),
        (["--search-strategy", "rl"], "unknown --search-strategy 'rl'"),
        (["--target-hc", "0.0001"], "is below the smallest path's macs"),
        (["--population", "2", "--parent-num", "3"], "--population must be >= --parent-num"),
        (["--dataset", "cifar10", "--data", "/nonexistent"], "/nonexistent"),
        (["--title", "a/b"], "--title must be a plain folder name"),
        (["--hc-metric", "joules"], "unknown --hc-metric 'joules'"),
        (["--epochs", "x"], "invalid int value"),
    ],
)
def test_bad_inputs_are_one_line_exit_2_before_any_training(flags, message, tmp_path, capsys):
    assert search(tmp_path, "bad", "--search-space", "spos", *flags) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad" / SUPERNET_NAME).exists()


def test_a_corrupt_or_foreign_supernet_is_refused_in_one_line(found, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    assert search(tmp_path, "c", "--search-space", "spos", "--supernet", str(corrupt)) == 2
    assert "corrupt or unreadable checkpoint" in capsys.readouterr().err
    spos = str(found / "spos" / SUPERNET_NAME)
    assert search(tmp_path, "c", "--search-space", "fbnet", "--supernet", spos) == 2
    assert "does not fit the supernet being built" in capsys.readouterr().err


def test_a_title_holding_another_supernet_is_never_overwritten(found, capsys):
    path = found / "spos" / SUPERNET_NAME
    before = path.read_bytes()
    assert search(found, "spos", "--search-space", "spos", "--epochs", "2") == 2
    assert "was trained with other settings (--epochs)" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_oneshot_train_needs_a_finished_search(tmp_path, capsys):
    assert run_cli(oneshot_train.main, ["--save", str(tmp_path), "--title", "none"]) == 2
    assert "run python -m oneshot.search first" in capsys.readouterr().err


def test_msunas_on_a_oneshot_space_without_weights_says_how_to_train_them(tmp_path, capsys):
    assert run_cli(msunas.main, ["--search_space", "fbnet", "--save", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "--supernet_path is required" in err and "python -m oneshot.search" in err

"""The `darts` evaluator: a DARTS cell search per skeleton, the found network trained, measured, saved, reloaded."""

import json
from dataclasses import replace

import pytest
import torch

from data import SplitSpec
from dnas.darts import read_genotype
from dnas.inner import InnerConfig
from evaluator import EVALUATORS, EvaluatorSpec, read_result
from evaluator.darts import DartsEvalConfig, load_found_network, search_halves
from search.config import SearchConfig
from search_space.darts import ImageSequence
from training.evaluate import accuracy
from utils.errors import UsageError

SPACES = {"darts": 8, "darts1d": 4}
"""Each space at a resolution that makes its smallest skeleton quick: 8x8 images, sequences of 16 steps."""


def search_config(space: str = "darts", **settings) -> SearchConfig:
    """A search over `space` at its test resolution: one epoch of everything, DARTS on 128 images of each half."""
    r = SPACES[space]
    base = {"search_space": space, "lr": r, "ur": r, "n_epochs": 1, "device": "cpu", "sec_obj": "macs"}
    base["inner"] = InnerConfig(inner_images=128)
    return SearchConfig(**{**base, **settings})


def evaluated_in(folder, search: SearchConfig):
    """The smallest skeleton of `search`'s space evaluated into `folder/net_0` by a freshly built evaluator."""
    evaluator = EvaluatorSpec("darts", EVALUATORS.get("darts").arguments(search)).build()
    (result,) = evaluator.evaluate([search.space().smallest()], [folder / "net_0"])
    return evaluator, result, folder / "net_0"


@pytest.fixture(scope="module", params=list(SPACES))
def evaluated(request, tmp_path_factory):
    torch.manual_seed(0)
    return evaluated_in(tmp_path_factory.mktemp(request.param), search_config(request.param, save_ckpt=True))


def test_the_found_network_is_measured_and_its_files_written(evaluated):
    evaluator, result, out = evaluated
    space = evaluator.space
    assert result.ok and 0 <= result.top1 <= 100 and read_result(out, space).stats() == result.stats()
    genotype = read_genotype(json.loads((out / "genotype.json").read_text()))
    measured = space.measure(space.network(result.arch, 10, genotype), result.arch)
    assert (result.params, result.macs, result.activations) == (measured.params, measured.macs, measured.activations)
    assert (result.extras["peak_act"], result.extras["latency"]) == (measured.peak_act, measured.latency)
    bound = space.cost_function(10)(result.arch)  # the reference network's costs bound what DARTS finds
    assert result.params <= bound.params and result.macs <= bound.macs


def test_the_checkpoint_rebuilds_the_found_network(evaluated):
    evaluator, result, out = evaluated
    found = load_found_network(out / "ckpt.pth")
    assert found.arch == result.arch and found.space.name == evaluator.space.name and found.n_classes == 10
    assert found.genotype == read_genotype(json.loads((out / "genotype.json").read_text()))
    assert found.split == SplitSpec("digits", 0, 300, str(out / "ckpt.pth"))
    assert isinstance(found.network[0], ImageSequence) == (found.space.cells == "1d")
    r = found.space.resolution(found.arch)
    assert accuracy(found.network, evaluator.splits, "valid", r) == result.top1


def test_the_same_skeleton_and_seed_give_the_same_result(evaluated, tmp_path):
    evaluator, result, out = evaluated
    _, again, again_out = evaluated_in(tmp_path, search_config(evaluator.space.name))
    assert {**again.stats(), "wall_time_s": 0} == {**result.stats(), "wall_time_s": 0}
    assert (again_out / "genotype.json").read_text() == (out / "genotype.json").read_text()


def test_the_search_halves_split_the_training_images_by_class(evaluated):
    evaluator, _, _ = evaluated
    train = evaluator.splits.train
    halves = search_halves(evaluator.splits, 0)
    assert (len(halves.train), len(halves.valid)) == (len(train) - len(train) // 2, len(train) // 2)
    counts = [torch.bincount(h.labels, minlength=10) for h in (halves.train, halves.valid)]
    assert (counts[0] - counts[1]).abs().max() <= 1
    assert torch.equal(
        torch.sort(torch.cat([halves.train.labels, halves.valid.labels])).values, train.labels.sort().values
    )


def test_a_failed_evaluation_is_recorded(evaluated, tmp_path):
    evaluator, _, _ = evaluated
    bad = {"stages": [9, 0, 0], "nodes": 2, "channels": 8, "r": 8}
    (result,) = evaluator.evaluate([bad], [tmp_path / "net_0"])
    assert not result.ok and "stages[0] = 9" in result.error
    assert (tmp_path / "net_0" / "net_0.error").read_text().startswith("InvalidArchitecture: stages[0] = 9")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_epochs": 0}, "trains each found network from fresh weights: --n_epochs must be >= 1, got 0"),
        ({"sec_obj": "tiny_ml"}, "--sec_obj tiny_ml is not a cost"),
        ({"supernet_path": "/nonexistent/w.pth"}, "--supernet_path /nonexistent/w.pth is not used"),
        ({"search_space": "ofa_mbv3", "evaluator": "darts"}, "--search_space ofa_mbv3 has none"),
        ({"dataset": "nodata"}, "unknown dataset 'nodata'"),
    ],
)
def test_bad_settings_are_one_line_usage_errors(settings, message):
    with pytest.raises(UsageError, match=message) as err:
        EVALUATORS.get("darts").arguments(replace(search_config(), **settings))
    assert "\n" not in str(err.value)


def test_the_search_settings_come_from_the_inner_flags():
    config = DartsEvalConfig(inner_epochs=3, inner_strength=0.5, inner_cost="params", inner_lr=0.1, seed=4)
    settings = config.validate().search_settings()
    assert {k: settings[k] for k in ("nas_budget", "arch_learning_rate", "seed")} == {
        "nas_budget": 3,
        "arch_learning_rate": 0.1,
        "seed": 4,
    }
    assert (settings["nas_optimization_mode"], settings["resource_weight"]) == ("params", 0.5)
    unpenalised = DartsEvalConfig(inner_strength=0.0, inner_cost="tiny_ml").validate().search_settings()
    assert unpenalised["nas_optimization_mode"] == "none"
    for bad, message in [({"inner_epochs": 0}, "--inner_epochs >= 1"), ({"inner_images": 1}, "--inner_images must")]:
        with pytest.raises(UsageError, match=message):
            DartsEvalConfig(**bad).validate()


def test_a_checkpoint_of_something_else_is_refused(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "arch": {"ks": [3]}}, path)
    with pytest.raises(
        UsageError, match=f"{path} is not the checkpoint of a darts evaluation: it lacks 'search_space'"
    ):
        load_found_network(path)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "search_space": "ofa_mbv3"}, path)
    with pytest.raises(UsageError, match="does not hold a network a darts evaluation found: --evaluator darts"):
        load_found_network(path)

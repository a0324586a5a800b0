"""The validation split is the supernet's (from its card), whatever the search's or train.py's `--seed`.

The supernet here is untrained, but its weights and card are written by `supernets.train`'s own code, and its
trainer's training split is exactly the images it would have trained on.
"""

import argparse
import json
import logging

import pytest
import torch

import msunas
import train
from bench import predictors
from data import SplitSpec, create_dataset
from evaluator.supernet import SupernetEvalConfig, SupernetEvaluator
from postsearch.export import load_inheritance
from search.config import SearchConfig
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from supernets.card import card_path, card_split
from supernets.checkpoint import save_supernet_weights
from supernets.train import SupernetTrainer, TrainConfig
from training.config import NetTrainConfig
from training.trainer import NetTrainer
from utils.cli import run_cli
from utils.errors import UsageError
from utils.io import write_json

SUPERNET = TrainConfig(dataset="digits", resolution=16, seed=0, n_bn_cal=32, n_card_random=0)
ARCH = OFAMobileNetV3Space(lr=16, ur=16).smallest()
OVERLAP_BEFORE_THE_FIX = 238  # of the 300 images a --seed 1 search carved, the count


@pytest.fixture(scope="module")
def supernet(tmp_path_factory):
    """The trainer of a supernet (seed 0) whose weights and card are on disk, as `python -m supernets.train` writes."""
    trainer = SupernetTrainer(SUPERNET, tmp_path_factory.mktemp("supernet"), "cpu")
    save_supernet_weights(trainer.net, trainer.weights_path)
    write_json(trainer.card_path, trainer.card(train_time_s=0.0))
    return trainer


@pytest.fixture(scope="module")
def trained_on(supernet):
    """The images the supernet trains on."""
    return images(supernet.splits.train)


def images(image_set) -> set[bytes]:
    """Each image's bytes (the 1797 digits are distinct, so equal bytes are the same image)."""
    return {image.numpy().tobytes() for image in image_set.images}


def search(weights, tmp_path, **flags) -> SearchConfig:
    return SearchConfig(save=str(tmp_path / "run"), supernet_path=str(weights), lr=16, ur=16, device="cpu", **flags)


def test_the_card_records_the_split_the_supernet_never_trained_on(supernet):
    split = card_split(supernet.weights_path, "digits")
    assert split == SplitSpec("digits", 0, 300, f"its card {supernet.card_path}")
    assert split.describe() == f"300 images, seed 0, from its card {supernet.card_path}"
    assert card_split(supernet.weights_path, "cifar10") is None  # trained on another dataset: no split of cifar10


def test_a_search_with_another_seed_validates_on_images_the_supernet_never_saw(supernet, trained_on, tmp_path):
    config = SupernetEvaluator.arguments(search(supernet.weights_path, tmp_path, seed=1, n_bn_cal=16))["config"]
    assert (config.split_seed, config.vld_size, config.seed) == (0, 300, 1)  # --seed drives the calibration only
    valid = SupernetEvaluator(config).splits.valid
    assert len(valid) == 300 and not images(valid) & trained_on
    carved_with_the_search_seed = create_dataset("digits", seed=1).valid  # what the search validated on before
    assert len(images(carved_with_the_search_seed) & trained_on) == OVERLAP_BEFORE_THE_FIX


def test_an_explicit_vld_size_must_be_the_supernets(supernet, tmp_path, capsys):
    same = SupernetEvaluator.arguments(search(supernet.weights_path, tmp_path, seed=1, vld_size=300))["config"]
    assert (same.split_seed, same.vld_size) == (0, 300)
    argv = ["--save", str(tmp_path / "run"), "--supernet_path", str(supernet.weights_path), "--seed", "1"]
    assert run_cli(msunas.main, [*argv, "--vld_size", "200", "--lr", "16", "--ur", "16", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --vld_size 200 differs from the supernet's validation split (300 images, seed 0, from its card "
        f"{supernet.card_path}); leave it out"
    ]
    assert not (tmp_path / "run").exists()


def test_weights_without_a_card_carve_the_split_with_the_search_seed(supernet, tmp_path, caplog):
    weights = tmp_path / "released.pth"
    weights.write_bytes(supernet.weights_path.read_bytes())
    with caplog.at_level(logging.INFO, logger="supernets.card"):
        config = SupernetEvaluator.arguments(search(weights, tmp_path, seed=1, vld_size=200))["config"]
    assert (config.split_seed, config.vld_size, config.seed) == (1, 200, 1)
    assert f"{weights} has no card: the validation split is carved with --seed" in caplog.text


def test_a_malformed_card_is_a_usage_error_naming_it(supernet, tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(supernet.weights_path.read_bytes())
    card = json.loads(supernet.card_path.read_text())
    write_json(card_path(weights), {**card, "train_config": {**card["train_config"], "seed": "zero"}})
    with pytest.raises(UsageError, match=f"its card {card_path(weights)} records a malformed validation split"):
        card_split(weights, "digits")
    card_path(weights).write_text("{oops")
    with pytest.raises(UsageError, match=f"{card_path(weights)} is not a readable JSON supernet card file"):
        card_split(weights, "digits")


def test_post_search_and_train_py_keep_the_supernets_split(supernet, trained_on, tmp_path, capsys):
    inheritance = load_inheritance(str(supernet.weights_path), search(supernet.weights_path, tmp_path, seed=1))
    folder = tmp_path / "net-trade-off_0"
    folder.mkdir()
    (folder / "net.subnet").write_text(json.dumps(ARCH))
    inheritance.write(folder / "net.inherited", ARCH)
    inherited = torch.load(folder / "net.inherited", weights_only=True)
    assert inherited["split"] == {"dataset": "digits", "seed": 0, "vld_size": 300}

    fine_tune = NetTrainConfig(subnet=str(folder / "net.subnet"), epochs=0, n_bn_cal=0, seed=1, device="cpu")
    trainer = NetTrainer(fine_tune)
    assert trainer.split == SplitSpec("digits", 0, 300, str(folder / "net.inherited"))
    assert not images(trainer.splits.valid) & trained_on
    stats = trainer.run()
    assert stats["split"] == inherited["split"] and stats["seed"] == 1
    assert torch.load(folder / "ckpt.pth", weights_only=True)["split"] == inherited["split"]

    again = NetTrainer(
        NetTrainConfig(
            subnet=fine_tune.subnet, init=str(folder / "ckpt.pth"), save=str(tmp_path / "again"), epochs=0, seed=2
        )
    )
    assert (again.split.seed, again.split.vld_size) == (0, 300)
    assert images(again.splits.valid) == images(trainer.splits.valid)

    before = sorted(p.name for p in folder.iterdir())
    capsys.readouterr()
    assert run_cli(train.main, ["--subnet", fine_tune.subnet, "--vld_size", "200", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --vld_size 200 differs from the starting weights' validation split (300 images, seed 0, from "
        f"{folder / 'net.inherited'}); leave it out"
    ]
    assert sorted(p.name for p in folder.iterdir()) == before


def test_the_predictor_benchmark_repeats_on_the_supernets_split(supernet, monkeypatch):
    seen = []
    real = SupernetEvalConfig.dataset_splits

    def spy(config):
        seen.append((config.split_seed, config.vld_size, config.seed))
        return real(config)

    monkeypatch.setattr(SupernetEvalConfig, "dataset_splits", spy)
    args = argparse.Namespace(
        weights=str(supernet.weights_path),
        n_archs=2,
        n_repeat=1,
        n_bn_cal=16,
        valid_limit=8,
        seed=3,
        backend="sequential",
        n_workers=1,
    )
    table = predictors.build_table(args)
    assert (len(table["rows"]), len(table["repeat"])) == (2, 1)
    assert table["settings"]["split"] == {"dataset": "digits", "seed": 0, "vld_size": 300}
    assert seen == [(0, 300, 3), (0, 300, 4)]  # the repeat redraws the calibration images only

import dataclasses
import json

import pytest
import torch
from tqdm import tqdm

from data import SplitSpec
from supernets.card import card_split
from supernets.checkpoint import load_supernet_weights
from supernets.ofa_mbv3 import build_supernet
from supernets.train import SupernetTrainer, TrainConfig, ensure_supernet, main
from training.config import OptimConfig
from utils.cli import flat_record, run_cli
from utils.errors import UsageError

TINY = TrainConfig(
    dataset="digits",
    resolution=16,
    epochs=2,
    optim=OptimConfig(lr=0.05, batch_size=32),
    limit_train=64,
    n_bn_cal=64,
    n_card_random=2,
    seed=3,
)


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_training_writes_weights_card_and_checkpoint(tmp_path):
    path = SupernetTrainer(TINY, tmp_path, "cpu").run()
    assert path == tmp_path / "ofa_mbv3_d234_e346_k357_w1.0-digits-r16.pth"
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["dataset"] == "digits" and card["resolution"] == 16 and card["epochs"] == 2 and card["seed"] == 3
    assert card["train_images"] == 64 and card["valid_images"] == 300
    acc = card["accuracy"]
    assert acc["split"] == "valid" and acc["random"]["n"] == 2
    for value in (acc["smallest"], acc["largest"], acc["random"]["min"], acc["random"]["max"]):
        assert 0.0 <= value <= 100.0
    assert card["train_config"] == flat_record(TINY)  # its exact keys: tests/training/test_config.py
    split = card_split(path, "digits")  # the images it never trained on, for whoever validates its subnets
    assert split == SplitSpec("digits", 3, 300, f"its card {path.with_suffix('.json')}")
    assert torch.load(path.with_suffix(".train.pth"), weights_only=True)["train_config"] == card["train_config"]
    net = build_supernet(TrainConfig().supernet_config(10))
    load_supernet_weights(net, path)  # the trained file loads like an OFA release


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    whole = SupernetTrainer(TINY, tmp_path / "whole", "cpu").run()
    interrupted = SupernetTrainer(TINY, tmp_path / "cut", "cpu")
    with tqdm(disable=True) as bar:
        interrupted.train_epoch(bar)
    interrupted.save_checkpoint()
    del interrupted  # the process "dies" after epoch 1
    resumed = SupernetTrainer(TINY, tmp_path / "cut", "cpu").run(resume=True)
    a, b = _weights(whole), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (
        json.loads(whole.with_suffix(".json").read_text())["accuracy"]
        == json.loads(resumed.with_suffix(".json").read_text())["accuracy"]
    )


def test_resume_refuses_a_checkpoint_of_another_configuration(tmp_path):
    trainer = SupernetTrainer(TINY, tmp_path, "cpu")
    trainer.save_checkpoint()
    other = dataclasses.replace(TINY, optim=dataclasses.replace(TINY.optim, lr=0.01))
    with pytest.raises(UsageError, match="written by a run with another configuration"):
        SupernetTrainer(other, tmp_path, "cpu").run(resume=True)


def test_resume_takes_a_checkpoint_that_predates_a_setting_as_its_default(tmp_path):
    trainer = SupernetTrainer(TINY, tmp_path, "cpu")
    trainer.save_checkpoint()
    state = torch.load(trainer.checkpoint_path, weights_only=True)
    for key in ("optim", "rho", "adaptive"):  # written before SAM existed
        del state["train_config"][key]
    torch.save(state, trainer.checkpoint_path)
    SupernetTrainer(TINY, tmp_path, "cpu").resume()
    sam = dataclasses.replace(TINY, optim=dataclasses.replace(TINY.optim, lr=0.01))
    with pytest.raises(UsageError, match="another configuration"):
        SupernetTrainer(sam, tmp_path, "cpu").resume()


def test_ensure_supernet_reuses_cached_weights(tmp_path):
    cfg = dataclasses.replace(TINY, epochs=1)
    path = ensure_supernet(cfg, tmp_path, "cpu")
    stamp = path.stat().st_mtime_ns
    assert ensure_supernet(cfg, tmp_path, "cpu") == path
    assert path.stat().st_mtime_ns == stamp


def test_elastic_resolution_is_named_and_validated():
    assert TrainConfig(resolution=32, min_resolution=24).resolutions == (24, 28, 32)
    assert TrainConfig(resolution=32, min_resolution=24).weights_name() == "ofa_mbv3_d234_e346_k357_w1.0-digits-r24-32"
    with pytest.raises(UsageError, match="--min_resolution"):
        TrainConfig(resolution=32, min_resolution=40).validate()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--optim", "sam"], "supernet training supports --optim sgd only"),
        (["--optim", "asam", "--rho", "0.1"], "supernet training supports --optim sgd only"),
        (["--optim", "adam"], "--optim must be one of sgd, sam, asam, got 'adam'"),
        (["--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["--dataset", "cifar10", "--data", "/nonexistent/cifar"], "/nonexistent/cifar"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--init", "/nonexistent/ofa.pth"], "checkpoint not found: /nonexistent/ofa.pth"),
    ],
)
def test_cli_bad_usage_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert run_cli(main, [*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_never_overwrites_existing_weights(tmp_path, capsys):
    argv = ["--resolution", "16", "--epochs", "1", "--limit_train", "32", "--batch_size", "16", "--out", str(tmp_path)]
    existing = tmp_path / "ofa_mbv3_d234_e346_k357_w1.0-digits-r16.pth"
    existing.write_bytes(b"precious")
    assert run_cli(main, argv) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert existing.read_bytes() == b"precious"

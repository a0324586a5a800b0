import pytest
import torch

import train
from evaluator.supernet import SupernetEvalConfig
from supernets import train as supernet_train
from supernets.train import TrainConfig
from training.config import NetTrainConfig, OptimConfig
from training.finetune import FineTuneConfig
from utils.cli import dataclass_from_args, dataclass_from_record, flat_record
from utils.errors import UsageError

# What train.py wrote as `config` (in net.stats and net.train.pth) before the training fields were nested.
NET_TRAIN_RECORD = {
    "subnet": "run/net.subnet",
    "init": None,
    "from_scratch": False,
    "save": None,
    "dataset": "digits",
    "data": None,
    "n_classes": None,
    "vld_size": 100,
    "width_mult": None,
    "epochs": 3,
    "lr": 0.05,
    "momentum": 0.8,
    "weight_decay": 1e-4,
    "label_smoothing": 0.0,
    "batch_size": 32,
    "eval_batch_size": 256,
    "n_bn_cal": 500,
    "seed": 4,
    "device": "auto",
    "num_workers": 0,
    "resume": False,
    "export": "onnx",
}
NET_TRAIN = NetTrainConfig(
    subnet="run/net.subnet",
    vld_size=100,
    epochs=3,
    optim=OptimConfig(lr=0.05, momentum=0.8, weight_decay=1e-4, label_smoothing=0.0, batch_size=32),
    seed=4,
    export="onnx",
)


def test_each_user_has_its_own_default_optimiser_settings():
    shared = {"momentum": 0.9, "weight_decay": 3e-5, "label_smoothing": 0.1, "batch_size": 64}
    assert OptimConfig() == OptimConfig(lr=0.01, **shared)
    assert NetTrainConfig().optim == OptimConfig(lr=0.01, **shared)
    assert FineTuneConfig(epochs=1).optim == OptimConfig(lr=0.01, **shared)
    assert SupernetEvalConfig(supernet_path="w.pth").optim == OptimConfig(lr=0.01, **shared)
    assert TrainConfig().optim == OptimConfig(lr=0.05, **shared)


def test_net_train_config_serialises_to_the_flat_record_and_back():
    record = {k: v for k, v in NET_TRAIN.to_dict().items() if k != "search_space"}  # the one key added since
    assert record == NET_TRAIN_RECORD and NET_TRAIN.to_dict()["search_space"] == "ofa_mbv3"
    assert list(record) == list(NET_TRAIN_RECORD)  # the same keys in the same order as before
    assert dataclass_from_record(NetTrainConfig, NET_TRAIN_RECORD) == NET_TRAIN
    assert NET_TRAIN.differences(NET_TRAIN_RECORD) == []
    changed = {**NET_TRAIN_RECORD, "lr": 0.1, "device": "cpu", "export": None}
    assert NET_TRAIN.differences(changed) == ["lr"]  # device and export may change on resume


def test_supernet_train_config_serialises_to_the_flat_record_and_back():
    cfg = TrainConfig(epochs=2, optim=OptimConfig(lr=0.1, batch_size=16), limit_train=64, seed=3)
    record = flat_record(cfg)
    assert record == {
        "dataset": "digits",
        "data": None,
        "resolution": 32,
        "min_resolution": None,
        "epochs": 2,
        "batch_size": 16,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 3e-5,
        "label_smoothing": 0.1,
        "kd_ratio": 1.0,
        "n_random": 2,
        "warmup_epochs": 1.0,
        "vld_size": None,
        "seed": 3,
        "width_mult": 1.0,
        "dropout": 0.1,
        "limit_train": 64,
        "n_bn_cal": 500,
        "n_card_random": 20,
        "init": None,
    }
    assert dataclass_from_record(TrainConfig, record) == cfg


def test_flags_stay_flat_with_the_same_defaults():
    assert dataclass_from_args(NetTrainConfig, train.build_parser().parse_args([])) == NetTrainConfig()
    args = train.build_parser().parse_args(["--subnet", "n.subnet", "--lr", "0.2", "--batch_size", "16"])
    expected = NetTrainConfig(subnet="n.subnet", optim=OptimConfig(lr=0.2, batch_size=16))
    assert dataclass_from_args(NetTrainConfig, args) == expected
    supernet_args = supernet_train.build_parser().parse_args(["--momentum", "0.5"])
    assert (supernet_args.lr, supernet_args.momentum, supernet_args.batch_size) == (0.05, 0.5, 64)
    assert dataclass_from_args(TrainConfig, supernet_args).optim == OptimConfig(lr=0.05, momentum=0.5)


@pytest.mark.parametrize(
    ("optim", "message"),
    [
        (OptimConfig(lr=0), "--lr must be > 0"),
        (OptimConfig(momentum=1.0), "--momentum must lie in [0, 1)"),
        (OptimConfig(weight_decay=-1e-5), "--weight_decay must be >= 0"),
        (OptimConfig(label_smoothing=1.0), "--label_smoothing must lie in [0, 1)"),
        (OptimConfig(batch_size=1), "--batch_size must be >= 2"),
    ],
)
def test_every_user_validates_the_shared_settings(optim, message, tmp_path):
    weights = tmp_path / "w.pth"
    weights.touch()
    for cfg in (
        optim,
        NetTrainConfig(subnet="n.subnet", optim=optim),
        TrainConfig(optim=optim),
        SupernetEvalConfig(supernet_path=str(weights), optim=optim),
    ):
        with pytest.raises(UsageError) as err:
            cfg.validate()
        assert str(err.value) == message


def test_sgd_follows_the_settings():
    optimizer = OptimConfig(lr=0.2, momentum=0.7, weight_decay=1e-3).sgd(torch.nn.Linear(2, 2).parameters())
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (0.2, 0.7, 1e-3, True)

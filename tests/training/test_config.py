import dataclasses

import pytest
import torch

import train
from evaluator.supernet import SupernetEvalConfig
from robustness.sam import SAM
from supernets import train as supernet_train
from supernets.train import TrainConfig
from training.config import OPTIM_HELP, NetTrainConfig, OptimConfig, SharpnessConfig
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


ADDED_SINCE = {"search_space": "ofa_mbv3", "optim": "sgd", "rho": 0.05, "adaptive": False}
ADDED_SINCE |= {"eval_robust": False, "sigma_min": 0.05, "sigma_max": 0.05, "sigma_step": 0.0, "n_perturb": 20}
ADDED_SINCE |= {"ood_eval": False, "corruptions": "all", "ood_data": None, "ood_reference": None}
"""The keys of `NetTrainConfig.to_dict()` added since `NET_TRAIN_RECORD`, with their defaults."""


def test_net_train_config_serialises_to_the_flat_record_and_back():
    record = {k: v for k, v in NET_TRAIN.to_dict().items() if k not in ADDED_SINCE}
    assert record == NET_TRAIN_RECORD and {k: NET_TRAIN.to_dict()[k] for k in ADDED_SINCE} == ADDED_SINCE
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
        "optim": "sgd",
        "rho": 0.05,
        "adaptive": False,
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
    cfg = OptimConfig(lr=0.2, momentum=0.7, weight_decay=1e-3)
    for optimizer in (cfg.sgd(torch.nn.Linear(2, 2).parameters()), cfg.optimizer(torch.nn.Linear(2, 2).parameters())):
        assert type(optimizer) is torch.optim.SGD
        group = optimizer.param_groups[0]
        assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (0.2, 0.7, 1e-3, True)


@pytest.mark.parametrize(
    ("sharpness", "adaptive"),
    [
        (SharpnessConfig(optim="sam"), False),
        (SharpnessConfig(optim="sam", adaptive=True), True),
        (SharpnessConfig(optim="asam"), True),
        (SharpnessConfig(optim="asam", adaptive=True), True),
    ],
)
def test_sam_and_asam_wrap_the_same_sgd(sharpness, adaptive):
    cfg = OptimConfig(lr=0.2, momentum=0.7, weight_decay=1e-3, sharpness=dataclasses.replace(sharpness, rho=0.1))
    assert cfg.validate() is cfg and cfg.sharpness.is_sam and cfg.sharpness.is_adaptive == adaptive
    optimizer = cfg.optimizer(torch.nn.Linear(2, 2).parameters())
    assert isinstance(optimizer, SAM) and type(optimizer.base) is torch.optim.SGD
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (0.2, 0.7, 1e-3, True)
    assert (group["rho"], group["adaptive"]) == (0.1, adaptive)


def test_plain_sgd_is_neither_sam_nor_adaptive():
    assert not SharpnessConfig().is_sam and not SharpnessConfig().is_adaptive
    assert SharpnessConfig().checks() == dict.fromkeys(SharpnessConfig().checks(), True)


@pytest.mark.parametrize(
    ("sharpness", "message"),
    [
        (SharpnessConfig(optim="adam"), "--optim must be one of sgd, sam, asam, got 'adam'"),
        (SharpnessConfig(optim="sam", rho=0.0), "--rho must be > 0"),
        (SharpnessConfig(rho=-0.1), "--rho must be > 0"),
        (SharpnessConfig(optim="asam", rho=float("nan")), "--rho must be > 0"),
        (SharpnessConfig(adaptive=True), "--adaptive needs --optim sam or asam"),
    ],
)
def test_every_user_validates_the_sharpness_settings(sharpness, message, tmp_path):
    weights = tmp_path / "w.pth"
    weights.touch()
    optim = OptimConfig(sharpness=sharpness)
    for cfg in (
        optim,
        NetTrainConfig(subnet="n.subnet", optim=optim),
        TrainConfig(optim=optim),
        SupernetEvalConfig(supernet_path=str(weights), optim=optim),
    ):
        with pytest.raises(UsageError) as err:
            cfg.validate()
        assert str(err.value) == message


@pytest.mark.parametrize("optim", ["sam", "asam"])
def test_supernet_training_refuses_sam(optim):
    with pytest.raises(UsageError) as err:
        TrainConfig(optim=OptimConfig(sharpness=SharpnessConfig(optim=optim))).validate()
    assert str(err.value) == "supernet training supports --optim sgd only"


def test_sharpness_flags_stay_flat_and_round_trip():
    argv = ["--subnet", "n.subnet", "--optim", "sam", "--rho", "0.1", "--adaptive", "--lr", "0.2"]
    cfg = dataclass_from_args(NetTrainConfig, train.build_parser().parse_args(argv))
    sharpness = SharpnessConfig(optim="sam", rho=0.1, adaptive=True)
    assert cfg == NetTrainConfig(subnet="n.subnet", optim=OptimConfig(lr=0.2, sharpness=sharpness))
    assert cfg.optim.sharpness.is_adaptive
    record = cfg.to_dict()
    assert (record["optim"], record["rho"], record["adaptive"]) == ("sam", 0.1, True)
    assert "sharpness" not in record and list(record).index("optim") == list(record).index("batch_size") + 1
    assert dataclass_from_record(NetTrainConfig, record) == cfg
    old = {k: v for k, v in record.items() if k not in ("optim", "rho", "adaptive")}  # a record from before SAM
    assert dataclass_from_record(NetTrainConfig, old).optim.sharpness == SharpnessConfig()
    for parser in (train.build_parser(), supernet_train.build_parser()):
        args = parser.parse_args([])
        assert (args.optim, args.rho, args.adaptive) == ("sgd", 0.05, False)
        assert all(f"--{flag}" in parser.format_help() and OPTIM_HELP[flag] for flag in ("optim", "rho", "adaptive"))

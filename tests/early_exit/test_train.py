"""`python -m early_exit.train`: fine-tuning a chosen early-exit network, as `train.py` does a single-exit one.

A seeded default-size OFA supernet gives the backbone weights (`net.inherited`, as post_search.py writes them) of the
smallest 16 px subnet; the digits training and test splits are cut to a few dozen images so a run takes seconds.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import early_exit.pipeline as pipeline
import early_exit.train as ee_train
import early_exit.trainer as ee_trainer
import training.trainer as trainer_module
from data import batches
from early_exit.pipeline import attach_exits
from search_space import create_search_space
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from supernets.ofa_mbv3 import SupernetConfig, build_supernet, extract_subnet
from training.checkpoint import subnet_checkpoint
from utils.cli import run_cli

BACKBONE = OFAMobileNetV3Space(lr=16, ur=16).smallest()
OTHER = OFAMobileNetV3Space(lr=16, ur=16).largest()
EE_ARCH = {**BACKBONE, "t": [0.2, 1.0, 0.1, 1.0]}  # exits after stages 0 and 2, thresholds 0.2 and 0.1
CBN_ARCH = {**BACKBONE, "b": [1, 0, 1, 0]}
SEARCH_STATS = {"top1": 50.0, "avg_macs": 1.5, "params": 2.5, "macs": 2.4}
FAST = ["--device", "cpu", "--batch_size", "32", "--n_bn_cal", "16", "--warmup_ee_epochs", "1", "--ee_epochs", "1"]
STILL = ["--warmup_ee_epochs", "0", "--ee_epochs", "0", "--n_bn_cal", "0"]  # the given weights, untouched


def space_of(arch):
    return create_search_space(ee_trainer.early_exit_spaces()["t" if "t" in arch else "b"]).unrestricted()


def early_exit_net(supernet, arch, method, seed=0):
    """The early-exit network of `arch` on the supernet's backbone weights, heads seeded with `seed`."""
    space = space_of(arch)
    return attach_exits(space, extract_subnet(supernet, space.backbone(arch)), arch, 10, method, seed=seed)


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return build_supernet(SupernetConfig())


@pytest.fixture(scope="module")
def templates(supernet, tmp_path_factory):
    """Folders as post_search.py writes them for an eemobilenetv3 and a cbnmobilenetv3 choice."""
    root = tmp_path_factory.mktemp("templates")
    for name, arch in [("ee", EE_ARCH), ("cbn", CBN_ARCH)]:
        (root / name).mkdir()
        (root / name / "net.subnet").write_text(json.dumps(arch))
        (root / name / "net.stats").write_text(json.dumps(SEARCH_STATS))
        inherited = subnet_checkpoint(extract_subnet(supernet, BACKBONE), arch, 10, 1.0)
        torch.save(inherited, root / name / "net.inherited")
    return root


@pytest.fixture
def folder(templates, tmp_path):
    """A fresh copy of a template folder, by name."""
    return lambda name: Path(shutil.copytree(templates / name, tmp_path / name))


@pytest.fixture(autouse=True)
def small_digits(monkeypatch):
    """A few dozen training and test images; the validation split stays whole."""
    real = trainer_module.create_dataset

    def small(name, **kwargs):
        full = real(name, **kwargs)
        return dataclasses.replace(full, train=full.train.subset(range(96)), test=full.test.subset(range(60)))

    monkeypatch.setattr(trainer_module, "create_dataset", small)


@pytest.fixture
def measured(monkeypatch):
    """The split of every pass over a split, and each choice of thresholds (tune or repair) with the split it saw."""
    record = {"passes": [], "chose": [], "labels": {}}
    real_outputs = ee_trainer.split_outputs

    def outputs(net, splits, split, *args):
        out, labels = real_outputs(net, splits, split, *args)
        record["passes"].append(split)
        record["labels"][id(labels)] = split
        return out, labels

    def choosing(kind, real):
        def spy(outputs, labels, *args):
            record["chose"].append((kind, record["labels"][id(labels)]))
            return real(outputs, labels, *args)

        return spy

    monkeypatch.setattr(ee_trainer, "split_outputs", outputs)
    monkeypatch.setattr(pipeline, "tune_epsilon", choosing("tune", pipeline.tune_epsilon))
    monkeypatch.setattr(pipeline, "repair_epsilon", choosing("repair", pipeline.repair_epsilon))
    return record


def run(net_dir, *args):
    return run_cli(ee_train.main, ["--subnet", str(net_dir / "net.subnet"), *FAST, *args])


def load(path):
    return torch.load(path, weights_only=True)


def stats_of(net_dir):
    return json.loads((net_dir / "net.stats").read_text())


def saved_network(ckpt, method):
    """The early-exit network a `ckpt.pth` holds."""
    space = space_of(ckpt["arch"])
    net = attach_exits(space, space.build_network(ckpt["arch"], 10), ckpt["arch"], 10, method)
    net.load_state_dict(ckpt["state_dict"])
    return net.eval()


def assert_onnx_matches(path, net):
    """Every exit's output of the ONNX file equals PyTorch's on a batch of 5 test images."""
    x, _ = next(batches(trainer_module.create_dataset("digits"), "test", 16, 5, train=False))
    exportable = net.exportable()
    with torch.no_grad():
        want = [t.numpy() for t in exportable(x)]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == exportable.output_names
    got = session.run(None, {"input": x.numpy()})
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5 * max(1.0, float(np.abs(w).max())))


def test_joint_on_eemobilenetv3_selects_on_validation_tests_once_and_exports_every_exit(folder, measured):
    net_dir = folder("ee")
    assert run(net_dir, "--method", "joint", "--train_backbone", "--export", "onnx") == 0
    assert measured["passes"] == ["valid", "valid", "valid", "valid", "test"]  # epochs 0-2, then the selected weights
    assert measured["chose"] == []  # the genome's thresholds, no budget: nothing chosen
    assert {"ckpt.pth", "net.stats", "net.onnx", "net.train.pth"} <= {p.name for p in net_dir.iterdir()}
    ckpt = load(net_dir / "ckpt.pth")
    assert set(ckpt) == {"state_dict", "arch", "n_classes", "width_mult", "split"} and ckpt["arch"] == EE_ARCH
    assert ee_trainer.is_early_exit_state(ckpt["state_dict"])
    stats = stats_of(net_dir)
    assert stats["search"] == SEARCH_STATS and stats["epochs"] == 2 and stats["config"]["method"] == "joint"
    assert [h["epoch"] for h in stats["history"]] == [0, 1, 2]
    best = max(h["valid_top1"] for h in stats["history"])
    assert stats["top1"] == stats["valid_top1"] == stats["valid"]["top1"] == best
    assert stats["test_top1"] == stats["test"]["top1"] and stats["avg_macs"] == stats["valid"]["avg_macs"]
    for split in ("valid", "test"):
        numbers = stats[split]
        assert numbers["epsilon"] == [0.2, 0.1] and numbers["exit_policy"] == "margin"
        assert len(numbers["per_exit_top1"]) == len(numbers["exits_ratio"]) == len(numbers["backbone_macs"]) == 3
        assert numbers["head_macs"][-1] == 0 and numbers["params"] == stats["params"]
    assert stats["macs"] == stats["valid"]["backbone_macs"][-1]  # the whole backbone, as the search counts it
    assert_onnx_matches(net_dir / "net.onnx", saved_network(ckpt, "joint"))


def test_bernulli_on_cbnmobilenetv3_trains_the_heads_alone_and_exports_their_confidences(folder, supernet):
    net_dir = folder("cbn")
    assert run(net_dir, "--method", "bernulli", "--support_set", "--w_gamma", "0.5", "--export", "onnx") == 0
    ckpt = load(net_dir / "ckpt.pth")
    trained = saved_network(ckpt, "bernulli")
    start = early_exit_net(supernet, CBN_ARCH, "bernulli")
    for (name, before), after in zip(start.named_parameters(), trained.parameters(), strict=True):
        assert torch.equal(before, after) != name.startswith("heads."), name  # backbone frozen, heads trained
    stats = stats_of(net_dir)
    assert stats["valid"]["exit_policy"] == "cumulative" and len(stats["valid"]["exits_ratio"]) == 3
    assert stats["test"]["epsilon"] == stats["valid"]["epsilon"]  # tuned on validation (cbn has no thresholds)
    assert_onnx_matches(net_dir / "net.onnx", trained)


def test_thresholds_are_chosen_on_validation_and_the_test_split_only_measured_with_them(folder, measured):
    net_dir = folder("ee")
    assert run(net_dir, "--method", "joint", "--tune_epsilon", "--mmax", "0.5", "--top1min", "0") == 0
    assert measured["passes"] == ["valid", "valid", "valid", "valid", "test"]
    assert measured["chose"] == [("tune", "valid"), ("repair", "valid")] * 4  # each validation pass, never the test
    stats = stats_of(net_dir)
    assert stats["test"]["epsilon"] == stats["valid"]["epsilon"] == stats["history"][stats["best_epoch"]]["epsilon"]


# Validation (top-1, avg MACs) by epoch: epoch 0 has the best top-1, epoch 2 the best trained one, epoch 1 fewest MACs.
BY_EPOCH = [(90.0, 5.0), (80.0, 3.0), (85.0, 4.0)]


@pytest.mark.parametrize(
    ("start", "args", "selected"),
    [
        ("backbone", [], 2),  # fresh heads: epoch 0's untrained exits never leave early; it is passed over
        ("backbone", ["--mmax", "3.5"], 1),  # the best trained epoch within the budget
        ("backbone", ["--mmax", "1"], 2),  # none fits: the best trained one
        ("early-exit network", [], 0),  # trained heads: epoch 0 competes
    ],
)
def test_selection_passes_over_fresh_heads_and_prefers_the_budget(folder, supernet, monkeypatch, start, args, selected):
    net_dir = folder("ee")
    if start != "backbone":
        net = early_exit_net(supernet, EE_ARCH, "joint", seed=3)
        torch.save(subnet_checkpoint(net, EE_ARCH, 10, 1.0), net_dir / "net.inherited")

    def validate(self):
        top1, avg_macs = BY_EPOCH[self.tuner.epoch]
        return {"valid_top1": top1, "valid_avg_macs": avg_macs, "epsilon": [0.2, 0.1]}

    monkeypatch.setattr(ee_trainer.EENetTrainer, "_validate", validate)
    assert run(net_dir, "--method", "joint", *args) == 0
    assert stats_of(net_dir)["best_epoch"] == selected


def test_resumed_run_equals_uninterrupted_run(folder, tmp_path, monkeypatch, capsys):
    whole = folder("cbn")
    cut = Path(shutil.copytree(whole, tmp_path / "cut"))
    args = ["--method", "bernulli", "--support_set", "--w_gamma", "0.5", "--train_backbone"]
    assert run(whole, *args) == 0
    real_save = trainer_module.NetTrainer.save_checkpoint

    def save_then_die(self):
        real_save(self)
        raise KeyboardInterrupt  # killed right after the checkpoint of epoch 1

    monkeypatch.setattr(trainer_module.NetTrainer, "save_checkpoint", save_then_die)
    assert run(cut, *args) == 130
    assert load(cut / "net.train.pth")["finetune"]["epoch"] == 1 and not (cut / "ckpt.pth").exists()
    assert stats_of(cut) == SEARCH_STATS  # the search's stats survive a failed run
    monkeypatch.setattr(trainer_module.NetTrainer, "save_checkpoint", real_save)
    capsys.readouterr()
    assert run(cut, *args, "--resume", "--ee_epochs", "2") == 2
    err = capsys.readouterr().err
    assert "--ee_epochs 1 (now 2)" in err and "--epochs" not in err  # the epochs it derives have no flag to name
    assert run(cut, *args, "--resume") == 0
    a, b = load(whole / "ckpt.pth")["state_dict"], load(cut / "ckpt.pth")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for key in ("valid", "test", "best_epoch", "history", "search"):
        assert stats_of(whole)[key] == stats_of(cut)[key], key


def test_starts_from_an_early_exit_or_a_backbone_checkpoint_or_from_scratch(folder, supernet, tmp_path):
    net_dir = folder("cbn")
    (net_dir / "net.inherited").unlink()
    net = early_exit_net(supernet, CBN_ARCH, "bernulli", seed=7)
    torch.save(subnet_checkpoint(net, CBN_ARCH, 10, 1.0), net_dir / "ckpt.pth")  # the ee evaluator's --save_ckpt
    given = load(net_dir / "ckpt.pth")["state_dict"]
    assert run(net_dir, *STILL) == 0
    saved = load(net_dir / "ckpt.pth")["state_dict"]
    assert given.keys() == saved.keys() and all(torch.equal(given[k], saved[k]) for k in given)
    assert stats_of(net_dir)["init"] == str(net_dir / "ckpt.pth")
    backbone = subnet_checkpoint(extract_subnet(supernet, BACKBONE), BACKBONE, 10, 1.0)  # a train.py ckpt.pth
    torch.save(backbone, tmp_path / "backbone.pth")
    assert run(net_dir, *STILL, "--init", str(tmp_path / "backbone.pth"), "--save", str(tmp_path / "b")) == 0
    fresh = early_exit_net(supernet, CBN_ARCH, "bernulli").state_dict()  # the backbone's weights, heads seeded
    saved = load(tmp_path / "b" / "ckpt.pth")["state_dict"]
    assert fresh.keys() == saved.keys() and all(torch.equal(fresh[k], saved[k]) for k in fresh)
    assert run(net_dir, *STILL, "--from_scratch", "--save", str(tmp_path / "s")) == 0
    assert stats_of(tmp_path / "s")["init"] == "scratch"


def _other_exits(supernet):
    arch = {**CBN_ARCH, "b": [0, 1, 0, 1]}
    return subnet_checkpoint(early_exit_net(supernet, arch, "bernulli"), arch, 10, 1.0)


ERRORS = {
    "single-exit subnet": ("cbn", {"net.subnet": BACKBONE}, [], "single-exit network (no 'b' or 't' exit genes)"),
    "wrong length": ("cbn", {"net.subnet": {**CBN_ARCH, "b": [1, 0, 1]}}, [], "'b' must be a list of 4 values"),
    "threshold off the grid": ("ee", {"net.subnet": {**EE_ARCH, "t": [0.5, 1, 1, 1]}}, [], "t[0] = 0.5 is not one"),
    "all exits off": ("cbn", {"net.subnet": {**CBN_ARCH, "b": [0, 0, 0, 0]}}, [], "turns every exit off"),
    "no early exit": ("ee", {"net.subnet": {**EE_ARCH, "t": [1.0] * 4}}, [], "no early exit on"),
    "single-exit space": ("cbn", {}, ["--search_space", "ofa_mbv3"], "ofa_mbv3 has single-exit networks"),
    "other space": ("cbn", {}, ["--search_space", "eemobilenetv3"], "(missing: ['t'], unexpected: ['b'])"),
    "--method": ("cbn", {}, ["--method", "branchy"], "unknown early-exit training method 'branchy'"),
    "--support_set": ("cbn", {}, ["--method", "joint", "--support_set"], "--support_set needs --method bernulli"),
    "--warmup_ee_epochs": ("cbn", {}, ["--warmup_ee_epochs", "-1"], "--warmup_ee_epochs must be >= 0"),
    "--ee_epochs": ("cbn", {}, ["--warmup_ee_epochs", "0", "--ee_epochs", "-1"], "--ee_epochs must be >= 0"),
    "--ee_epochs text": ("cbn", {}, ["--ee_epochs", "two"], "argument --ee_epochs: invalid int value: 'two'"),
    "--epochs": ("cbn", {}, ["--epochs", "3"], "unrecognized arguments: --epochs 3"),
    "--mmax": ("cbn", {}, ["--mmax", "0"], "--mmax must be > 0"),
    "--top1min": ("cbn", {}, ["--top1min", "101"], "--top1min must lie in [0, 100]"),
    "--eval_robust": ("cbn", {}, ["--eval_robust"], "--eval_robust and --ood_eval measure single-exit networks"),
    "corrupt weights": ("cbn", {"net.inherited": b"not a checkpoint"}, [], "corrupt or unreadable checkpoint"),
    "another backbone": ("cbn", {"net.inherited": "other-backbone"}, [], "weights of another backbone"),
    "other exits": ("cbn", {"net.inherited": "other-exits"}, [], "early-exit network of another architecture"),
    "other method": ("cbn", {"net.inherited": "joint-heads"}, [], "does not fit the network"),
    "no weights": ("cbn", {"net.inherited": None}, [], "no weights to start from"),
    "--init and --from_scratch": ("cbn", {}, ["--from_scratch", "--init", "x.pth"], "exclude each other"),
    "--resume without checkpoint": ("cbn", {}, ["--resume"], "nothing to resume"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_user_errors_are_one_line_exit_2_before_anything_is_written(folder, supernet, capsys, case):
    name, changes, argv, message = ERRORS[case]
    net_dir = folder(name)
    made = {
        "other-backbone": lambda: subnet_checkpoint(extract_subnet(supernet, OTHER), OTHER, 10, 1.0),
        "other-exits": lambda: _other_exits(supernet),
        "joint-heads": lambda: subnet_checkpoint(early_exit_net(supernet, CBN_ARCH, "joint"), CBN_ARCH, 10, 1.0),
    }
    for file, content in changes.items():
        if content is None:
            (net_dir / file).unlink()
        elif isinstance(content, bytes):
            (net_dir / file).write_bytes(content)
        elif isinstance(content, str):
            torch.save(made[content](), net_dir / file)
        else:
            (net_dir / file).write_text(json.dumps(content))
    before = {p.name: p.read_bytes() for p in net_dir.iterdir()}
    assert run(net_dir, *argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert {p.name: p.read_bytes() for p in net_dir.iterdir()} == before

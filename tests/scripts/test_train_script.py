import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import train
import training.trainer as trainer_module
from data import batches
from robustness.flatness import FlatnessConfig, measure_flatness
from robustness.ood import GeneratedSource, corruption_errors
from search_space.ofa_mbv3 import CostModel, OFAMobileNetV3Space
from supernets.ofa_mbv3 import SupernetConfig, build_supernet, extract_subnet
from training.checkpoint import cpu_state_dict
from training.evaluate import accuracy
from utils.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
SPACE = OFAMobileNetV3Space(lr=16, ur=16)
ARCH = SPACE.smallest()
OTHER = SPACE.largest()
SEARCH_STATS = {"top1": 61.5, "params": 2.1, "macs": 2.4, "activations": 0.04}
FAST = ["--device", "cpu", "--batch_size", "32", "--n_bn_cal", "32", "--lr", "0.05"]


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return build_supernet(SupernetConfig())


@pytest.fixture(scope="module")
def template(supernet, tmp_path_factory):
    """A folder as post_search.py writes it: net.subnet, net.stats and net.inherited."""
    out = tmp_path_factory.mktemp("template") / "net-trade-off_0"
    out.mkdir()
    (out / "net.subnet").write_text(json.dumps(ARCH))
    (out / "net.stats").write_text(json.dumps(SEARCH_STATS))
    inherited = {"state_dict": cpu_state_dict(extract_subnet(supernet, ARCH)), "arch": ARCH}
    torch.save({**inherited, "n_classes": 10, "width_mult": 1.0}, out / "net.inherited")
    return out


@pytest.fixture
def net_dir(template, tmp_path):
    return Path(shutil.copytree(template, tmp_path / template.name))


@pytest.fixture(autouse=True)
def small_digits(monkeypatch):
    """A few hundred digits images instead of all of them, so that an epoch takes a fraction of a second.

    The validation split stays whole: it is the one recorded in the files, and carved again from them.
    """
    real = trainer_module.create_dataset

    def small(name, **kwargs):
        full = real(name, **kwargs)
        return dataclasses.replace(full, train=full.train.subset(range(128)), test=full.test.subset(range(80)))

    monkeypatch.setattr(trainer_module, "create_dataset", small)


@pytest.fixture
def accuracy_calls(monkeypatch):
    calls = []

    def spy(model, splits, split, resolution, **kwargs):
        calls.append(split)
        return accuracy(model, splits, split, resolution, **kwargs)

    monkeypatch.setattr(trainer_module, "accuracy", spy)
    return calls


def run(net_dir, *args):
    return run_cli(train.main, ["--subnet", str(net_dir / "net.subnet"), *FAST, *args])


def assert_same_outputs(session, model, x):
    """ONNX Runtime's logits equal PyTorch's to float32 precision, relative to their (untrained: large) scale."""
    with torch.no_grad():
        want = model(x).numpy()
    (got,) = session.run(None, {"input": x.numpy()})
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, float(np.abs(want).max())))


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def load(path):
    return torch.load(path, weights_only=True)


def network(ckpt):
    model = extract_subnet(build_supernet(SupernetConfig(n_classes=ckpt["n_classes"])), ckpt["arch"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def test_fine_tunes_selects_on_validation_and_tests_once(net_dir, accuracy_calls):
    assert run(net_dir, "--epochs", "2", "--export", "onnx") == 0
    assert accuracy_calls == ["valid", "valid", "valid", "test"]  # epochs 0, 1, 2, then the test split once
    assert {"ckpt.pth", "net.stats", "net.onnx", "net.train.pth"} <= {p.name for p in net_dir.iterdir()}
    ckpt = load(net_dir / "ckpt.pth")
    assert set(ckpt) == {"state_dict", "arch", "n_classes", "width_mult", "split"}
    assert ckpt["arch"] == ARCH and ckpt["n_classes"] == 10 and ckpt["width_mult"] == 1.0
    assert ckpt["split"] == {"dataset": "digits", "seed": 0, "vld_size": 300}  # net.inherited has none: --seed's
    stats = json.loads((net_dir / "net.stats").read_text())
    assert stats["search"] == SEARCH_STATS
    assert stats["top1"] == stats["valid_top1"] == max(h["valid_top1"] for h in stats["history"])
    assert [h["epoch"] for h in stats["history"]] == [0, 1, 2] and stats["history"][0]["train_loss"] is None
    assert stats["epochs"] == 2 and stats["seed"] == 0 and stats["init"] == str(net_dir / "net.inherited")
    assert stats["config"]["lr"] == 0.05 and stats["config"]["export"] == "onnx"
    costs = CostModel(SupernetConfig())(ARCH)
    assert {k: stats[k] for k in ("params", "macs", "activations", "peak_act", "latency")} == costs.as_dict()
    model = network(ckpt)
    splits = trainer_module.create_dataset("digits")
    assert stats["test_top1"] == accuracy(model, splits, "test", 16)  # measured on the saved (selected) weights
    assert stats["valid_top1"] == accuracy(model, splits, "valid", 16)
    x, _ = next(batches(splits, "test", 16, 5, train=False))
    session = ort.InferenceSession(str(net_dir / "net.onnx"), providers=["CPUExecutionProvider"])
    assert_same_outputs(session, model, x)


def test_keeps_the_weights_of_the_best_validation_epoch(net_dir, monkeypatch):
    scores = iter([40.0, 70.0, 60.0])
    real = trainer_module.NetTrainer.measure
    monkeypatch.setattr(
        trainer_module.NetTrainer,
        "measure",
        lambda self, split: next(scores) if split == "valid" else real(self, split),
    )
    assert run(net_dir, "--epochs", "2") == 0
    stats = json.loads((net_dir / "net.stats").read_text())
    assert stats["best_epoch"] == 1 and stats["valid_top1"] == stats["top1"] == 70.0
    last = load(net_dir / "net.train.pth")
    saved = load(net_dir / "ckpt.pth")["state_dict"]
    assert last["best"]["epoch"] == 1 and last["finetune"]["epoch"] == 2
    assert all(torch.equal(saved[k], v) for k, v in last["best"]["state_dict"].items())
    assert not torch.equal(saved["classifier.linear.weight"], last["state_dict"]["classifier.linear.weight"])


def test_resumed_run_equals_uninterrupted_run(template, tmp_path, monkeypatch):
    whole = Path(shutil.copytree(template, tmp_path / "whole"))
    cut = Path(shutil.copytree(template, tmp_path / "cut"))
    assert run(whole, "--epochs", "2") == 0
    real_save = trainer_module.NetTrainer.save_checkpoint

    def save_then_die(self):
        real_save(self)
        raise KeyboardInterrupt  # killed right after the checkpoint of epoch 1

    monkeypatch.setattr(trainer_module.NetTrainer, "save_checkpoint", save_then_die)
    assert run(cut, "--epochs", "2") == 130
    assert load(cut / "net.train.pth")["finetune"]["epoch"] == 1
    assert json.loads((cut / "net.stats").read_text()) == SEARCH_STATS  # the search's stats survive a failed run
    assert not (cut / "ckpt.pth").exists()
    monkeypatch.setattr(trainer_module.NetTrainer, "save_checkpoint", real_save)
    assert run(cut, "--epochs", "2", "--resume") == 0
    a, b = load(whole / "ckpt.pth")["state_dict"], load(cut / "ckpt.pth")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    stats_a, stats_b = (json.loads((d / "net.stats").read_text()) for d in (whole, cut))
    for key in ("valid_top1", "test_top1", "best_epoch", "history", "search"):
        assert stats_a[key] == stats_b[key], key


def test_sam_fine_tunes_and_is_recorded(net_dir, template):
    assert run(net_dir, "--epochs", "1", "--optim", "sam", "--rho", "0.1") == 0
    stats = json.loads((net_dir / "net.stats").read_text())
    assert {k: stats["config"][k] for k in ("optim", "rho", "adaptive")} == {
        "optim": "sam",
        "rho": 0.1,
        "adaptive": False,
    }
    assert [h["epoch"] for h in stats["history"]] == [0, 1] and stats["history"][1]["train_loss"] > 0
    trained = load(net_dir / "net.train.pth")
    assert trained["config"]["optim"] == "sam" and trained["finetune"]["optimizer"]["state"]  # momentum, to resume
    inherited = load(template / "net.inherited")["state_dict"]
    assert not torch.equal(trained["state_dict"]["classifier.linear.weight"], inherited["classifier.linear.weight"])


def test_robustness_of_the_selected_weights_goes_to_net_stats(net_dir):
    flags = ["--eval_robust", "--n_perturb", "2", "--ood_eval", "--corruptions", "contrast,fog"]
    assert run(net_dir, "--epochs", "1", *flags) == 0
    stats = json.loads((net_dir / "net.stats").read_text())
    assert stats["sigma"] == [0.05] and stats["robustness"] >= 0 and stats["ood_source"] == "generated"
    assert set(stats["corruption_errors"]) == {"contrast", "fog"}
    errors = [e for by in stats["corruption_errors"].values() for e in by.values()]
    assert len(errors) == 10 and stats["mCE"] == pytest.approx(sum(errors) / 10)
    assert stats["config"]["ood_eval"] is True and stats["config"]["corruptions"] == "contrast,fog"
    model = network(load(net_dir / "ckpt.pth"))  # the selected weights: what was measured
    split = stats["split"]
    splits = trainer_module.create_dataset("digits", vld_size=split["vld_size"], seed=split["seed"])
    again = corruption_errors(model, splits, GeneratedSource(), resolution=16, corruptions=["contrast", "fog"])
    assert {c: {str(k): v for k, v in by.items()} for c, by in again.items()} == stats["corruption_errors"]
    flat = measure_flatness(model, splits, "valid", 16, FlatnessConfig(n_perturb=2))
    assert flat.robustness == pytest.approx(stats["robustness"], abs=1e-9)


def test_epochs_0_exports_the_given_weights(net_dir, template):
    assert run(net_dir, "--epochs", "0", "--n_bn_cal", "0", "--export", "onnx") == 0
    inherited = load(template / "net.inherited")
    saved = load(net_dir / "ckpt.pth")["state_dict"]
    assert all(torch.equal(saved[k], v) for k, v in inherited["state_dict"].items())
    assert not (net_dir / "net.train.pth").exists()
    model = network({**inherited, "n_classes": 10})
    x, _ = next(batches(trainer_module.create_dataset("digits"), "test", 16, 2, train=False))
    session = ort.InferenceSession(str(net_dir / "net.onnx"), providers=["CPUExecutionProvider"])
    assert_same_outputs(session, model, x)
    stats = json.loads((net_dir / "net.stats").read_text())
    assert stats["best_epoch"] == 0 and len(stats["history"]) == 1


def test_starts_from_ckpt_pth_without_net_inherited_or_from_init_or_from_scratch(net_dir, supernet, tmp_path):
    (net_dir / "net.inherited").rename(tmp_path / "elsewhere.pth")
    evaluator_ckpt = {"state_dict": cpu_state_dict(extract_subnet(supernet, ARCH)), "arch": ARCH}
    torch.save(evaluator_ckpt, net_dir / "ckpt.pth")  # the supernet evaluator's format (--save_ckpt)
    assert run(net_dir, "--epochs", "0") == 0
    assert json.loads((net_dir / "net.stats").read_text())["init"] == str(net_dir / "ckpt.pth")
    assert run(net_dir, "--epochs", "0", "--init", str(tmp_path / "elsewhere.pth")) == 0
    stats = json.loads((net_dir / "net.stats").read_text())
    assert stats["init"] == str(tmp_path / "elsewhere.pth") and stats["search"] == SEARCH_STATS
    (net_dir / "ckpt.pth").unlink()
    assert run(net_dir, "--epochs", "1", "--from_scratch", "--save", str(tmp_path / "scratch")) == 0
    stats = json.loads((tmp_path / "scratch" / "net.stats").read_text())
    assert stats["init"] == "scratch" and stats["search"] == SEARCH_STATS
    assert (tmp_path / "scratch" / "ckpt.pth").is_file() and not (net_dir / "ckpt.pth").exists()


def _write(net_dir, name, content):
    path = net_dir / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict) and "state_dict" in content:
        torch.save(content, path)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))


def _inherited(supernet, arch=ARCH, **extra):
    return {"state_dict": cpu_state_dict(extract_subnet(supernet, arch)), "arch": ARCH, **extra}


ERRORS = {
    "missing subnet": ({"net.subnet": None}, [], "subnet file not found"),
    "malformed subnet": ({"net.subnet": "{ks: oops"}, [], "is not a readable JSON subnet file"),
    "invalid subnet": ({"net.subnet": {**ARCH, "ks": [4] * 20}}, [], "ks[0] = 4 is not one of (3, 5, 7)"),
    "early-exit subnet": ({"net.subnet": {**ARCH, "t": [0.9] * 4}}, [], "fine-tunes single-exit networks"),
    "no weights": ({"net.inherited": None}, [], "no weights to start from"),
    "corrupt checkpoint": ({"net.inherited": b"not a checkpoint"}, [], "corrupt or unreadable checkpoint"),
    "another architecture": ({"net.inherited": "other-arch"}, [], "weights of another architecture"),
    "weights that do not fit": ({"net.inherited": "other-weights"}, [], "does not fit the network"),
    "checkpoint classes": ({"net.inherited": "7-classes"}, [], "holds a 7-class network"),
    "--n_classes": ({}, ["--n_classes", "5"], "--n_classes 5 but dataset digits has 10 classes"),
    "--epochs": ({}, ["--epochs", "-1"], "--epochs must be >= 0"),
    "--lr": ({}, ["--lr", "0"], "--lr must be > 0"),
    "--optim": ({}, ["--optim", "adam"], "--optim must be one of sgd, sam, asam, got 'adam'"),
    "--rho": ({}, ["--optim", "sam", "--rho", "0"], "--rho must be > 0"),
    "--rho with sgd": ({}, ["--rho", "0"], "--rho must be > 0"),
    "--adaptive": ({}, ["--adaptive"], "--adaptive needs --optim sam or asam"),
    "--epochs text": ({}, ["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
    "--export": ({}, ["--export", "tflite"], "unknown --export format 'tflite'"),
    "--device": ({}, ["--device", "tpu"], "unknown device 'tpu'"),
    "--dataset": ({}, ["--dataset", "mnist"], "unknown dataset 'mnist'"),
    "--init and --from_scratch": ({}, ["--from_scratch", "--init", "x.pth"], "exclude each other"),
    "--init missing": ({}, ["--init", "/nonexistent/w.pth"], "checkpoint not found: /nonexistent/w.pth"),
    "--resume without checkpoint": ({}, ["--resume"], "nothing to resume"),
    "diverging": ({}, ["--lr", "1e30"], "training diverged"),
    "--sigma_min": ({}, ["--eval_robust", "--sigma_min", "0", "--sigma_max", "0"], "--sigma_min must be > 0"),
    "--n_perturb": ({}, ["--eval_robust", "--n_perturb", "0"], "--n_perturb must be >= 1"),
    "--corruptions": ({}, ["--ood_eval", "--corruptions", "fogg"], "unknown corruption 'fogg'"),
    "--ood_data without --ood_eval": ({}, ["--ood_data", "x"], "settings of --ood_eval: add --ood_eval"),
    "--ood_data missing severity": ({}, ["--ood_eval", "--ood_data", "MISSING"], "gaussian_noise"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_user_errors_are_one_line_exit_2_and_touch_nothing(net_dir, supernet, capsys, case):
    changes, argv, message = ERRORS[case]
    for name, content in changes.items():
        if content is None:
            (net_dir / name).unlink()
        elif content == "other-arch":
            torch.save(_inherited(supernet, OTHER) | {"arch": OTHER}, net_dir / name)
        elif content == "other-weights":
            torch.save(_inherited(supernet, OTHER), net_dir / name)
        elif content == "7-classes":
            torch.save(_inherited(supernet, n_classes=7), net_dir / name)
        else:
            _write(net_dir, name, content)
    if "MISSING" in argv:  # an ImageNet-C-style folder without its severity-3 folder
        for severity in (1, 2, 4, 5):
            (net_dir.parent / "c" / "gaussian_noise" / str(severity) / "0").mkdir(parents=True)
        argv = [str(net_dir.parent / "c") if a == "MISSING" else a for a in argv]
    before = snapshot(net_dir)
    assert run(net_dir, "--epochs", "1", *argv) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("train:")]  # progress
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert snapshot(net_dir) == before


def test_resume_refuses_other_settings(net_dir, capsys):
    assert run(net_dir, "--epochs", "1") == 0
    before = snapshot(net_dir)
    assert run(net_dir, "--epochs", "1", "--resume", "--seed", "3") == 2
    assert "--seed 0 (now 3)" in capsys.readouterr().err
    assert snapshot(net_dir) == before


def test_resumes_a_checkpoint_written_before_the_config_was_nested(net_dir):
    assert run(net_dir, "--epochs", "1") == 0
    state = load(net_dir / "net.train.pth")
    assert state["config"]["lr"] == 0.05 and state["config"]["batch_size"] == 32 and state["config"]["optim"] == "sgd"
    old = {
        "subnet": str(net_dir / "net.subnet"),
        "init": None,
        "from_scratch": False,
        "save": None,
        "dataset": "digits",
        "data": None,
        "n_classes": None,
        "vld_size": None,
        "width_mult": None,
        "epochs": 1,
        "lr": 0.05,
        "momentum": 0.9,
        "weight_decay": 3e-5,
        "label_smoothing": 0.1,
        "batch_size": 32,
        "eval_batch_size": 256,
        "n_bn_cal": 32,
        "seed": 0,
        "device": "cpu",
        "num_workers": 0,
        "resume": False,
        "export": None,
    }
    added = {"search_space": "ofa_mbv3", "optim": "sgd", "rho": 0.05, "adaptive": False}  # the keys added since
    added |= {"eval_robust": False, "sigma_min": 0.05, "sigma_max": 0.05, "sigma_step": 0.0, "n_perturb": 20}
    added |= {"ood_eval": False, "corruptions": "all", "ood_data": None, "ood_reference": None}
    assert state["config"] == {**old, **added}
    torch.save({**state, "config": dict(reversed(old.items()))}, net_dir / "net.train.pth")
    assert run(net_dir, "--epochs", "1", "--resume") == 0
    assert json.loads((net_dir / "net.stats").read_text())["config"] == {**old, **added, "resume": True}


def test_command_line_entry_point(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--subnet", str(tmp_path / "net.subnet")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: subnet file not found: {tmp_path / 'net.subnet'}"


def test_weights_with_non_finite_outputs_are_one_line_and_nothing_is_written(net_dir, capsys):
    inherited = torch.load(net_dir / "net.inherited", weights_only=True)
    inherited["state_dict"] = {
        k: v.float().fill_(float("nan")) if v.is_floating_point() else v for k, v in inherited["state_dict"].items()
    }
    torch.save(inherited, net_dir / "net.inherited")
    before = sorted(p.name for p in net_dir.iterdir())
    assert run(net_dir, "--epochs", "0", "--n_bn_cal", "0") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the network's outputs are not finite") and err.count("\n") == 1
    assert sorted(p.name for p in net_dir.iterdir()) == before

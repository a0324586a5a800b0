"""`python -m robustness.evaluate`: a chosen network's mCE (and flatness) added to its `net.stats`."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import robustness.evaluate as evaluate
import training.trainer as trainer_module
from robustness.ood import mce
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from supernets.ofa_mbv3 import SupernetConfig, build_supernet, extract_subnet
from training.checkpoint import subnet_checkpoint
from training.evaluate import accuracy
from utils.cli import run_cli

ARCH = OFAMobileNetV3Space(lr=16, ur=16).smallest()
PREVIOUS = {"top1": 50.0, "params": 1.0, "macs": 2.0}
FAST = ["--corruptions", "gaussian_noise,contrast", "--device", "cpu"]


@pytest.fixture(scope="module")
def subnet():
    torch.manual_seed(0)
    return extract_subnet(build_supernet(SupernetConfig()), ARCH).eval()


@pytest.fixture
def net_dir(tmp_path, subnet):
    folder = tmp_path / "net-trade-off_0"
    folder.mkdir()
    (folder / "net.subnet").write_text(json.dumps(ARCH))
    (folder / "net.stats").write_text(json.dumps(PREVIOUS))
    torch.save(subnet_checkpoint(subnet, ARCH, 10, 1.0), folder / "net.inherited")
    return folder


@pytest.fixture(autouse=True)
def small_digits(monkeypatch):
    """Forty test images, so that 2 corruptions x 5 severities take a second."""
    real = trainer_module.create_dataset

    def small(name, **kwargs):
        full = real(name, **kwargs)
        return dataclasses.replace(full, test=full.test.subset(range(40)))

    monkeypatch.setattr(trainer_module, "create_dataset", small)


def run(net_dir, *args):
    return run_cli(evaluate.main, ["--subnet", str(net_dir / "net.subnet"), *FAST, *args])


def stats_of(net_dir):
    return json.loads((net_dir / "net.stats").read_text())


def test_help():
    with pytest.raises(SystemExit) as exit_:
        evaluate.main(["--help"])
    assert exit_.value.code == 0


def test_adds_mce_and_flatness_to_net_stats_keeping_what_is_there(net_dir, subnet):
    assert run(net_dir, "--eval_robust", "--n_perturb", "2", "--sigma_min", "0.2", "--sigma_max", "0.2") == 0
    stats = stats_of(net_dir)
    assert {k: stats[k] for k in PREVIOUS} == PREVIOUS
    errors = {c: {int(s): e for s, e in by.items()} for c, by in stats["corruption_errors"].items()}
    assert set(errors) == {"gaussian_noise", "contrast"} and all(set(by) == {1, 2, 3, 4, 5} for by in errors.values())
    assert stats["mCE"] == pytest.approx(mce(errors)) and stats["ood_source"] == "generated"
    test = trainer_module.create_dataset("digits", vld_size=None, seed=0)
    assert stats["ood_top1"] == pytest.approx(accuracy(subnet, test, "test", 16))
    assert stats["ood_weights"] == str(net_dir / "net.inherited")
    assert stats["sigma"] == [0.2] and stats["robustness"] >= 0
    assert not (net_dir / "ckpt.pth").exists()  # nothing but net.stats is written

    first = tmp_copy = net_dir.parent / "reference.stats"
    tmp_copy.write_text(json.dumps(stats))
    assert run(net_dir, "--ood_reference", str(first)) == 0
    again = stats_of(net_dir)
    assert again["mCE_normalised"] == pytest.approx(100.0) and again["mCE"] == stats["mCE"]  # seeded: same images


def _missing_severity(tmp_path):
    root = tmp_path / "imagenet-c"
    for severity in (1, 2, 4, 5):
        (root / "gaussian_noise" / str(severity) / "0").mkdir(parents=True)
    return str(root)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--corruptions", "fogg"], "unknown corruption 'fogg'"),
        (["--eval_robust", "--sigma_min", "0", "--sigma_max", "0"], "--sigma_min must be > 0"),
        (["--eval_robust", "--n_perturb", "0"], "--n_perturb must be >= 1"),
        (["--ood_data", "MISSING_SEVERITY"], "gaussian_noise/3"),
        (["--ood_reference", "NOWHERE"], "NOWHERE"),
        (["--init", "NOWHERE"], "NOWHERE"),
    ],
)
def test_bad_inputs_are_one_line_exit_2_and_leave_net_stats_alone(net_dir, tmp_path, capsys, args, message):
    args = [_missing_severity(tmp_path) if a == "MISSING_SEVERITY" else a for a in args]
    args = [str(tmp_path / "nowhere.stats") if a == "NOWHERE" else a for a in args]
    message = str(tmp_path / "nowhere.stats") if message == "NOWHERE" else message
    before = (net_dir / "net.stats").read_text()
    assert run(net_dir, *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert (net_dir / "net.stats").read_text() == before


def test_a_net_stats_that_is_not_json_is_refused(net_dir, capsys):
    (net_dir / "net.stats").write_text("{broken")
    assert run(net_dir) == 2
    assert "is not valid JSON" in capsys.readouterr().err

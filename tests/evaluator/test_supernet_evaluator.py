import json
import queue
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluator.backends as backends
import evaluator.supernet as supernet_module
import msunas
from evaluator import BACKENDS, EvaluatorSpec, create_backend, create_evaluator, list_backends, list_evaluators
from evaluator.supernet import SupernetEvalConfig, SupernetEvaluator
from search_space.ofa_mbv3 import CostModel, OFAMobileNetV3Space
from supernets.checkpoint import save_supernet_weights
from supernets.ofa_mbv3 import SupernetConfig, build_supernet
from tests.search_space.tiny_space import TinySupernet
from training.config import OptimConfig
from utils.cli import run_cli
from utils.errors import UsageError

SPACE = OFAMobileNetV3Space(lr=16, ur=20)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    return str(save_supernet_weights(build_supernet(SupernetConfig()), tmp_path_factory.mktemp("w") / "net.pth"))


@pytest.fixture(scope="module")
def config(weights):
    return SupernetEvalConfig(supernet_path=weights, n_bn_cal=64, eval_batch_size=128, device="cpu", seed=5)


@pytest.fixture(scope="module")
def archs():
    return [SPACE.smallest(), *SPACE.sample(2, np.random.default_rng(0))]


@pytest.fixture(scope="module")
def sequential_results(config, archs, tmp_path_factory):
    out = tmp_path_factory.mktemp("seq")
    dirs = [out / f"net_{i}" for i in range(len(archs))]
    with create_backend("sequential", EvaluatorSpec("supernet", {"config": config})) as backend:
        return backend.evaluate(archs, dirs), dirs


def test_registries():
    assert "supernet" in list_evaluators()
    assert {"sequential", "process"} <= set(list_backends())


def test_results_and_files(sequential_results, archs):
    results, dirs = sequential_results
    cost = CostModel(SupernetConfig())
    for arch, result, out in zip(archs, results, dirs, strict=True):
        assert result.ok and result.arch == arch and result.error is None
        assert 0.0 <= result.top1 <= 100.0 and result.wall_time_s > 0
        expected = cost(arch)
        assert (result.params, result.macs, result.activations) == (
            expected.params,
            expected.macs,
            expected.activations,
        )
        assert result.extras == {"peak_act": expected.peak_act, "latency": expected.latency}
        assert json.loads((out / f"{out.name}.subnet").read_text()) == arch
        stats = json.loads((out / f"{out.name}.stats").read_text())
        assert stats["top1"] == result.top1 and stats["params"] == result.params and stats["status"] == "ok"
        assert set(stats) >= {"top1", "params", "macs", "activations", "peak_act", "latency"}
        assert not (out / "ckpt.pth").exists()


def test_evaluation_is_deterministic_and_order_free(config, archs, sequential_results, tmp_path):
    evaluator = SupernetEvaluator(config)
    reversed_results = evaluator.evaluate(archs[::-1], [tmp_path / f"net_{i}" for i in range(len(archs))])
    assert [r.top1 for r in reversed_results[::-1]] == [r.top1 for r in sequential_results[0]]


# `ray` is held to the same by tests/evaluator/test_ray_backend.py, on a whole search (a local Ray costs ~20 s).
@pytest.mark.parametrize("name", [name for name in list_backends() if name != "ray"])
def test_every_backend_equals_sequential(config, archs, sequential_results, tmp_path, name):
    dirs = [tmp_path / f"net_{i}" for i in range(len(archs))]
    with create_backend(name, EvaluatorSpec("supernet", {"config": config}), n_workers=2, n_gpus=0) as backend:
        results = backend.evaluate(archs, dirs)
    for got, want in zip(results, sequential_results[0], strict=True):
        assert got.ok
        assert (got.arch, got.top1, got.params, got.macs, got.activations) == (
            want.arch,
            want.top1,
            want.params,
            want.macs,
            want.activations,
        )
    assert all((d / f"{d.name}.stats").is_file() for d in dirs)


def test_worker_loads_the_supernet_once(config, archs, tmp_path, monkeypatch):
    loads = []
    real = OFAMobileNetV3Space.load_supernet
    monkeypatch.setattr(OFAMobileNetV3Space, "load_supernet", lambda *a: loads.append(1) or real(*a))
    devices = queue.Queue()
    devices.put("cpu")
    backends._init_worker(EvaluatorSpec("supernet", {"config": config}), devices, torch.get_num_threads())
    for i, arch in enumerate(archs):
        assert backends._evaluate_in_worker(arch, str(tmp_path / f"net_{i}")).ok
    assert len(loads) == 1


def test_failures_are_reported_and_the_batch_goes_on(config, archs, tmp_path, monkeypatch):
    evaluator = SupernetEvaluator(config)
    real = evaluator._train_and_validate
    oom_arch = archs[2]

    def flaky(arch):
        if arch == oom_arch:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(arch)

    monkeypatch.setattr(evaluator, "_train_and_validate", flaky)
    bad = {**archs[0], "ks": [4] * 20}
    dirs = [tmp_path / f"net_{i}" for i in range(4)]
    results = evaluator.evaluate([bad, archs[0], oom_arch, archs[1]], dirs)
    assert [r.status for r in results] == ["failed", "ok", "failed", "ok"]
    assert "InvalidArchitecture" in results[0].error and "ks[0] = 4" in results[0].error
    assert results[2].error.startswith("OutOfMemoryError: CUDA out of memory")
    for r in (results[0], results[2]):
        assert r.top1 is None and r.params is None and r.macs is None
    assert (dirs[2] / "net_2.error").read_text().startswith("OutOfMemoryError")
    assert not (dirs[2] / "net_2.stats").exists()


def test_nan_loss_is_a_failure(weights, archs, tmp_path):
    cfg = SupernetEvalConfig(supernet_path=weights, n_bn_cal=32, n_epochs=1, optim=OptimConfig(lr=1e30), device="cpu")
    result = SupernetEvaluator(cfg).evaluate([archs[0]], [tmp_path / "net_0"])[0]
    assert result.status == "failed" and "non-finite training loss" in result.error


def test_fine_tuning_saves_a_checkpoint_that_reloads(weights, archs, tmp_path):
    cfg = SupernetEvalConfig(supernet_path=weights, n_bn_cal=64, n_epochs=1, save_ckpt=True, device="cpu")
    evaluator = create_evaluator("supernet", config=cfg)
    result = evaluator.evaluate([archs[0]], [tmp_path / "net_0"])[0]
    assert result.ok
    ckpt = torch.load(tmp_path / "net_0" / "ckpt.pth", weights_only=True)
    assert ckpt["arch"] == archs[0] and (ckpt["n_classes"], ckpt["width_mult"]) == (10, 1.0)
    split = {"dataset": "digits", "seed": cfg.split_seed, "vld_size": len(evaluator.splits.valid)}
    assert ckpt["split"] == split  # for train.py: the size it validated on (the config's None means a default)
    from supernets.ofa_mbv3 import extract_subnet

    model = extract_subnet(build_supernet(SupernetConfig()), archs[0])
    model.load_state_dict(ckpt["state_dict"])


def test_missing_weights_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="supernet weights not found"):
        SupernetEvaluator(SupernetEvalConfig(supernet_path=str(tmp_path / "none.pth")))


def test_process_backend_rejects_bad_gpu_settings(config):
    spec = EvaluatorSpec("supernet", {"config": config})
    with pytest.raises(UsageError, match="--gpu 2"):
        create_backend("process", spec, gpu=2)


# A cluster backend (ray) counts its cluster's GPUs instead: tests/evaluator/test_ray_backend.py.
@pytest.mark.parametrize("name", [e.name for e in BACKENDS.entries() if not e.meta.get("cluster")])
def test_more_gpus_than_visible_here_is_refused_by_every_local_backend(config, name):
    visible = torch.cuda.device_count()
    seen = "no CUDA device is visible" if not visible else f"only {visible} CUDA device"
    with pytest.raises(UsageError, match=f"--n_gpus {visible + 1} but {seen}"):
        create_backend(name, EvaluatorSpec("supernet", {"config": config}), n_gpus=visible + 1)


def test_validation_can_be_limited_to_the_first_images(weights, archs, tmp_path):
    from data import batches, create_dataset
    from supernets.ofa_mbv3 import extract_subnet

    cfg = SupernetEvalConfig(supernet_path=weights, n_bn_cal=32, valid_limit=7, save_ckpt=True, device="cpu")
    result = SupernetEvaluator(cfg).evaluate([archs[1]], [tmp_path / "net_0"])[0]
    model = extract_subnet(build_supernet(SupernetConfig()), archs[1])
    model.load_state_dict(torch.load(tmp_path / "net_0" / "ckpt.pth", weights_only=True)["state_dict"])
    model.eval()
    x, y = next(batches(create_dataset("digits"), "valid", archs[1]["r"], 7, train=False))
    with torch.no_grad():
        correct = int((model(x).argmax(1) == y).sum())
    assert result.top1 == pytest.approx(100 * correct / 7)
    with pytest.raises(UsageError, match="validation limit must be >= 1"):
        SupernetEvalConfig(supernet_path=weights, valid_limit=0).validate()


def test_every_architecture_is_calibrated_on_the_same_images(weights, archs, monkeypatch, tmp_path):
    seen = []
    original = supernet_module.calibration_images

    def spy(*args, **kwargs):
        seen.append(kwargs["seed"])
        return original(*args, **kwargs)

    monkeypatch.setattr(supernet_module, "calibration_images", spy)
    cfg = SupernetEvalConfig(supernet_path=weights, n_bn_cal=16, valid_limit=8, seed=3, device="cpu")
    SupernetEvaluator(cfg).evaluate(archs[:2], [tmp_path / "a", tmp_path / "b"])
    assert seen == [3, 3]


UNUSABLE = {  # how the supernet file is broken: what the one line says about it
    "corrupt": "weights-only loading refused it",
    "truncated": "PytorchStreamReader failed reading zip archive: failed finding central directory",
    "pickled module": "weights-only loading refused it (Unsupported global: GLOBAL torch.nn.modules.linear.Linear",
    "another space": "it does not fit the supernet being built: the supernet has no tensor convs.0.weight",
    "another width": "it does not fit the supernet being built: size mismatch for first_conv.conv.weight: copying a "
    "param with shape torch.Size([24, 3, 3, 3]) from checkpoint, the shape in current model is "
    "torch.Size([16, 3, 3, 3]) (and 368 more)",
}


def _write_unusable(kind, weights, path):
    if kind == "corrupt":
        path.write_bytes(b"not a checkpoint")
    elif kind == "truncated":
        data = Path(weights).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "pickled module":
        torch.save(torch.nn.Linear(2, 2), path)
    elif kind == "another space":
        torch.save({"state_dict": TinySupernet(10).state_dict()}, path)
    else:
        save_supernet_weights(build_supernet(SupernetConfig(width_mult=1.2)), path)


def _search(save, *flags):
    return run_cli(msunas.main, ["--save", str(save), "--lr", "16", "--ur", "16", "--device", "cpu", *flags])


@pytest.mark.parametrize("kind", sorted(UNUSABLE))
def test_an_unusable_supernet_is_one_line_before_anything_is_evaluated_or_written(weights, kind, tmp_path, capsys):
    path = tmp_path / "bad.pth"
    _write_unusable(kind, weights, path)
    assert _search(tmp_path / "run", "--supernet_path", str(path)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        f"error: --supernet_path {path} is not a readable checkpoint of the ofa_mbv3 supernet (10 classes, "
        "--width_mult 1.0): "
    )
    assert UNUSABLE[kind] in line
    assert line.endswith("; give the .pth written by python -m supernets.train or an OFA release")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dataset", "cifar10", "--data", "/nonexistent/cifar"], "cifar10 data directory not found: /nonexistent"),
        (["--vld_size", "5000"], "vld_size 5000 is out of range for digits"),
    ],
)
def test_an_unusable_dataset_is_one_line_before_anything_is_written(weights, flags, message, tmp_path, capsys):
    assert _search(tmp_path / "run", "--supernet_path", weights, *flags) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert not (tmp_path / "run").exists()

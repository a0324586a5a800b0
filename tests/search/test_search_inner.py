"""Two-level search: `--inner_search pit|fbnetv2` refines every candidate before it is measured.

Each engine runs one tiny search (4 + 2 evaluations, one inner epoch); the refined networks' numbers are checked
against independent counts on the network rebuilt from its `ckpt.pth`, and the chosen refined network goes
through `post_search.py` and `train.py`. A PIT search killed mid-iteration resumes to the same archive.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import evaluator.supernet as supernet_module
import msunas
import post_search
import train
from dnas.refined import apply_specs
from search_space import create_search_space
from utils.cli import run_cli

from .test_search_loop import Killed, archive_summary, argv, kill_at_evaluation

TINY = ["--n_doe", "4", "--iterations", "1", "--n_iter", "2", "--ur", "16", "--n_bn_cal", "64"]
TINY += ["--inner_epochs", "1", "--inner_images", "192", "--inner_strength", "2", "--inner_lr", "0.3"]
SPACE = create_search_space("ofa_mbv3").unrestricted()


def flags(engine: str) -> list[str]:
    return [*TINY, "--inner_search", engine, "--sec_obj", "macs" if engine == "pit" else "latency"]


def run(weights, save, engine, *extra):
    assert run_cli(msunas.main, argv(weights, save, *flags(engine), *extra)) == 0
    return json.loads((save / "iter_1.stats").read_text())


@pytest.fixture(scope="module", params=["pit", "fbnetv2"])
def inner_run(request, weights, tmp_path_factory):
    save = tmp_path_factory.mktemp(request.param) / "run"
    return request.param, save, run(weights, save, request.param)


def rebuilt(ckpt_path):
    """The network a `ckpt.pth` holds, rebuilt from its architecture, layer specs and weights."""
    record = torch.load(ckpt_path, weights_only=True)
    network = apply_specs(SPACE.build_network(record["arch"], record["n_classes"]), record["specs"])
    network.load_state_dict(record["state_dict"])
    return network.eval()


def macs_and_params(network, resolution):
    with FlopCounterMode(display=False) as flops, torch.no_grad():
        network(torch.zeros(1, 3, resolution, resolution))
    return flops.get_total_flops() // 2, sum(p.numel() for p in network.parameters())


def test_every_metric_is_the_refined_networks_and_the_outer_ones_are_kept(inner_run):
    engine, save, stats = inner_run
    entries = stats["evaluations"]["entries"]
    assert len(entries) == 6 and all(e["stats"]["status"] == "ok" for e in entries)
    shrunk = 0
    for entry in entries:
        s, arch = entry["stats"], entry["arch"]
        folder = save / f"iter_{entry['iteration']}"
        (net,) = [d for d in folder.glob("net_*") if json.loads((d / f"{d.name}.subnet").read_text()) == arch]
        macs, params = macs_and_params(rebuilt(net / "ckpt.pth"), arch["r"])
        assert s["macs"] == pytest.approx(macs / 1e6, rel=1e-12) and s["params"] == pytest.approx(params / 1e6)
        outer = SPACE.cost_function(10)(arch).as_dict()
        assert s["outer"] == pytest.approx(outer)
        assert s["macs"] <= outer["macs"] and s["params"] <= outer["params"]
        shrunk += s["macs"] < outer["macs"]
        assert s["inner"]["engine"] == engine and s["inner"]["epochs"] == 1
        assert set(arch) == {"ks", "e", "d", "r"}  # the archive keeps the outer genome
    assert shrunk >= 1, "the inner search refined no candidate at all"
    sec_obj = "macs" if engine == "pit" else "latency"
    assert sec_obj in stats["surrogate"]  # the refined cost is predicted, not computed from the genome


def test_post_search_writes_the_refined_network_and_train_fine_tunes_it(inner_run, tmp_path):
    engine, save, stats = inner_run
    out = tmp_path / "final"
    assert run_cli(post_search.main, ["--save", str(out), "--expr", str(save / "iter_1.stats"), "--n", "1"]) == 0
    chosen = out / "net-trade-off_0"
    inherited = torch.load(chosen / "net.inherited", weights_only=True)
    assert "specs" in inherited and inherited["inner"]["engine"] == engine
    command = ["--subnet", str(chosen / "net.subnet"), "--epochs", "1", "--n_bn_cal", "64", "--device", "cpu"]
    assert run_cli(train.main, [*command, "--export", "onnx"]) == 0
    trained = json.loads((chosen / "net.stats").read_text())
    macs, params = macs_and_params(rebuilt(chosen / "ckpt.pth"), json.loads((chosen / "net.subnet").read_text())["r"])
    assert trained["macs"] == pytest.approx(macs / 1e6, rel=1e-12) and trained["params"] == pytest.approx(params / 1e6)
    assert (chosen / "net.onnx").is_file()


@pytest.mark.parametrize("inner_run", ["pit"], indirect=True)  # the engines share the evaluator's path
def test_a_killed_search_with_inner_search_resumes_to_the_same_archive(weights, inner_run, tmp_path, monkeypatch):
    engine, _, reference = inner_run
    save = tmp_path / "run"
    real = supernet_module.SupernetEvaluator.evaluate_one
    kill_at_evaluation(monkeypatch, 6)  # the second candidate of iteration 1
    with pytest.raises(Killed):
        msunas.main(argv(weights, save, *flags(engine)))
    monkeypatch.setattr(supernet_module.SupernetEvaluator, "evaluate_one", real)
    resumed = run(weights, save, engine, "--resume", str(save / "iter_0.stats"))
    assert archive_summary(resumed) == archive_summary(reference)
    assert [e["stats"]["params"] for e in resumed["evaluations"]["entries"]] == [
        e["stats"]["params"] for e in reference["evaluations"]["entries"]
    ]

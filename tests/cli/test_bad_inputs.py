"""Bad invocations of every CLI: each is exit 2, one `error:` line on stderr, no traceback, and no file changed.

The CLIs run in-process through `utils.cli.run_cli`. One tiny finished search (and the network `post_search.py`
chose from it) is made once; every bad file lives beside it, under one results folder whose every file (bytes and
mtime) is compared before and after each call. Settings are tiny, so a check that is missing costs seconds, not a
search, and shows as a written file or a traceback.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import bench.darts
import bench.fbnetv2
import bench.pit
import bench.predictors
import bench.report
import bench.search_efficiency
import bench.supernet
import early_exit.train
import msunas
import post_search
import supernets.default
import supernets.train
import train
from supernets.default import default_weights_path
from utils.cli import dataclass_from_args, run_cli

MAINS = {
    "msunas": msunas.main,
    "post_search": post_search.main,
    "train": train.main,
    "early_exit.train": early_exit.train.main,
    "supernets.train": supernets.train.main,
    "supernets.default": supernets.default.main,
    "bench.predictors": bench.predictors.main,
    "bench.search_efficiency": bench.search_efficiency.main,
    "bench.supernet": bench.supernet.main,
    "bench.pit": bench.pit.main,
    "bench.darts": bench.darts.main,
    "bench.fbnetv2": bench.fbnetv2.main,
}
TINY_SEARCH = "--n_doe 4 --iterations 0 --n_bn_cal 16 --lr 16 --ur 16 --device cpu --sec_obj macs --seed 0".split()
SUPERNET_TRAIN = "--epochs 1 --limit_train 64 --n_bn_cal 16 --n_card_random 2 --resolution 16 --batch_size 16".split()
# Each CLI's own flags before the bad ones (argparse: the last value of a flag wins): tiny settings, and outputs
# in a fresh folder of the results folder, so that anything a missed check writes is seen.
BASE = {
    "msunas": [*TINY_SEARCH, "--supernet_path", "{weights}", "--save", "{fresh}"],
    "post_search": "--save {fresh} --expr {run}/iter_0.stats --prefer top1".split(),
    "train": "--subnet {net}/net.subnet --epochs 0 --n_bn_cal 16 --device cpu --save {fresh}".split(),
    "early_exit.train": [
        *"--subnet {inputs}/ee/net.subnet --warmup_ee_epochs 0 --ee_epochs 0 --n_bn_cal 16 --device cpu".split(),
        "--save",
        "{fresh}",
    ],
    "supernets.train": [*SUPERNET_TRAIN, "--device", "cpu", "--out", "{fresh}"],
    "supernets.default": "--out {inputs}/default --device cpu".split(),
    "bench.predictors": "--n_archs 4 --n_repeat 0 --seeds 1 --n_bn_cal 16 --backend sequential".split(),
    "bench.search_efficiency": "--seeds 1 --n_doe 4 --iterations 1 --baseline_iterations 1 --predictor carts".split(),
    "bench.supernet": "--steps 1 --subnets 2 --batch_size 8 --resolution 16 --device cpu".split(),
    "bench.pit": "--resolution 16 --limit 64 --vld_size 100 --seed_epochs 0 --pit_epochs 0 --ft_epochs 0".split(),
    "bench.darts": "--epochs 1 --final_epochs 1 --n_train 32 --n_valid 16 --n_test 16".split(),
    "bench.fbnetv2": "--resolution 8 --arrays 8 --strengths 0 --epochs 0 --final_epochs 0".split(),
}
LARGEST = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 16}


@dataclass(frozen=True)
class Bad:
    """One bad invocation: the CLI, the flags after its `BASE` ones, and a piece of the expected message."""

    cli: str
    argv: tuple[str, ...]
    says: str

    @property
    def id(self) -> str:
        return re.sub(r"[^\w.=#-]+", "_", f"{self.cli}:{' '.join(self.argv)}").strip("_")


def bad(cli: str, argv: str, says: str) -> Bad:
    return Bad(cli, tuple(argv.split()), says)


CASES = [
    # msunas.py: flags
    bad("msunas", "--sec_obj flops", "flops"),
    bad("msunas", "--predictor oracle", "oracle"),
    bad("msunas", "--sec_predictor oracle", "oracle"),
    bad("msunas", "--sec_obj avg_macs", "avg_macs is measured only by"),
    bad("msunas", "--algorithm hillclimb", "hillclimb"),
    bad("msunas", "--evaluator oracle", "oracle"),
    bad("msunas", "--search_space resnet", "resnet"),
    bad("msunas", "--dataset mnist", "mnist"),
    bad("msunas", "--n_iter many", "invalid int value"),
    bad("msunas", "--lr 24 --ur 16", "--lr 24 is larger than --ur 16"),
    bad("msunas", "--n_doe 1", "--n_doe"),
    bad("msunas", "--n_doe 3", "at least 4"),
    bad("msunas", "--systolic_array 16by16", "--systolic_array"),
    bad("msunas", "--n_gpus {too_many_gpus}", "--n_gpus {too_many_gpus} but {cuda_seen}"),
    bad("msunas", "--no_such_flag 1", "unrecognized arguments"),
    # msunas.py: datasets
    bad("msunas", "--dataset fashion_mnist --data {root}/no_data", "{root}/no_data"),
    bad("msunas", "--dataset fashion_mnist --data {inputs}/fmnist", "IDX file"),
    bad("msunas", "--dataset cifar10 --data {inputs}/fmnist", "cifar"),
    bad("msunas", "--dataset imagenet --data {inputs}/fmnist", "{inputs}/fmnist"),
    # msunas.py: supernet weights
    bad("msunas", "--supernet_path {root}/no_weights.pth", "{root}/no_weights.pth"),
    bad("msunas", "--supernet_path {inputs}/random.pth", "{inputs}/random.pth"),
    bad("msunas", "--inner_search slim", "--inner_search must be one of none, fbnetv2, pit"),
    bad("msunas", "--inner_search pit --inner_epochs 0", "--inner_epochs must be >= 1"),
    bad("msunas", "--inner_search fbnetv2 --inner_strength -1", "--inner_strength"),
    bad("msunas", "--inner_search pit --search_space eemobilenetv3", "--inner_search pit refines candidates of"),
    bad("msunas", "--search_space darts --n_epochs 1", "--search_space darts has no supernet"),
    bad("msunas", "--supernet_path {inputs}/half.pth", "{inputs}/half.pth"),
    bad("msunas", "--supernet_path {inputs}/list.pth", "{inputs}/list.pth"),
    # msunas.py: --resume and --save
    bad("msunas", "--resume {root}/no_search/iter_0.stats", "{root}/no_search/iter_0.stats"),
    bad("msunas", "--resume {inputs}/not_json/iter_0.stats", "{inputs}/not_json/iter_0.stats"),
    bad("msunas", "--resume {inputs}/truncated/iter_0.stats", "{inputs}/truncated/iter_0.stats"),
    bad("msunas", "--resume {inputs}/foreign/iter_0.stats", "{inputs}/foreign/iter_0.stats"),
    bad("msunas", "--resume {run}/iter_0.stats --seed 5", "--seed"),
    bad("msunas", "--save {run}", "already holds a search"),
    # post_search.py
    bad("post_search", "--expr {root}/no_search/iter_0.stats", "not found"),
    bad("post_search", "--expr {run}", "--get_archive"),
    bad("post_search", "--expr {inputs}/not_json/iter_0.stats", "{inputs}/not_json/iter_0.stats"),
    bad("post_search", "--expr {inputs}/truncated/iter_0.stats", "{inputs}/truncated/iter_0.stats"),
    bad("post_search", "--expr {inputs}/foreign/iter_0.stats", "{inputs}/foreign/iter_0.stats"),
    bad("post_search", "--get_archive --expr {inputs}/scan", "{inputs}/scan/search.json"),
    bad("post_search", "--prefer flops", "flops"),
    bad("post_search", "-n 0", "-n must be >= 1"),
    bad("post_search", "--save {run}/final", "--overwrite"),
    bad("post_search", "--supernet_path {inputs}/random.pth", "{inputs}/random.pth"),
    bad("post_search", "--supernet_path {inputs}/half.pth", "{inputs}/half.pth"),
    # train.py
    bad("train", "--subnet {root}/no_net/net.subnet", "{root}/no_net/net.subnet"),
    bad("train", "--subnet {inputs}/not_json.subnet", "{inputs}/not_json.subnet"),
    bad("train", "--subnet {inputs}/list.subnet", "{inputs}/list.subnet"),
    bad("train", "--subnet {inputs}/invalid.subnet", "ks"),
    bad("train", "--subnet {inputs}/early_exit.subnet", "{inputs}/early_exit.subnet"),
    bad("train", "--subnet {inputs}/bad_inherited/net.subnet", "{inputs}/bad_inherited/net.inherited"),
    bad("train", "--init {inputs}/random.pth", "{inputs}/random.pth"),
    bad("train", "--init {inputs}/bad_specs.pth", "no.such.layer"),
    bad("train", "--init {inputs}/half.pth", "{inputs}/half.pth"),
    bad("train", "--init {inputs}/list.pth", "{inputs}/list.pth"),
    bad("train", "--export tflite", "tflite"),
    bad("train", "--resume", "--resume"),
    bad("train", "--epochs -2", "--epochs"),
    bad("train", "--dataset mnist", "mnist"),
    bad("train", "--dataset fashion_mnist --data {root}/no_data", "{root}/no_data"),
    # python -m early_exit.train
    bad("early_exit.train", "--subnet {net}/net.subnet", "fine-tune it with train.py"),
    bad("early_exit.train", "--subnet {inputs}/early_exit.subnet", "{inputs}/early_exit.subnet"),
    bad("early_exit.train", "--search_space ofa_mbv3", "single-exit networks"),
    bad("early_exit.train", "--method branchy", "branchy"),
    bad("early_exit.train", "--init {inputs}/random.pth", "{inputs}/random.pth"),
    bad("early_exit.train", "--init {inputs}/half.pth", "{inputs}/half.pth"),
    bad("early_exit.train", "--init {inputs}/list.pth", "{inputs}/list.pth"),
    bad("early_exit.train", "--ee_epochs -1", "--ee_epochs"),
    bad("early_exit.train", "--epochs 3", "unrecognized arguments"),
    bad("early_exit.train", "--resume", "nothing to resume"),
    bad("early_exit.train", "--export tflite", "tflite"),
    # python -m supernets.train
    bad("supernets.train", "--epochs -1", "--epochs"),
    bad("supernets.train", "--dataset mnist", "mnist"),
    bad("supernets.train", "--dataset fashion_mnist --data {inputs}/fmnist", "IDX file"),
    bad("supernets.train", "--init {inputs}/random.pth", "{inputs}/random.pth"),
    bad("supernets.train", "--out {inputs}/cached", "--overwrite"),
    # python -m supernets.default
    bad("supernets.default", "--device tpu", "tpu"),
    bad("supernets.default", "--epochs 3", "unrecognized arguments"),
    bad("supernets.default", "--out {inputs}/default", "{inputs}/default"),
    bad("supernets.default", "--out {inputs}/default_foreign", "not a supernet card"),
    # benchmarks that take paths
    bad("bench.predictors", "--weights {root}/no_weights.pth", "{root}/no_weights.pth"),
    bad("bench.predictors", "--weights {inputs}/bad_card/net.pth", "{inputs}/bad_card/net.json"),
    bad("bench.predictors", "--weights {weights} --backend slurm", "slurm"),
    bad("bench.predictors", "--table {root}/no_table.json", "{root}/no_table.json"),
    bad("bench.predictors", "--table {inputs}/bad_rows.json", "row 1"),
    bad("bench.predictors", "--table {inputs}/bad_rows.json --weights {weights}", "not allowed with"),
    bad("bench.search_efficiency", "--table {root}/no_table.json", "{root}/no_table.json"),
    bad("bench.search_efficiency", "--table {inputs}/not_json/iter_0.stats", "{inputs}/not_json/iter_0.stats"),
    bad("bench.search_efficiency", "--table {inputs}/foreign/iter_0.stats", "{inputs}/foreign/iter_0.stats"),
    bad("bench.search_efficiency", "--table {inputs}/bad_rows.json", "row 1"),
    bad("bench.search_efficiency", "--table {inputs}/bad_rows.json --seeds 0", "--seeds"),
    bad("bench.search_efficiency", "--table {inputs}/bad_rows.json --costs flops", "flops"),
    bad("bench.supernet", "--weights {root}/no_weights.pth", "{root}/no_weights.pth"),
    bad("bench.supernet", "--steps 0", "--steps"),
    bad("bench.pit", "--dataset mnist", "mnist"),
    bad("bench.darts", "--tasks speech", "speech"),
    bad("bench.fbnetv2", "--dataset mnist", "mnist"),
]


def write_idx(path: Path, magic: int, dims: tuple[int, ...], n_bytes: int) -> None:
    """An IDX file whose header promises `dims` but which holds only `n_bytes` of data."""
    path.write_bytes(struct.pack(f">{1 + len(dims)}I", magic, *dims) + bytes(n_bytes))


def make_inputs(inputs: Path, run: Path, weights: Path) -> None:
    """Corrupt, truncated and foreign files of every kind the CLIs read."""
    inputs.mkdir()
    weight_bytes = weights.read_bytes()
    (inputs / "random.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    (inputs / "half.pth").write_bytes(weight_bytes[: len(weight_bytes) // 2])
    torch.save([1, 2, 3], inputs / "list.pth")
    stats = (run / "iter_0.stats").read_text()
    for name, text in [("not_json", "{not json"), ("truncated", stats[: len(stats) // 2]), ("foreign", '{"a": 1}')]:
        (inputs / name).mkdir()
        (inputs / name / "iter_0.stats").write_text(text)
    (inputs / "not_json.subnet").write_text("ks: [3, 3]")
    (inputs / "list.subnet").write_text(json.dumps([3, 5, 7]))
    (inputs / "invalid.subnet").write_text(json.dumps({**LARGEST, "ks": [4] * 20}))
    (inputs / "early_exit.subnet").write_text(json.dumps({**LARGEST, "t": [0.9] * 4}))
    shutil.copytree(run, inputs / "scan", ignore=shutil.ignore_patterns("final"))
    (inputs / "scan" / "search.json").write_text('{"seed": 0, "sec_')
    (chosen,) = (run / "final").glob("net-top1_*")
    (inputs / "ee").mkdir()
    (inputs / "ee" / "net.subnet").write_text(
        json.dumps({**json.loads((chosen / "net.subnet").read_text()), "b": [1, 0, 0, 1]})
    )
    shutil.copyfile(chosen / "net.inherited", inputs / "ee" / "net.inherited")
    refined = torch.load(chosen / "net.inherited", weights_only=True)  # a refined network's layer specs, one unknown
    refined["specs"] = {"no.such.layer": {"type": "Conv2d", "in_channels": 3, "out_channels": 8, "kernel_size": 3}}
    torch.save(refined, inputs / "bad_specs.pth")
    (inputs / "bad_inherited").mkdir()
    (inputs / "bad_inherited" / "net.subnet").write_text(json.dumps(LARGEST))
    (inputs / "bad_inherited" / "net.inherited").write_bytes(weight_bytes[:1000])
    fmnist = inputs / "fmnist"
    fmnist.mkdir()
    for split, n in [("train", 600), ("t10k", 100)]:
        write_idx(fmnist / f"{split}-images-idx3-ubyte", 2051, (n, 28, 28), 28 * 28 * 3)
        write_idx(fmnist / f"{split}-labels-idx1-ubyte", 2049, (n,), n)
    card = inputs / "bad_card"
    card.mkdir()
    (card / "net.pth").write_bytes(weight_bytes)
    (card / "net.json").write_text('{"dataset": "digits", "resol')
    for folder, card_text in [("default", '{"accuracy": {"smallest": 1'), ("default_foreign", '{"accuracy": 97}')]:
        default = default_weights_path(inputs / folder)
        default.parent.mkdir()
        default.write_bytes(weight_bytes)
        default.with_suffix(".json").write_text(card_text)
    cached = supernets.train.build_parser().parse_args(SUPERNET_TRAIN)
    name = dataclass_from_args(supernets.train.TrainConfig, cached).weights_name()
    (inputs / "cached").mkdir()
    (inputs / "cached" / f"{name}.pth").write_bytes(weight_bytes)
    rows = [{"arch": LARGEST, "top1": 90.0, "macs": 5.0, "params": 1.0}, {"arch": LARGEST, "top1": 90.0}]
    card_record = {"name": "t", "dataset": "digits", "resolutions": [16], "supernet": {"n_classes": 10}}
    (inputs / "bad_rows.json").write_text(json.dumps({"card": card_record, "rows": rows}))


@pytest.fixture(scope="module")
def results(weights, tmp_path_factory) -> dict[str, str]:
    """A results folder: a tiny finished search, the network chosen from it, and the bad inputs; the placeholders."""
    root = tmp_path_factory.mktemp("results")
    run = root / "run"
    assert run_cli(msunas.main, [*TINY_SEARCH, "--supernet_path", weights, "--save", str(run)]) == 0
    final = run / "final"
    assert (
        run_cli(post_search.main, ["--save", str(final), "--expr", str(run / "iter_0.stats"), "--prefer", "top1"]) == 0
    )
    (net,) = final.glob("net-top1_*")
    assert (net / "net.inherited").is_file()
    make_inputs(root / "inputs", run, Path(weights))
    visible = torch.cuda.device_count()
    return {
        "root": str(root),
        "run": str(run),
        "net": str(net),
        "inputs": str(root / "inputs"),
        "weights": weights,
        "too_many_gpus": str(visible + 1),
        "cuda_seen": f"only {visible}" if visible else "no CUDA device is visible",
    }


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `root`: its bytes and modification time."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()
    }


def changes(before: dict[str, tuple[bytes, int]], after: dict[str, tuple[bytes, int]]) -> list[str]:
    """What differs between two snapshots, one entry per file."""
    return [
        *(f"added {p}" for p in sorted(after.keys() - before.keys())),
        *(f"removed {p}" for p in sorted(before.keys() - after.keys())),
        *(f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]),
    ]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_a_bad_invocation_is_one_line_exit_2_and_changes_nothing(case, results, capsys, monkeypatch):
    root = Path(results["root"])
    monkeypatch.setattr(bench.report, "BENCH_DIR", root / "bench")  # a benchmark that runs through writes here
    monkeypatch.setattr(bench.report, "README", root / "bench" / "README.md")
    monkeypatch.setattr(bench.pit, "RESULTS", root / "bench" / "results")
    monkeypatch.setattr(bench.fbnetv2, "RESULTS", root / "bench" / "results")
    fill = {**results, "fresh": str(root / "fresh" / case.id)}
    argv = [a.format(**fill) for a in (*BASE[case.cli], *case.argv)]
    before = snapshot(root)
    capsys.readouterr()
    try:
        code = run_cli(MAINS[case.cli], argv)
    except SystemExit as exit:  # a parser that is not utils.cli's
        code = exit.code
    except Exception:
        pytest.fail(f"a traceback instead of a usage error:\n{traceback.format_exc()}")
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}; stderr: {err[-1000:]}"
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1, f"not one error line:\n{err[-2000:]}"
    assert case.says.format(**fill) in err
    assert not changes(before, snapshot(root)), changes(before, snapshot(root))


def test_the_suite_covers_every_cli_and_enough_cases():
    assert len(CASES) >= 30 and {case.cli for case in CASES} == set(MAINS)
    assert len({case.id for case in CASES}) == len(CASES)

import json
import logging
import shutil

import matplotlib.image
import pandas as pd
import pytest
import torch

import evaluator.supernet as supernet_module
import msunas
import post_search
from postsearch.finished import read_search
from postsearch.selection import TradeOff, build_front
from supernets.checkpoint import load_supernet_weights
from supernets.ofa_mbv3 import SupernetConfig, build_supernet, extract_subnet
from utils.cli import run_cli

TINY_SEARCH = [
    *("--lr", "16", "--ur", "20", "--n_doe", "6", "--iterations", "1", "--n_iter", "3"),
    *("--pop_size", "10", "--n_gen", "3", "--predictor", "carts", "--n_bn_cal", "32", "--device", "cpu"),
    *("--seed", "3", "--sec_obj", "macs", "--save_ckpt"),
]
LARGEST = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 20}


@pytest.fixture(scope="module")
def search(weights, tmp_path_factory):
    """A finished tiny search (accuracy against MACs, checkpoints saved) whose largest network failed."""
    save = tmp_path_factory.mktemp("search") / "run"
    real = supernet_module.SupernetEvaluator._train_and_validate

    def flaky(self, arch):
        if arch == LARGEST:
            raise FloatingPointError("non-finite training loss nan")
        return real(self, arch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(supernet_module.SupernetEvaluator, "_train_and_validate", flaky)
        assert run_cli(msunas.main, ["--supernet_path", weights, "--save", str(save), *TINY_SEARCH]) == 0
    stats = json.loads((save / "iter_1.stats").read_text())
    assert len(stats["evaluations"]["failed"]) == 1
    return save


def post(save, expr, *extra):
    return run_cli(post_search.main, ["--save", str(save), "--expr", str(expr), *extra])


def front_of(stats_path):
    finished = read_search(stats_path)
    config = finished.config
    objectives = [finished.objective(o) for o in config.objectives]
    return build_front(finished.archive.entries, objectives, config.constraints())


def folder_contents(folder):
    return sorted(p.name for p in folder.iterdir())


def test_trade_off_choices_are_written_with_inherited_weights(search, weights, tmp_path, capsys):
    out = tmp_path / "final"
    assert post(out, search / "iter_1.stats", "-n", "1", "--prefer", "trade-off") == 0
    front = front_of(search / "iter_1.stats")
    assert len(front) == 5  # the seeded search's front: enough members for a knee
    best = max(front.entries, key=lambda e: e.stats["top1"])
    (knee,) = [front.entries[i].arch for i in TradeOff().choose(front, 1)]
    assert knee != best.arch  # so the most accurate is offered in addition
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == ["net-top1_0", "net-trade-off_0"]
    assert [json.loads((out / n / "net.subnet").read_text()) for n in names] == [best.arch, knee]
    supernet = load_supernet_weights(build_supernet(SupernetConfig()), weights).eval()
    for name in names:
        net = out / name
        assert folder_contents(net) == ["ckpt.pth", "net.inherited", "net.stats", "net.subnet"]
        arch = json.loads((net / "net.subnet").read_text())
        stats = json.loads((net / "net.stats").read_text())
        entry = next(e for e in front.entries if e.arch == arch)  # a member of the front
        assert stats == entry.stats and {"top1", "params", "macs", "activations"} <= set(stats)
        ckpt = torch.load(net / "ckpt.pth", weights_only=True)
        assert ckpt["arch"] == arch

        inherited = torch.load(net / "net.inherited", weights_only=True)
        assert set(inherited) == {"state_dict", "arch", "n_classes", "width_mult"}
        assert inherited["arch"] == arch and inherited["n_classes"] == 10 and inherited["width_mult"] == 1.0
        torch.manual_seed(123)  # another initialisation: every weight must come from the file
        fresh = extract_subnet(build_supernet(SupernetConfig(n_classes=10, width_mult=1.0)), arch)
        fresh.load_state_dict(inherited["state_dict"])
        direct = extract_subnet(supernet, arch)
        x = torch.randn(2, 3, arch["r"], arch["r"], generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert torch.equal(fresh.eval()(x), direct.eval()(x))
    png = out / "front-trade-off.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.image.imread(png).shape[0] > 100
    assert not list(out.rglob("*.tmp")) and not [p for p in out.iterdir() if p.name.startswith(".")]
    printed = capsys.readouterr().out
    assert "net-trade-off_0: top1" in printed and "front-trade-off.png" in printed


def test_the_most_accurate_is_not_written_twice(search, tmp_path):
    out = tmp_path / "final"
    assert post(out, search / "iter_1.stats", "-n", "2", "--supernet_path", "none") == 0
    front = front_of(search / "iter_1.stats")
    best = max(front.entries, key=lambda e: e.stats["top1"])
    assert folder_contents(out) == ["front-trade-off.png", "net-trade-off_0", "net-trade-off_1"]
    assert json.loads((out / "net-trade-off_1" / "net.subnet").read_text()) == best.arch  # the far extreme


def test_best_on_an_objective_and_the_most_accurate(search, tmp_path):
    out = tmp_path / "final"
    assert post(out, search / "iter_1.stats", "-n", "2", "--prefer", "macs", "--supernet_path", "none") == 0
    front = front_of(search / "iter_1.stats")
    by_macs = sorted(front.entries, key=lambda e: (e.stats["macs"], -e.stats["top1"]))
    best = max(front.entries, key=lambda e: e.stats["top1"])
    for rank in range(2):
        assert json.loads((out / f"net-macs_{rank}" / "net.subnet").read_text()) == by_macs[rank].arch
        assert folder_contents(out / f"net-macs_{rank}") == ["ckpt.pth", "net.stats", "net.subnet"]
    assert json.loads((out / "net-top1_0" / "net.subnet").read_text()) == best.arch


def test_preference_string_folder_and_accuracy_direction(search, tmp_path):
    front = front_of(search / "iter_1.stats")
    member = front.entries[len(front) // 2]
    prefer = f"top1#{member.stats['top1']}+macs#{member.stats['macs']}"  # exactly one member: it is the choice
    out = tmp_path / "final"
    assert post(out, search / "iter_1.stats", "--prefer", prefer, "--supernet_path", "none") == 0
    label = prefer.replace("#", "-").replace("+", "-")
    assert json.loads((out / f"net-{label}_0" / "net.subnet").read_text()) == member.arch
    assert (out / f"front-{label}.png").is_file()


def test_stats_csv(search, tmp_path):
    out = tmp_path / "final"
    assert post(out, search / "iter_1.stats", "-n", "2", "--save_stats_csv", "--supernet_path", "none") == 0
    front = front_of(search / "iter_1.stats")
    chosen = pd.read_csv(out / "chosen-trade-off.csv")
    table = pd.read_csv(out / "front-trade-off.csv", keep_default_na=False)
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert sorted(chosen["folder"]) == folders
    assert {"folder", "iteration", "top1", "params", "macs", "activations", "arch"} <= set(chosen.columns)
    for row in chosen.itertuples():
        assert json.loads(row.arch) == json.loads((out / row.folder / "net.subnet").read_text())
        assert row.top1 == json.loads((out / row.folder / "net.stats").read_text())["top1"]
    assert len(table) == len(front)
    assert [json.loads(a) for a in table["arch"]] == [e.arch for e in front.entries]
    assert table["top1"].tolist() == [e.stats["top1"] for e in front.entries]
    assert sorted(f for f in table["folder"] if f) == folders


def test_get_archive_rebuilds_the_same_archive(search, tmp_path, caplog):
    copy = tmp_path / "run"
    shutil.copytree(search, copy, ignore=shutil.ignore_patterns("ckpt.pth"))
    for stats in copy.glob("iter_*.stats"):
        stats.unlink()
    broken = copy / "iter_1" / "net_7"
    broken.mkdir()
    (broken / "net_7.subnet").write_text(json.dumps(LARGEST))
    (broken / "net_7.stats").write_text("{broken")
    with caplog.at_level(logging.WARNING):
        scanned = read_search(copy, scan=True).archive
    assert "net_7" in caplog.text
    assert "failed" not in [e.stats["status"] for e in scanned.entries]
    stored = read_search(search / "iter_1.stats").archive
    assert [(e.arch, e.stats, e.iteration) for e in scanned] == [(e.arch, e.stats, e.iteration) for e in stored]
    assert LARGEST not in [e.arch for e in scanned]  # the failed evaluation is not used

    a, b = tmp_path / "a", tmp_path / "b"
    assert post(a, search / "iter_1.stats", "-n", "2", "--save_stats_csv", "--supernet_path", "none") == 0
    assert post(b, copy, "--get_archive", "-n", "2", "--save_stats_csv", "--supernet_path", "none") == 0
    assert (a / "front-trade-off.csv").read_text() == (b / "front-trade-off.csv").read_text()
    assert folder_contents(a) == folder_contents(b)


def test_single_objective_search_chooses_the_most_accurate(search, tmp_path, caplog):
    record = json.loads((search / "iter_1.stats").read_text())
    record["config"]["sec_obj"] = None
    single = tmp_path / "iter_1.stats"
    single.write_text(json.dumps(record))
    out = tmp_path / "final"
    with caplog.at_level(logging.INFO):
        assert post(out, single, "-n", "3", "--supernet_path", "none") == 0
    assert "single-objective search has no trade-off" in caplog.text
    entries = sorted(record["evaluations"]["entries"], key=lambda e: -e["stats"]["top1"])
    for rank in range(3):
        assert json.loads((out / f"net-trade-off_{rank}" / "net.subnet").read_text()) == entries[rank]["arch"]
    assert not (out / "net-top1_0").exists()  # it is net-trade-off_0
    assert (out / "front-trade-off.png").is_file()


def test_n_exits_keeps_networks_with_that_many_exits(search, tmp_path):
    record = json.loads((search / "iter_1.stats").read_text())
    record["config"]["search_space"] = "cbnmobilenetv3"
    for i, entry in enumerate(record["evaluations"]["entries"]):
        entry["arch"]["b"] = [1, 1, 0, 0] if i % 2 else [0, 0, 1, 0]
    for entry in record["evaluations"]["failed"]:
        entry["arch"]["b"] = [0, 0, 0, 1]
    stats = tmp_path / "iter_1.stats"
    stats.write_text(json.dumps(record))
    out = tmp_path / "final"
    assert post(out, stats, "--n_exits", "2", "--prefer", "macs", "--supernet_path", "none") == 0
    folders = [p for p in out.iterdir() if p.is_dir()]
    assert folders and all(sum(json.loads((p / "net.subnet").read_text())["b"]) == 2 for p in folders)
    two_exits = [e for i, e in enumerate(record["evaluations"]["entries"]) if i % 2]
    smallest = min(two_exits, key=lambda e: (e["stats"]["macs"], -e["stats"]["top1"]))
    assert json.loads((out / "net-macs_0" / "net.subnet").read_text()) == smallest["arch"]


def test_an_occupied_folder_needs_overwrite(search, tmp_path, capsys):
    out = tmp_path / "final"
    args = ("-n", "1", "--prefer", "params", "--supernet_path", "none")
    assert post(out, search / "iter_1.stats", *args) == 0
    stale = out / "net-params_0" / "stale.txt"
    stale.write_text("from an earlier run")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert post(out, search / "iter_1.stats", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "net-params_0" in err and "--overwrite" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert post(out, search / "iter_1.stats", *args, "--overwrite") == 0
    assert not stale.exists() and (out / "net-params_0" / "net.subnet").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--expr", "{tmp}/nope.stats"], "--expr file not found"),
        (["--expr", "{tmp}/bad.stats"], "not readable JSON"),
        (["--expr", "{tmp}/foreign.stats"], "is not an iter_{{k}}.stats written by this search"),
        (["--prefer", "flops"], "unknown objective 'flops'"),
        (["-n", "99"], "-n 99 is larger than the front to choose from ("),
        (["--prefer", "top1#80+macs"], "expected objective#target pairs"),
        (["--prefer", "top1#80"], "gives no target for macs"),
        (["--save", "{tmp}/a_file"], "is a file, not a folder"),
        (["--n_exits", "1"], "this search has no early-exit networks"),
        (["--expr", "{search}"], "is a folder: give its iter_{{k}}.stats, or --get_archive"),
        (["--get_archive"], "--get_archive rebuilds the archive of a search folder"),
        (["--get_archive", "--expr", "{tmp}"], "--expr file not found: {tmp}/search.json"),
        (["--supernet_path", "{tmp}/none.pth"], "--supernet_path {tmp}/none.pth not found"),
        (["-n", "0"], "-n must be >= 1"),
        (["-n", "two"], "invalid int value"),
    ],
)
def test_usage_errors_are_one_line_exit_2_and_write_nothing(search, tmp_path, capsys, extra, message):
    (tmp_path / "bad.stats").write_text("{not json")
    (tmp_path / "foreign.stats").write_text(json.dumps({"archive": []}))
    (tmp_path / "a_file").write_text("keep me")
    fill = {"tmp": str(tmp_path), "search": str(search)}
    out = tmp_path / "final"
    argv = ["--save", str(out), "--expr", str(search / "iter_1.stats"), *(a.format(**fill) for a in extra)]
    assert run_cli(post_search.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message.format(**fill) in err
    assert not out.exists() and (tmp_path / "a_file").read_text() == "keep me"

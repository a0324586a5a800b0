import json

import bench.report as report
from bench import oneshot

TINY = "--dataset digits --width_mult 0.25 --resolution 8 --train_images 64 --vld_size 100 --batch_size 16"
TINY += " --supernet_paths 8 --standalone_epochs 1 --n_archs 3 --n_random 2 --random_iteration 3 --generation_num 1"
TINY += " --population 3 --parent_num 2 --search_steps 2 --n_bn_cal 16 --device cpu"


def test_the_benchmark_ranks_both_supernets_and_trains_what_each_search_finds(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(report, "README", tmp_path / "README.md")
    assert oneshot.main(TINY.split()) == 0
    results = json.loads((tmp_path / "results" / "oneshot.json").read_text())
    rank, search = results["ranking"], results["search"]
    assert len(rank["paths"]) == len(rank["standalone"]) == 3
    for sampler in ("uniform", "fairstrict"):
        assert len(rank[sampler]["inherited"]) == 3 and -1 <= rank[sampler]["tau"] <= 1
    assert rank["uniform"]["paths_trained"] == rank["fairstrict"]["paths_trained"] == 8  # SPOS: 2 groups of G = 4
    assert set(search["found"]) == {"random_search", "evolution", "differentiable"}
    assert all(f["macs"] <= search["target_macs"] for f in search["found"].values())
    assert len(search["random"]) == 2 and all(r["macs"] <= search["target_macs"] for r in search["random"])
    assert (tmp_path / "results" / "oneshot.png").is_file()
    assert "Kendall tau" in (tmp_path / "README.md").read_text()


def test_the_benchmark_skips_with_one_line_without_its_dataset(tmp_path, capsys):
    assert oneshot.main(["--data", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("skipped: ") and len(out.splitlines()) == 1

import json
from pathlib import Path

from .test_scripts import run_script

ROOT = Path(__file__).resolve().parents[2]


def test_oneshot_script_searches_then_trains_the_found_architecture(tmp_path):
    tiny = "--epochs 1 --steps-per-epoch 1 --batch-size 8 --width-mult 0.25 --resolution 8 --generation_num 1"
    tiny += " --population 3 --parent-num 2 --n-bn-cal 8 --valid-limit 16 --device cpu"
    done = run_script(
        ROOT / "scripts" / "search_oneshot.sh", *tiny.split(), env={"SAVE": str(tmp_path), "TRAIN_EPOCHS": "1"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = tmp_path / "spos-fairstrict" / "evolution"
    stats = json.loads((found / "net.stats").read_text())
    assert stats["search"]["strategy"] == "evolution" and 0 <= stats["test_top1"] <= 100
    assert (found / "ckpt.pth").is_file() and (found / "search.png").is_file()

"""Writing benchmark results: a JSON file under bench/results/ and a markdown table inside bench/README.md."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import torch

from search_space.base import CostFunction
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from supernets.train import RESOLUTION_STEP
from utils.io import write_json, write_text

BENCH_DIR = Path(__file__).resolve().parent
README = BENCH_DIR / "README.md"


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
    }


def card_space(card: dict[str, object]) -> OFAMobileNetV3Space:
    """The search space a supernet card describes (its trained resolutions)."""
    resolutions = card["resolutions"]
    return OFAMobileNetV3Space(lr=min(resolutions), ur=max(resolutions), rstep=RESOLUTION_STEP)


def card_costs(card: dict[str, object]) -> CostFunction:
    """The exact cost function of the card's space, for its number of classes and width."""
    supernet = card["supernet"]
    return card_space(card).cost_function(supernet["n_classes"], supernet["width_mult"])


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def result_path(name: str) -> Path:
    """Where a benchmark writes its result file `name` (JSON, PNG): bench/results/."""
    return BENCH_DIR / "results" / name


def image(alt: str, png: str | Path) -> str:
    """The markdown of a PNG under bench/, as bench/README.md shows it."""
    return f"![{alt}]({Path(png).relative_to(BENCH_DIR)})"


def publish(name: str, results: dict[str, object], section: str) -> Path:
    """Save `results` as bench/results/<name>.json, put `section` in README between its markers, print it."""
    path = write_json(result_path(f"{name}.json"), results)
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    block = f"{begin}\n{section.strip()}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    write_text(README, text)
    print(section)
    return path

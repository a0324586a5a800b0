"""Choose architectures from a finished search and write each out, ready to fine-tune with `train.py`.

python post_search.py --save results/run/final --expr results/run/iter_30.stats -n 3 --prefer trade-off
python post_search.py --save results/run/final --expr results/run/iter_30.stats -n 2 --prefer macs
python post_search.py --save results/run/final --expr results/run/iter_30.stats --prefer "top1#80+macs#150"
python post_search.py --save results/run/final --expr results/run --get_archive --save_stats_csv

Each choice goes to `SAVE/net-{prefer}_{rank}/` (`net.subnet`, `net.stats`, `ckpt.pth` if the search saved one,
`net.inherited` from the supernet); the most accurate network is always offered too, as `net-top1_0`. How each
`--prefer` chooses is described in `postsearch/selection.py`. Everything is checked before anything is written.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evaluator import EVALUATORS
from postsearch.export import load_inheritance, name_choices, write_choice, write_plot, write_tables
from postsearch.finished import read_search
from postsearch.selection import build_front, choose, create_chooser, with_exits
from search.files import find_net_folder
from search.objectives import OBJECTIVES
from utils.cli import ArgumentParser, dataclass_from_args, run_cli
from utils.errors import UsageError

log = logging.getLogger("post_search")


@dataclass(frozen=True)
class PostSearchConfig:
    """The settings of one `post_search.py` run."""

    save: str = ""
    expr: str = ""
    n: int = 1
    prefer: str = "trade-off"
    get_archive: bool = False
    n_exits: int | None = None
    save_stats_csv: bool = False
    supernet_path: str | None = None
    overwrite: bool = False


def build_parser() -> argparse.ArgumentParser:
    """The command line (upstream's flag names)."""
    parser = ArgumentParser(prog="post_search.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--save", required=True, help="folder to write the chosen networks into")
    parser.add_argument(
        "--expr", required=True, help="the search's iter_{k}.stats (with --get_archive: the search folder)"
    )
    parser.add_argument("-n", "--n", type=int, default=1, help="how many networks to choose (default: 1)")
    parser.add_argument(
        "--prefer",
        default="trade-off",
        help=f"trade-off, an objective of the search ({', '.join(OBJECTIVES.names())}) or objective#target pairs "
        "like top1#80+macs#150 (default: trade-off)",
    )
    parser.add_argument(
        "--get_archive", action="store_true", help="rebuild the archive from the search folder's iter_*/net_*/"
    )
    parser.add_argument(
        "--n_exits",
        type=int,
        help="keep only early-exit networks with this many early exits (the final one not counted)",
    )
    parser.add_argument("--save_stats_csv", action="store_true", help="also write the chosen and the front as CSV")
    parser.add_argument(
        "--supernet_path",
        help="supernet to extract net.inherited from; none: no net.inherited (default: the search's, if present)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace outputs of an earlier run in --save")
    return parser


def parse_config(argv: Sequence[str] | None = None) -> PostSearchConfig:
    """Parse the command line into a `PostSearchConfig`."""
    return dataclass_from_args(PostSearchConfig, build_parser().parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python post_search.py`."""
    cfg = parse_config(argv)
    out = Path(cfg.save)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--save {out} is a file, not a folder")
    finished = read_search(cfg.expr, scan=cfg.get_archive)
    search, archive, folder = finished.config, finished.archive, finished.folder
    entries = archive.entries if cfg.n_exits is None else with_exits(archive.entries, cfg.n_exits, search.space())
    front = build_front(entries, [finished.objective(name) for name in search.objectives], search.constraints())
    chooser = create_chooser(cfg.prefer, finished.objective)
    choices = name_choices(chooser.label, choose(front, chooser, cfg.n), most_accurate=front.ranked()[0])
    inheritance = load_inheritance(cfg.supernet_path, search)

    tables = [out / f"chosen-{chooser.label}.csv", out / f"front-{chooser.label}.csv"] if cfg.save_stats_csv else []
    plot = out / f"front-{chooser.label}.png"
    taken = [p for p in [*(out / c.name for c in choices), *tables, plot] if p.is_file() or _non_empty(p)]
    if taken and not cfg.overwrite:
        raise UsageError(f"--save {out} already holds {', '.join(p.name for p in taken)}; pass --overwrite to replace")

    ckpts = {}
    for choice in choices:
        net = find_net_folder(folder, front.entries[choice.index], archive)
        ckpts[choice.name] = net / "ckpt.pth" if net is not None and (net / "ckpt.pth").is_file() else None
        if ckpts[choice.name] is None and EVALUATORS.get(search.evaluator_name).writes_networks(search):
            raise UsageError(
                f"the measured network of {choice.name} is missing: no ckpt.pth in its search folder "
                f"({net or 'not found'}), which the {search.evaluator_name} evaluator writes for every network"
            )
    for choice in choices:
        entry = front.entries[choice.index]
        fitted = [o for o in front.objectives if o.fit is not None]
        keys = search.space().structure_keys
        write_choice(out / choice.name, entry, ckpts[choice.name], inheritance, fitted, keys)
        stats = entry.stats
        costs = ", ".join(f"{k} {stats[k]:.3f} M" for k in ("params", "macs", "activations") if k in stats)
        print(f"{out / choice.name}: top1 {stats['top1']:.2f} %, {costs} (iteration {entry.iteration})")
    if tables:
        write_tables(*tables, front, choices)
    title = f"front of {len(front)} networks; --prefer {cfg.prefer} -n {cfg.n}"
    write_plot(plot, entries, front, choices, title)
    print(f"front with the choices marked: {plot}")
    return 0


def _non_empty(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


if __name__ == "__main__":
    raise SystemExit(run_cli(main))

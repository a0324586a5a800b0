"""MSuNAS: surrogate-assisted multi-objective search over Once-for-All MobileNetV3 subnets (upstream CNAS flags).

python msunas.py                                   # the embedded default: digits, the cached default supernet
python msunas.py --sec_obj macs --iterations 30    # accuracy against MACs
python msunas.py --resume results/run/iter_5.stats # continue a search
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from data import create_dataset
from evaluator import EVALUATORS, EvaluatorSpec, create_backend
from search.algorithms import SearchContext, create_algorithm
from search.archive import Archive
from search.config import SearchConfig, parse_config
from search.files import CONFIG_FILE
from search.loop import Search, check_save_folder
from search.state import SearchState, read_record
from search_space.ofa_mbv3_ee import EarlyExitSpace
from utils.cli import run_cli
from utils.errors import UsageError
from utils.io import write_json
from utils.seed import seed_everything

log = logging.getLogger("msunas")


def prepare(cfg: SearchConfig) -> tuple[SearchConfig, SearchState | None]:
    """Check the `--save`/`--resume` situation; returns the effective config and a resumed state (if any)."""
    if cfg.resume is None:
        check_save_folder(cfg)
        return cfg, None
    record = read_record(cfg.resume)
    cfg = dataclasses.replace(cfg, save=str(Path(cfg.resume).parent))
    stored = record["config"]
    changed = [k for k in cfg.differences(stored) if k != "save"]
    if changed:
        raise UsageError(
            f"--resume {cfg.resume} was written with other settings: "
            + ", ".join(f"--{k} {stored.get(k)!r} (now {getattr(cfg, k)!r})" for k in changed)
        )
    return cfg, SearchState.from_record(record, cfg.space(), cfg.resume)


def build_search(cfg: SearchConfig, state: SearchState | None) -> Search:
    """Assemble the parts through their registries."""
    space = cfg.space()
    objectives = [cfg.objective(name) for name in cfg.objectives]
    constraints = cfg.constraints()
    splits = create_dataset(cfg.dataset, data=cfg.data)  # for its classes: the evaluator checks the split it uses
    if cfg.n_classes is not None and cfg.n_classes != splits.n_classes:
        raise UsageError(f"--n_classes {cfg.n_classes} but dataset {cfg.dataset} has {splits.n_classes} classes")
    evaluator = EVALUATORS.get(cfg.evaluator_name)
    spec = EvaluatorSpec(cfg.evaluator_name, evaluator.arguments(cfg))
    costs = space.cost_function(splits.n_classes, cfg.width_mult, cfg.array)
    ctx = SearchContext(space, objectives, constraints, costs, seed=cfg.seed)
    algorithm = create_algorithm(
        cfg.algorithm,
        ctx,
        n_iter=cfg.n_iter,
        predictor=cfg.predictor,
        sec_predictor=cfg.sec_predictor,
        pop_size=cfg.pop_size,
        n_gen=cfg.n_gen,
    )
    backend = create_backend(
        cfg.backend,
        spec,
        n_workers=cfg.n_workers,
        n_gpus=cfg.n_gpus,
        gpu=cfg.gpu,
        device=cfg.device,
        cpus_per_eval=cfg.cpus_per_eval,
        max_retries=cfg.max_retries,
        eval_timeout=cfg.eval_timeout,
        ray_address=cfg.ray_address,
    )
    return Search(cfg, ctx, algorithm, backend, state or SearchState(archive=Archive(space)))


def front_table(search: Search) -> pd.DataFrame:
    """The final front (or, single-objective, the five most accurate) as a table."""
    archive = search.state.archive
    if len(search.ctx.objectives) > 1:
        rows = list(search.ctx.front(archive))
    else:
        rows = sorted(range(len(archive)), key=lambda i: -archive.entries[i].stats["top1"])[:5]
    sec_obj = search.config.sec_obj
    first = search.ctx.objectives[0]
    robust = [] if first.name == "top1" else [first.name, *(k for k in first.needs if k != "top1")]
    costs = dict.fromkeys(("params", "macs", "activations", *([sec_obj] if sec_obj else [])))
    table = pd.DataFrame(
        [
            {
                "iter": archive.entries[i].iteration,
                "top1": archive.entries[i].stats["top1"],
                **{k: archive.entries[i].stats.get(k) for k in robust[1:]},
                **({first.name: first.value(archive.entries[i].stats)} if robust else {}),
                **{k: archive.entries[i].stats.get(k) for k in costs},
                "arch": search.ctx.space.summary(archive.entries[i].arch),
            }
            for i in rows
        ],
        columns=["iter", "top1", *robust[1:], *robust[:1], *costs, "arch"],
    )
    return table.sort_values(sec_obj or "top1", ascending=bool(sec_obj))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python msunas.py`."""
    cfg = parse_config(argv)
    cfg, state = prepare(cfg)
    seed_everything(cfg.seed)  # before anything touches CUDA: it sets the determinism flags too
    search = build_search(cfg, state)
    save = Path(cfg.save)
    save.mkdir(parents=True, exist_ok=True)
    write_json(save / CONFIG_FILE, cfg.to_dict())
    with search.backend:
        final = search.run()
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        print(f"\nfinal {'front' if cfg.sec_obj else 'top architectures'} after iteration {final.iteration}:")
        table = front_table(search)
        print(table.to_string(index=False) if len(table) else "none: no evaluated architecture meets the constraints")
    print(f"\nresults in {save}: iter_{final.iteration}.stats, archive.csv, pareto_iter_{final.iteration}.png, hv.png")
    print(
        json.dumps({"hv": final.hv_history[-1], "evaluated": len(final.archive), "failed": len(final.archive.failed)})
    )
    print("\nnext: " + "\n      ".join(next_commands(cfg, final.iteration)))
    return 0


def next_commands(cfg: SearchConfig, iteration: int) -> list[str]:
    """The `post_search.py` command that picks networks from this search, and the `train.py` command after it."""
    prefer = "trade-off" if cfg.sec_obj else "top1"
    final = Path(cfg.save) / "final"
    flags = "" if cfg.dataset == "digits" else f" --dataset {cfg.dataset}" + (f" --data {cfg.data}" if cfg.data else "")
    space = "" if cfg.search_space == "ofa_mbv3" else f" --search_space {cfg.search_space}"
    subnet = f"{final}/net-{prefer}_0/net.subnet"
    if isinstance(cfg.space(), EarlyExitSpace):
        train = f"python -m early_exit.train --subnet {subnet} --method {cfg.ee.method} --export onnx{flags}{space}"
    else:
        robust = " --eval_robust --ood_eval" if cfg.robust.eval_robust else ""
        train = f"python train.py --subnet {subnet} --epochs 3 --export onnx{flags}{space}{robust}"
    return [
        f"python post_search.py --save {final} --expr {cfg.save}/iter_{iteration}.stats -n 2 --prefer {prefer}",
        train,
    ]


if __name__ == "__main__":
    raise SystemExit(run_cli(main))

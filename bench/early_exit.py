"""Early-exit search against single-exit search over one supernet, and what the exits save at inference.

1. Two msunas searches with the same supernet, resolutions, seed and number of true evaluations: an early-exit one
   (`--search_space cbnmobilenetv3 --sec_obj avg_macs`, or `eemobilenetv3`) and a single-exit one (`ofa_mbv3
   --sec_obj macs`). From their fronts: at a few levels of validation top-1, the fewest MACs per input each front
   reaches at or above that level, and their ratio.
2. For a few networks of the early-exit front: wall time of `EarlyExitNet.infer` on test images against the forward
   of the same backbone without exits, at two batch sizes, next to the speed-up `macs / avg_macs` predicts.
3. The wall time of one `ee` evaluation against one `supernet` evaluation of the same architectures.

Both searches train exit heads and calibrate batch norm on the first `--train_limit` training images and validate
on the first `--valid_limit` validation images (the CLI has no such caps: they keep the default run short).

    python -m bench.early_exit [--weights bench/cache/<supernet>.pth] [--n_doe 10 --iterations 2 --n_iter 4]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn

import msunas
from acc_predictor import PREDICTORS
from bench.report import image, machine, markdown_table, publish, result_path
from data import DatasetSplits, batches
from early_exit.costs import average_macs, exit_costs
from early_exit.model import EarlyExitNet
from early_exit.pipeline import attach_exits, policy_for
from early_exit.policy import create_policy
from evaluator import BACKENDS, EVALUATORS, EvaluatorSpec, create_backend, list_backends
from evaluator.base import EvalResult
from evaluator.early_exit import EarlyExitEvalConfig, EarlyExitEvaluator
from evaluator.supernet import SupernetEvaluator
from search.config import SearchConfig, parse_config
from search.loop import Search
from search.pareto import non_dominated
from search_space import Arch
from supernets.card import read_card
from training.checkpoint import read_checkpoint
from utils.cli import ArgumentParser, int_at_least, run_cli
from utils.seed import seed_everything

DEFAULT_WEIGHTS = "bench/cache/ofa_mbv3_d234_e346_k357_w1.0-fashion_mnist-r24-32.pth"
"""The Fashion-MNIST supernet of the pool benchmarks (run from the repository root, as every benchmark)."""
EE_SPACES = ("cbnmobilenetv3", "eemobilenetv3")
Point = tuple[float, float]
"""A front member: (validation top-1 in percent, MACs per input in millions)."""


@dataclass(frozen=True)
class LimitedEvalConfig(EarlyExitEvalConfig):
    """The `ee` evaluator's settings, training and calibrating on the first `train_limit` training images only.

    The `supernet` evaluator takes it too (it reads the base fields and ignores the exit training's).
    """

    train_limit: int | None = None

    def dataset_splits(self) -> DatasetSplits:
        """The dataset as the base config carves it, its training split cut to the first `train_limit` images."""
        splits = super().dataset_splits()
        if self.train_limit is None or self.train_limit >= len(splits.train):
            return splits
        return replace(splits, train=splits.train.subset(np.arange(self.train_limit)))


def limited_spec(cfg: SearchConfig, train_limit: int, valid_limit: int) -> EvaluatorSpec:
    """The evaluator the search `cfg` builds, with the benchmark's caps on training and validation images."""
    base = EVALUATORS.get(cfg.evaluator_name).arguments(cfg)["config"]
    values = {f.name: getattr(base, f.name) for f in fields(base)}
    config = LimitedEvalConfig(**{**values, "valid_limit": valid_limit, "train_limit": train_limit})
    return EvaluatorSpec(cfg.evaluator_name, {"config": config})


def run_search(argv: Sequence[str], train_limit: int, valid_limit: int) -> tuple[Search, EvaluatorSpec]:
    """`python msunas.py argv` run here with the evaluator of `limited_spec`; returns the finished search and spec."""
    cfg = parse_config(argv)
    seed_everything(cfg.seed)
    search = msunas.build_search(cfg, None)
    spec = limited_spec(cfg, train_limit, valid_limit)
    search.backend = create_backend(cfg.backend, spec, n_workers=cfg.n_workers, n_gpus=cfg.n_gpus, gpu=cfg.gpu)
    with search.backend:
        search.run()
    return search, spec


def front_points(records: Sequence[dict[str, Any]], cost: str) -> list[int]:
    """Indices of the records on the (top-1, `cost`) front, cheapest first."""
    if not records:
        return []
    front = non_dominated(np.array([[100.0 - r["top1"], r[cost]] for r in records]))
    return sorted(front.tolist(), key=lambda i: (records[i][cost], -records[i]["top1"]))


def cheapest_at(points: Sequence[Point], level: float) -> float | None:
    """The fewest MACs among `points` whose top-1 is at least `level`; None when none reaches it."""
    costs = [macs for top1, macs in points if top1 >= level]
    return min(costs) if costs else None


def common_levels(a: Sequence[Point], b: Sequence[Point], n: int) -> list[float]:
    """`n` evenly spaced top-1 levels both fronts reach: from the lower of their lowest top-1s to the lower of
    their highest (below its lowest top-1, a front reaches a level with its cheapest member)."""
    low = min(min(t for t, _ in a), min(t for t, _ in b))
    high = min(max(t for t, _ in a), max(t for t, _ in b))
    return sorted({float(v) for v in np.linspace(low, high, n)})


def compare_fronts(ee: Sequence[Point], se: Sequence[Point], levels: Sequence[float]) -> list[dict[str, float]]:
    """At each top-1 level: each front's fewest MACs at or above it, their ratio (EE / SE) and the MACs saved."""
    rows = []
    for level in levels:
        ee_macs, se_macs = cheapest_at(ee, level), cheapest_at(se, level)
        if ee_macs is None or se_macs is None:
            continue
        rows.append(
            {
                "top1": level,
                "ee_macs": ee_macs,
                "se_macs": se_macs,
                "ratio": ee_macs / se_macs,
                "saved": se_macs - ee_macs,
            }
        )
    return rows


def spread(n_members: int, n: int) -> list[int]:
    """Up to `n` indices spread evenly over `n_members` ordered front members, both ends included."""
    return sorted({int(round(i)) for i in np.linspace(0, n_members - 1, min(n, n_members))})


def median_seconds(
    runs: dict[str, Callable[[Tensor], object]], inputs: Sequence[Tensor], repeats: int
) -> dict[str, float]:
    """Each run's median seconds over `repeats` passes through `inputs`, after one warm-up pass each.

    The runs take turns batch by batch, in an order that alternates, so that they share the machine's load alike.
    """
    names = list(runs)
    for name in names:
        for x in inputs:
            runs[name](x)
    totals: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        spent = dict.fromkeys(names, 0.0)
        for j, x in enumerate(inputs):
            for name in names if (r + j) % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                runs[name](x)
                spent[name] += time.perf_counter() - start
        for name in names:
            totals[name].append(spent[name])
    return {name: statistics.median(values) for name, values in totals.items()}


def load_exit_net(evaluator: EarlyExitEvaluator, arch: Arch, ckpt: Path) -> tuple[EarlyExitNet, nn.Module]:
    """The early-exit network an `ee` evaluation saved in `ckpt`, and its backbone (the subnet, modules shared)."""
    subnet = evaluator.space.extract(evaluator.supernet, arch)
    method = evaluator.ee_config.ee.method
    net = attach_exits(evaluator.space, subnet, arch, evaluator.splits.n_classes, method, evaluator.ee_config.seed)
    net.load_state_dict(read_checkpoint(ckpt)["state_dict"])
    return net.eval(), subnet.eval()


def measure_inference(
    net: EarlyExitNet,
    subnet: nn.Module,
    epsilon: Sequence[float],
    method: str,
    images: dict[int, list[Tensor]],
    labels: Tensor,
    repeats: int,
) -> dict[str, Any]:
    """Wall time of `net.infer` against `subnet`'s forward per batch size, beside the MACs-predicted speed-up."""
    policy = create_policy(policy_for(method))
    resolution = images[max(images)][0].shape[-1]
    costs = exit_costs(net, resolution)
    inputs = images[max(images)]
    with torch.no_grad():
        plain = torch.cat([subnet(x).argmax(1) for x in inputs])
    predicted, exit_index = map(torch.cat, zip(*(net.infer(x, policy, epsilon) for x in inputs), strict=True))
    fractions = (torch.bincount(exit_index, minlength=net.n_exits).double() / len(exit_index)).tolist()
    avg = average_macs(fractions, costs)

    @torch.no_grad()
    def backbone(x: Tensor) -> Tensor:
        return subnet(x)

    def exits(x: Tensor) -> tuple[Tensor, Tensor]:
        return net.infer(x, policy, epsilon)

    timings = {}
    for size, batch in images.items():
        seconds = median_seconds({"backbone": backbone, "early_exit": exits}, batch, repeats)
        timings[str(size)] = {**seconds, "speedup": seconds["backbone"] / seconds["early_exit"]}
    return {
        "images": len(labels),
        "macs": costs.backbone_macs[-1],
        "avg_macs": avg,
        "exits_ratio": fractions,
        "predicted_speedup": costs.backbone_macs[-1] / avg,
        "top1_early_exit": 100.0 * float((predicted == labels).double().mean()),
        "top1_backbone": 100.0 * float((plain == labels).double().mean()),
        "timings": timings,
    }


def plot_fronts(
    path: Path, ee: Sequence[dict], se: Sequence[dict], ee_all: Sequence[dict], se_all: Sequence[dict]
) -> Path:
    """Both searches' archives (faint) and fronts: validation top-1 against MACs per input."""
    figure = Figure(figsize=(6.4, 4.8), dpi=120, layout="tight")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    for records, front, cost, colour, label in (
        (se_all, se, "macs", "tab:blue", "single-exit (MACs)"),
        (ee_all, ee, "avg_macs", "tab:red", "early-exit (average MACs)"),
    ):
        ax.scatter([r[cost] for r in records], [r["top1"] for r in records], s=10, c=colour, alpha=0.25)
        ax.plot([r[cost] for r in front], [r["top1"] for r in front], "o-", c=colour, ms=5, label=f"{label} front")
    ax.set_xlabel("MACs per input (millions)")
    ax.set_ylabel("validation top-1 (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def search_argv(card: dict[str, Any], weights: Path, args: Any) -> tuple[list[str], list[str]]:
    """The msunas.py command lines of the single-exit and the early-exit search (without `--save`)."""
    resolutions = card["resolutions"]
    common = [
        *("--dataset", card["dataset"], "--supernet_path", str(weights), "--seed", str(args.seed)),
        *("--lr", str(min(resolutions)), "--ur", str(max(resolutions)), "--n_doe", str(args.n_doe)),
        *("--iterations", str(args.iterations), "--n_iter", str(args.n_iter), "--predictor", args.predictor),
        *("--n_bn_cal", str(args.n_bn_cal), "--backend", args.backend, "--n_workers", str(args.n_workers)),
        *("--width_mult", str(card["supernet"]["width_mult"]), "--device", "cpu"),
    ]
    single = [*common, "--search_space", "ofa_mbv3", "--sec_obj", "macs"]
    early = [
        *common,
        *("--search_space", args.ee_space, "--sec_obj", "avg_macs", "--method", args.method),
        *("--warmup_ee_epochs", str(args.warmup_ee_epochs), "--ee_epochs", str(args.ee_epochs)),
    ]
    return single, early


def build_parser() -> ArgumentParser:
    """The benchmark's flags: the searches' budget, the exit training, and the inference timing."""
    parser = ArgumentParser(prog="python -m bench.early_exit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="supernet weights with their card beside")
    parser.add_argument("--ee_space", default=EE_SPACES[0], choices=EE_SPACES, help="the early-exit search space")
    parser.add_argument("--method", default="bernulli", help="early-exit training: bernulli (NACHOS) or joint")
    parser.add_argument("--warmup_ee_epochs", type=int_at_least(0), default=1, help="exit-head training epochs")
    parser.add_argument("--ee_epochs", type=int_at_least(0), default=1, help="exit training epochs after the warm-up")
    parser.add_argument("--train_limit", type=int_at_least(2), default=2000, help="training images (exits, BN)")
    parser.add_argument("--valid_limit", type=int_at_least(1), default=2000, help="validation images")
    parser.add_argument("--n_bn_cal", type=int_at_least(1), default=500, help="batch-norm calibration images")
    parser.add_argument("--n_doe", type=int_at_least(4), default=10, help="initial design of each search")
    parser.add_argument("--iterations", type=int_at_least(0), default=2, help="iterations of each search")
    parser.add_argument("--n_iter", type=int_at_least(1), default=4, help="candidates per iteration")
    parser.add_argument(
        "--predictor",
        default="gp",
        choices=PREDICTORS.names(),
        help=f"surrogate of both searches. {PREDICTORS.describe()}",
    )
    parser.add_argument("--backend", default="process", choices=list_backends(aliases=False), help=BACKENDS.describe())
    parser.add_argument("--n_workers", type=int_at_least(1), default=2, help="CPU workers of the process backend")
    parser.add_argument("--seed", type=int, default=0, help="both searches' seed")
    parser.add_argument("--levels", type=int_at_least(1), default=5, help="top-1 levels the fronts are compared at")
    parser.add_argument("--n_nets", type=int_at_least(1), default=3, help="early-exit front members timed")
    parser.add_argument("--infer_images", type=int_at_least(1), default=128, help="test images per timed pass")
    parser.add_argument("--batch_sizes", type=int_at_least(1), nargs="+", default=[1, 64], help="timed batch sizes")
    parser.add_argument("--repeats", type=int_at_least(1), default=5, help="timed passes (the median is kept)")
    parser.add_argument("--threads", type=int_at_least(1), default=1, help="torch threads of the timed parts")
    return parser


def search_summary(search: Search, seconds: float) -> dict[str, Any]:
    """A finished search's evaluated architectures, its front (cheapest first) and how long it took."""
    cost = search.config.sec_obj
    keep = ("top1", "macs", "avg_macs", "params", "exits_ratio", "epsilon", "wall_time_s")
    entries = list(search.state.archive)
    archive = [
        {"arch": e.arch, "summary": search.ctx.space.summary(e.arch), **{k: e.stats[k] for k in keep if k in e.stats}}
        for e in entries
    ]
    return {
        "cost": cost,
        "evaluations": len(entries),
        "failed": len(search.state.archive.failed),
        "seconds": seconds,
        "median_evaluation_s": statistics.median(e.stats["wall_time_s"] for e in entries),
        "archive": archive,
        "front": [archive[i] for i in front_points([e.stats for e in entries], cost)],
    }


def evaluated(result: EvalResult) -> EvalResult:
    """`result`, which must have succeeded (the benchmark reports no made-up numbers)."""
    if not result.ok:
        raise RuntimeError(f"evaluation of {result.arch} failed: {result.error}")
    return result


def measure_front_members(search: Search, spec: EvaluatorSpec, args: Any, folder: Path) -> list[dict[str, Any]]:
    """Members spread over the early-exit front: their `supernet` and `ee` evaluations, then their inference timed.

    `args.n_nets` members, each evaluated once by each evaluator in this process (timed), then the early-exit
    network the `ee` evaluation saved is timed against its backbone (`measure_inference`).
    """
    entries = list(search.state.archive)
    front = front_points([e.stats for e in entries], "avg_macs")
    config = replace(spec.kwargs["config"], save_ckpt=True, device="cpu")
    ee_eval, se_eval = EarlyExitEvaluator(config), SupernetEvaluator(config)
    chosen = [entries[front[i]] for i in spread(len(front), args.n_nets)]
    evaluated(se_eval.evaluate_one(chosen[0].arch, folder / "warm-up"))  # first-call costs out of the timings
    members = []
    for k, entry in enumerate(chosen):
        single = evaluated(se_eval.evaluate_one(entry.arch, folder / f"single_{k}"))
        early = evaluated(ee_eval.evaluate_one(entry.arch, folder / f"early_{k}"))
        net, subnet = load_exit_net(ee_eval, entry.arch, folder / f"early_{k}" / "ckpt.pth")
        resolution = ee_eval.space.resolution(entry.arch)
        test = {
            size: list(batches(ee_eval.splits, "test", resolution, size, train=False, limit=args.infer_images))
            for size in args.batch_sizes
        }
        labels = torch.cat([y for _, y in test[max(test)]])
        images = {size: [x for x, _ in pairs] for size, pairs in test.items()}
        epsilon = early.extras["epsilon"]
        members.append(
            {
                "arch": entry.arch,
                "summary": search.ctx.space.summary(entry.arch),
                "search_top1": entry.stats["top1"],
                "search_avg_macs": entry.stats["avg_macs"],
                "top1": early.top1,
                "avg_macs": early.extras["avg_macs"],
                "backbone_top1": {"supernet": single.top1, "ee_final_exit": early.extras["per_exit_top1"][-1]},
                "epsilon": epsilon,
                "evaluation_s": {
                    "supernet": single.wall_time_s,
                    "ee": early.wall_time_s,
                    "ratio": early.wall_time_s / single.wall_time_s,
                },
                "inference": measure_inference(net, subnet, epsilon, config.ee.method, images, labels, args.repeats),
            }
        )
    return members


def ratio_line(comparison: Sequence[dict[str, float]]) -> str:
    """One sentence on the range of the EE / SE MACs ratios over the compared levels."""
    ratios = [r["ratio"] for r in comparison]
    return (
        f"At equal validation top-1 the early-exit front spends {min(ratios):.2f} to {max(ratios):.2f} times the "
        f"single-exit front's MACs per input over these {len(ratios)} levels (median {statistics.median(ratios):.2f})."
    )


def section(results: dict[str, Any], args: Any, card: dict[str, Any], png: Path) -> str:
    """The README section: the fronts, the MACs saved at equal top-1, inference speed-ups, evaluation overhead."""
    searches, members = results["searches"], results["front_members"]
    ee, se = searches["early_exit"], searches["single_exit"]
    sizes = [str(s) for s in args.batch_sizes]
    fronts = [
        [name, f"{r['top1']:.2f}", f"{r[cost]:.2f}", f"{r['macs']:.2f}", f"`{r['summary']}`"]
        for name, run, cost in (("single-exit", se, "macs"), ("early-exit", ee, "avg_macs"))
        for r in run["front"]
    ]
    compared = [
        [f"{r['top1']:.2f}", f"{r['se_macs']:.2f}", f"{r['ee_macs']:.2f}", f"{r['ratio']:.2f}", f"{r['saved']:.2f}"]
        for r in results["comparison"]
    ]
    inference = [
        [
            f"`{m['summary']}`",
            f"{m['top1']:.2f}",
            f"{m['inference']['macs']:.2f}",
            f"{m['inference']['avg_macs']:.2f}",
            " / ".join(f"{f:.2f}" for f in m["inference"]["exits_ratio"]),
            f"{m['inference']['predicted_speedup']:.2f}",
            *(f"{m['inference']['timings'][s]['speedup']:.2f}" for s in sizes),
            f"{m['inference']['top1_early_exit']:.1f} / {m['inference']['top1_backbone']:.1f}",
        ]
        for m in members
    ]
    overhead = [
        [
            f"`{m['summary']}`",
            *(f"{m['evaluation_s'][k]:.1f}" for k in ("supernet", "ee")),
            f"{m['evaluation_s']['ratio']:.1f}",
            " / ".join(f"{m['backbone_top1'][k]:.2f}" for k in ("supernet", "ee_final_exit")),
        ]
        for m in members
    ]
    same = all(abs(m["top1"] - m["search_top1"]) < 1e-9 for m in members)
    kept = all(m["backbone_top1"]["supernet"] == m["backbone_top1"]["ee_final_exit"] for m in members)
    n_images = members[0]["inference"]["images"] if members else 0
    mach = results["machine"]
    parts = [
        "## Early-exit search against single-exit search (`python -m bench.early_exit`)",
        f"`{results['command'].strip()}`",
        f"{card['dataset']}, supernet `{Path(args.weights).name}` (resolutions {card['resolutions']}), seed "
        f"{args.seed}; true evaluations: {se['evaluations']} single-exit, {ee['evaluations']} early-exit "
        f"({args.n_doe} initial, then {args.iterations} iterations of {args.n_iter}), `{args.backend}` backend: "
        f"`{results['searches_as']['single_exit']}` and `{results['searches_as']['early_exit']}`, with exit heads "
        f"trained and batch norm calibrated on the first {args.train_limit} training images and validation on the "
        f"first {args.valid_limit} validation images (caps the CLI lacks). Top-1 is validation top-1; "
        f"early-exit thresholds are chosen on the same images; one image is {100 / args.valid_limit:.2f} points. "
        f"{results['elapsed_s'] / 60:.1f} min in all, torch {mach['torch']}, {mach['cpu_threads']} thread(s) "
        "for the timed parts.",
        "### Fronts",
        markdown_table(["search", "top-1 (%)", "MACs per input (M)", "backbone MACs (M)", "network"], fronts),
        image("validation top-1 against MACs per input, both fronts", png),
        "### MACs per input at equal validation top-1",
        "Levels evenly spaced from the lower of the two fronts' lowest top-1s to the lower of their highest; each "
        "cell is the fewest MACs per input a front reaches at or above the level (early exit: average MACs, heads "
        "included). Both initial designs hold their space's smallest network, so below a front's lowest top-1 its "
        "cheapest member is what the space offers.",
        markdown_table(
            ["top-1 ≥ (%)", "single-exit MACs (M)", "early-exit avg MACs (M)", "EE / SE", "MACs saved (M)"],
            compared,
        ),
        ratio_line(results["comparison"]),
        "### Inference: early exit against the same backbone without exits",
        f"{len(members)} members spread over the early-exit front, each evaluated again by the `ee` evaluator "
        f"(top-1 {'equal to' if same else 'different from'} the search's) and loaded from its checkpoint. "
        f"`EarlyExitNet.infer` against the backbone's forward on the first {n_images} test images, the two taking "
        f"turns batch by batch, median of {args.repeats} passes, {args.threads} thread(s); predicted speed-up: "
        "backbone MACs / average MACs over the same images. Measured speed-up: backbone seconds / early-exit "
        f"seconds at batch size {', '.join(sizes)}.",
        markdown_table(
            [
                "network",
                "valid top-1 (%)",
                "MACs (M)",
                "avg MACs (M)",
                "exit ratios",
                "predicted",
                *(f"measured b={s}" for s in sizes),
                "test top-1 EE / backbone (%)",
            ],
            inference,
        ),
        "### Cost of one early-exit evaluation",
        "The same front members, one `supernet` and one `ee` evaluation each in this process (after one "
        "warm-up evaluation), and the backbone's validation top-1 each measured: the `supernet` evaluator's, and "
        "the final exit's after the `ee` evaluator trained the heads on the frozen backbone "
        + ("(equal: training the heads left the backbone as it was)." if kept else "(they differ)."),
        markdown_table(
            [
                "network",
                "supernet evaluation (s)",
                "ee evaluation (s)",
                "ratio",
                "backbone top-1 (%) supernet / ee",
            ],
            overhead,
        ),
        f"In the searches (`{args.backend}` backend): median {ee['median_evaluation_s']:.1f} s per "
        f"`ee` evaluation, {se['median_evaluation_s']:.1f} s per `supernet` evaluation; the early-exit search "
        f"took {ee['seconds'] / 60:.1f} min, the single-exit one {se['seconds'] / 60:.1f} min.",
    ]
    return "\n\n".join(part for part in parts if part)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m bench.early_exit`."""
    args = build_parser().parse_args(argv)
    weights = Path(args.weights)
    card = read_card(weights) if weights.is_file() else None
    if card is None:
        print(
            f"skipped: needs the supernet weights {weights} and their card (python -m supernets.train with the card's "
            "train_config, then the .pth beside the card)"
        )
        return 0
    start = time.perf_counter()
    single, early = search_argv(card, weights, args)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for key, command in (("single_exit", single), ("early_exit", early)):
            began = time.perf_counter()
            search, spec = run_search([*command, "--save", str(Path(tmp) / key)], args.train_limit, args.valid_limit)
            runs[key] = (search, spec, time.perf_counter() - began)
        torch.set_num_threads(args.threads)
        measured = measure_front_members(runs["early_exit"][0], runs["early_exit"][1], args, Path(tmp) / "nets")
    searches = {key: search_summary(search, seconds) for key, (search, _, seconds) in runs.items()}
    ee_front, se_front = searches["early_exit"]["front"], searches["single_exit"]["front"]
    ee_points = [(r["top1"], r["avg_macs"]) for r in ee_front]
    se_points = [(r["top1"], r["macs"]) for r in se_front]
    comparison = compare_fronts(ee_points, se_points, common_levels(ee_points, se_points, args.levels))
    png = plot_fronts(
        result_path("early_exit_fronts.png"),
        ee_front,
        se_front,
        searches["early_exit"]["archive"],
        searches["single_exit"]["archive"],
    )
    elapsed = time.perf_counter() - start
    shown = {
        key: f"python msunas.py {' '.join(command)} --save <save>"
        for key, command in (("single_exit", single), ("early_exit", early))
    }
    results = {
        "machine": machine(),
        "command": "python -m bench.early_exit " + " ".join(argv if argv is not None else sys.argv[1:]),
        "searches_as": shown,
        "settings": vars(args),
        "searches": searches,
        "comparison": comparison,
        "front_members": measured,
        "elapsed_s": elapsed,
    }
    publish("early_exit", results, section(results, args, card, png))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))

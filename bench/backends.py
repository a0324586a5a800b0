"""Evaluation backends side by side: one iteration's evaluations with `sequential`, `process` and `ray`.

1. The evaluation phase of one search iteration: `--n` architectures of the embedded default (digits, the default
   supernet) evaluated by each backend (`process` and `ray` with `--workers` workers), after a warm-up batch that
   starts the workers (their start-up is timed apart); wall time and the ratio to `sequential`.
2. Ray's fixed overhead per task: `--n_empty` evaluations by an evaluator that does nothing, on one Ray worker.

    python -m bench.backends [--n 8] [--workers 2] [--n_empty 200]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import machine, markdown_table, publish
from evaluator import EVALUATORS, EvaluatorSpec, create_backend
from evaluator.base import EvalResult, Evaluator
from search.config import SearchConfig, parse_config
from search_space import Arch
from utils.cli import ArgumentParser, int_at_least, run_cli

BACKENDS_TIMED = ("sequential", "process", "ray")


class EmptyEvaluator(Evaluator):
    """Measures nothing: every architecture gets the same made-up numbers (for timing a backend's own overhead)."""

    name = "empty"

    @classmethod
    def arguments(cls, search: SearchConfig) -> dict[str, object]:
        """No arguments."""
        return {}

    def __init__(self, device: str | None = None) -> None:
        self.device = device

    def evaluate(self, archs: Sequence[Arch], out_dirs: Sequence[Any]) -> list[EvalResult]:
        """One constant result per architecture, nothing written."""
        return [EvalResult(arch=a, status="ok", top1=0.0, params=0.0, macs=0.0, activations=0.0) for a in archs]


def build_parser() -> ArgumentParser:
    """The benchmark's flags."""
    parser = ArgumentParser(prog="python -m bench.backends", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int_at_least(1), default=8, help="evaluations of the timed iteration")
    parser.add_argument("--workers", type=int_at_least(1), default=2, help="workers of process and ray")
    parser.add_argument("--n_empty", type=int_at_least(1), default=200, help="empty evaluations for the overhead")
    parser.add_argument("--seed", type=int, default=0, help="seed of the architectures")
    return parser


def timed_iteration(name: str, spec: EvaluatorSpec, archs: list[Arch], workers: int, folder: Path) -> dict[str, Any]:
    """Start-up (a warm-up batch of one per worker) and evaluation-phase seconds of `archs` on backend `name`."""
    with create_backend(name, spec, n_workers=workers, device="cpu") as backend:
        start = time.perf_counter()
        backend.evaluate(archs[:workers], [folder / f"warm_{i}" for i in range(workers)])
        warm = time.perf_counter() - start
        start = time.perf_counter()
        results = backend.evaluate(archs, [folder / f"net_{i}" for i in range(len(archs))])
        seconds = time.perf_counter() - start
    return {"startup_s": warm, "seconds": seconds, "top1": [r.top1 for r in results]}


def ray_overhead(n: int, folder: Path) -> float:
    """Seconds per empty evaluation on one Ray worker (the backend's fixed cost of a task)."""
    with EVALUATORS.register_temporarily("empty", EmptyEvaluator):
        spec = EvaluatorSpec("empty", {})
        with create_backend("ray", spec, n_workers=1, device="cpu") as backend:
            arch: Arch = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32}
            backend.evaluate([arch], [folder / "warm"])
            start = time.perf_counter()
            backend.evaluate([arch] * n, [folder / f"e{i}" for i in range(n)])
            return (time.perf_counter() - start) / n


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m bench.backends`."""
    args = build_parser().parse_args(argv)
    try:
        import ray  # noqa: F401
    except ImportError:
        print("skipped: needs the ray package (pip install -r requirements-ray.txt)")
        return 0
    cfg = parse_config(["--device", "cpu", "--save", "unused"])
    spec = EvaluatorSpec(cfg.evaluator_name, EVALUATORS.get(cfg.evaluator_name).arguments(cfg))
    archs = cfg.space().sample(args.n, np.random.default_rng(args.seed))
    timings = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in BACKENDS_TIMED:
            timings[name] = timed_iteration(name, spec, archs, args.workers, Path(tmp) / name)
        overhead = ray_overhead(args.n_empty, Path(tmp) / "empty")
    same = all(t["top1"] == timings["sequential"]["top1"] for t in timings.values())
    results = {
        "machine": machine(),
        "command": "python -m bench.backends " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": vars(args),
        "timings": timings,
        "same_results": same,
        "ray_overhead_s": overhead,
    }
    rows = [
        [
            name,
            1 if name == "sequential" else args.workers,
            f"{t['startup_s']:.1f}",
            f"{t['seconds']:.1f}",
            f"{t['seconds'] / timings['sequential']['seconds']:.2f}",
        ]
        for name, t in timings.items()
    ]
    ray_vs_process = timings["ray"]["seconds"] / timings["process"]["seconds"]
    section = "\n\n".join(
        [
            f"`{results['command']}`: {args.n} random architectures of the embedded default (digits, default "
            f"supernet, CPU), one evaluation phase per backend after a warm-up batch of {args.workers} that starts "
            f"the workers (start-up column); torch {results['machine']['torch']}. Every backend gave "
            f"{'the same' if same else 'DIFFERENT'} top-1 values as `sequential`.",
            markdown_table(["backend", "workers", "start-up (s)", "evaluation phase (s)", "ratio to sequential"], rows),
            f"ray / process: {ray_vs_process:.2f} (target: within 1.10). Ray's overhead per task, "
            f"{args.n_empty} empty evaluations on one worker: {overhead * 1000:.1f} ms (target: under 50 ms).",
        ]
    )
    publish("backends", results, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))

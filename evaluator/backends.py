"""Execution backends: run an evaluator over a batch sequentially or in a pool of worker processes.

A backend is built from an `EvaluatorSpec` (a registered evaluator's name plus its picklable arguments), so every
worker builds its own evaluator once (loading the supernet weights once) and then serves many architectures. The
search loop only sees `Backend.evaluate(archs, out_dirs)`.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from evaluator.base import EvalResult, Evaluator
from evaluator.registry import create_evaluator
from search_space.base import Arch
from utils.errors import UsageError
from utils.registry import Registry
from utils.seed import deterministic_torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluatorSpec:
    """A registered evaluator's name and keyword arguments: enough to rebuild it in another process."""

    name: str
    kwargs: dict[str, object] = field(default_factory=dict)

    def build(self, **overrides: object) -> Evaluator:
        """A new evaluator from this spec (with `overrides`, e.g. the device of a worker)."""
        return create_evaluator(self.name, **{**self.kwargs, **overrides})


class Backend(ABC):
    """Runs an evaluator over batches of architectures."""

    name: str = ""

    @abstractmethod
    def evaluate(self, archs: Sequence[Arch], out_dirs: Sequence[str | os.PathLike[str]]) -> list[EvalResult]:
        """One result per architecture, in order."""

    def close(self) -> None:
        """Release workers (a no-op where there are none)."""
        return None

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


BACKENDS: Registry[Backend] = Registry("backend")
register_backend = BACKENDS.register


def create_backend(name: str, spec: EvaluatorSpec, n_gpus: int | None = None, **kwargs: object) -> Backend:
    """Build the backend registered under `name` for evaluators built from `spec`.

    Asking for more GPUs (`n_gpus`) than there are is a `UsageError` whatever the backend: a search meant for GPUs
    never runs on the CPU without a word. Backends registered with `cluster=True` count a cluster's GPUs themselves;
    the others are checked here against the CUDA devices this process sees.
    """
    visible = torch.cuda.device_count()
    if n_gpus is not None and n_gpus > visible and not BACKENDS.meta(name).get("cluster", False):
        seen = f"only {visible} CUDA device(s) are visible" if visible else "no CUDA device is visible"
        raise UsageError(f"--n_gpus {n_gpus} but {seen}; leave --n_gpus out to use what is there (the CPU without one)")
    return BACKENDS.create(name, spec=spec, n_gpus=n_gpus, **kwargs)


def list_backends(aliases: bool = True) -> list[str]:
    """Names of every registered backend (aliases included unless `aliases=False`)."""
    return BACKENDS.names(aliases)


def _progress(total: int) -> tqdm:
    return tqdm(total=total, desc="evaluations", unit="net", leave=False)


@register_backend("sequential", help="one evaluation after another, in this process")
class SequentialBackend(Backend):
    """Evaluates in this process, one architecture after another; the evaluator is built on first use."""

    name = "sequential"

    def __init__(self, spec: EvaluatorSpec, **_: object) -> None:
        self.spec = spec
        self._evaluator: Evaluator | None = None

    @property
    def evaluator(self) -> Evaluator:
        """The evaluator, built once."""
        if self._evaluator is None:
            self._evaluator = self.spec.build()
        return self._evaluator

    def evaluate(self, archs: Sequence[Arch], out_dirs: Sequence[str | os.PathLike[str]]) -> list[EvalResult]:
        """Evaluate the batch in order, with a progress bar."""
        results = []
        with _progress(len(archs)) as bar:
            for arch, out in zip(archs, out_dirs, strict=True):
                results.append(self.evaluator.evaluate([arch], [out])[0])
                bar.update(1)
        return results


_WORKER_EVALUATOR: Evaluator | None = None


def _init_worker(spec: EvaluatorSpec, devices: mp.Queue, threads: int) -> None:  # type: ignore[type-arg]
    """Build this worker's evaluator once, on the device it takes from the queue."""
    global _WORKER_EVALUATOR
    torch.set_num_threads(threads)
    deterministic_torch()  # a spawned worker inherits the environment, not torch's flags
    device = devices.get()
    _WORKER_EVALUATOR = spec.build(device=device)


def _evaluate_in_worker(arch: Arch, out_dir: str) -> EvalResult:
    assert _WORKER_EVALUATOR is not None, "worker initialiser did not run"
    return _WORKER_EVALUATOR.evaluate([arch], [out_dir])[0]


@register_backend("process", help="a pool of worker processes, one per GPU when there are GPUs")
class ProcessBackend(Backend):
    """A pool of worker processes: one per GPU when GPUs are present (`n_gpus`), else `n_workers` on CPU.

    Each worker loads the supernet once. A worker that dies takes only its own evaluations down with it: they come
    back as failed results and the pool is rebuilt for the next batch.
    """

    name = "process"

    def __init__(
        self, spec: EvaluatorSpec, n_workers: int = 2, n_gpus: int | None = None, gpu: float = 1, **_: object
    ) -> None:
        if gpu != 1:
            raise UsageError(
                f"--gpu {gpu:g}: each evaluation of the process backend runs on exactly one GPU (pass --gpu 1, or "
                "--backend ray for fractions or several)"
            )
        n_gpus = torch.cuda.device_count() if n_gpus is None else n_gpus
        self.spec = spec
        if n_gpus > 0:
            self.devices = [f"cuda:{i}" for i in range(n_gpus)]
        else:
            if n_workers < 1:
                raise UsageError(f"--n_workers must be >= 1, got {n_workers}")
            self.devices = ["cpu"] * n_workers
        self.threads = max(1, (os.cpu_count() or 1) // len(self.devices))
        self._pool: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = mp.get_context("spawn")
            devices = context.Queue()
            for device in self.devices:
                devices.put(device)
            self._pool = ProcessPoolExecutor(
                max_workers=len(self.devices),
                mp_context=context,
                initializer=_init_worker,
                initargs=(self.spec, devices, self.threads),
            )
        return self._pool

    def evaluate(self, archs: Sequence[Arch], out_dirs: Sequence[str | os.PathLike[str]]) -> list[EvalResult]:
        """Spread the batch over the workers; results come back in the order of `archs`.

        When a worker process dies, the architectures it took down with it are retried one at a time in a fresh
        pool, so only an architecture that kills its worker again is reported as failed.
        """
        jobs = [(arch, str(Path(out))) for arch, out in zip(archs, out_dirs, strict=True)]
        with _progress(len(jobs)) as bar:
            results, lost = self._run(jobs, range(len(jobs)), bar)
            for i in lost:
                retried, still_lost = self._run(jobs, [i], bar)
                results.update(retried)
                if still_lost:
                    results[i] = EvalResult.failure(archs[i], "worker process died while evaluating it")
                    bar.update(1)
        return [results[i] for i in range(len(jobs))]

    def _run(
        self, jobs: Sequence[tuple[Arch, str]], indices: Sequence[int], bar: tqdm
    ) -> tuple[dict[int, EvalResult], list[int]]:
        """Results of the jobs at `indices`, and the indices lost to a dead worker (the pool is then closed)."""
        pool = self._start()
        futures = {pool.submit(_evaluate_in_worker, *jobs[i]): i for i in indices}
        results: dict[int, EvalResult] = {}
        lost: list[int] = []
        for future in as_completed(futures):
            try:
                results[futures[future]] = future.result()
                bar.update(1)
            except BrokenProcessPool:
                lost.append(futures[future])
        if lost:
            log.warning("a worker process died; retrying %d evaluation(s) one at a time", len(lost))
            self.close()
        return results, sorted(lost)

    def close(self) -> None:
        """Shut the pool down."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

"""The `ray` backend: evaluations spread over a pool of Ray actors, on a Ray cluster or on a local Ray.

Why actors and not one Ray task per evaluation: building an evaluator loads the supernet and the dataset, which
costs more than evaluating one subnet; an actor builds its evaluator once and then serves many architectures, as a
worker of the `process` backend does. Each actor reserves `num_cpus=--cpus_per_eval` and `num_gpus=--gpu`
(fractions share a GPU), so Ray places as many evaluations at once as the cluster holds.

What is shipped, and how:

- the supernet weights (the file's bytes) and the dataset's splits are put in Ray's object store once per search
  (`ray.put`); each actor writes the bytes to a temporary file it loads and removes, and takes the splits from the
  store (evaluators whose constructor accepts `splits`, like `supernet`), so neither travels with every evaluation,
  and the nodes need no copy of the weights;
- the evaluator's factory is resolved from the registry in the driver and pickled by reference, so an evaluator
  registered only in the driver (a test's, through `register_temporarily`) runs in the actors as long as its module
  is importable there; the project's root is put on the actors' `PYTHONPATH`;
- results come back as `EvalResult`s; anything large (`ckpt.pth`) is written by the actor into the net folder, which
  is passed as an absolute path: on a cluster the save folder must be on a filesystem the nodes share.

Faults: an evaluation whose actor dies (the process killed, its node lost) or that raises (an exception escaping the
evaluator, which otherwise catches and records failures itself) is tried again, `max_retries` times, then recorded
as a failed `EvalResult` with its error. A dead actor is replaced; one whose evaluation raised is kept (the
exception was a Python one, its process is sound). With `eval_timeout`, an evaluation running longer is cancelled by
killing its actor, which is replaced, and recorded as failed ("timed out after N s") without a retry: a straggler
would straggle again. Failures the backend records are written into the net folder (`net_{i}.error`), so the search
copies them into `failed/` as it does the evaluator's own.

Evaluation seeds come from the evaluator's configuration, never from the worker or the order of completion, and
results are returned in the order of `archs`: a search gives the archive of `sequential`.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
import logging
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
from tqdm import tqdm

from evaluator.backends import Backend, EvaluatorSpec, _progress, register_backend
from evaluator.base import EvalResult, Evaluator, write_result
from evaluator.registry import EVALUATORS
from search_space.base import Arch
from utils.errors import UsageError
from utils.seed import deterministic_torch

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
"""The project's root, put on the actors' `PYTHONPATH` so they import its packages."""

INSTALL_HINT = "pip install -r requirements-ray.txt (or make setup)"
GCS_PORT = 6379
"""The port of a Ray cluster's head when an address gives none (`ray start --head`'s default)."""
CLIENT_PORT = 10001
"""The port of a Ray Client server (`ray://host`) when the address gives none."""
CONNECT_TIMEOUT_S = 3.0
"""How long the reachability check of a cluster address waits for a TCP connection."""
PLACEMENT_WARNING_S = 60.0
"""How long the backend waits for a worker to start before it says so (again), with the cluster's free resources."""


def import_ray() -> Any:
    """The `ray` module, or a one-line `UsageError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--backend ray needs the ray package, which is not installed: {INSTALL_HINT}") from None
    return ray


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A `UsageError` naming `address` when nothing accepts a TCP connection at its host and port within `timeout`.

    `auto` and `local` (Ray's own discovery) are not checked. This catches a wrong host or port in seconds, where Ray
    would retry for minutes; a port that answers without being a Ray cluster is left to Ray.
    """
    if address in ("auto", "local"):
        return
    client = address.startswith("ray://")
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = parts.hostname, parts.port or (CLIENT_PORT if client else GCS_PORT)
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise UsageError(f"Ray address {address!r} is not HOST:PORT or ray://HOST:PORT (--ray_address, RAY_ADDRESS)")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        reason = "timed out" if isinstance(err, TimeoutError) else (err.strerror or type(err).__name__)
        where = "" if address == f"{host}:{port}" else f" at {host}:{port}"
        raise UsageError(
            f"cannot reach the Ray cluster at {address} ({reason}{where}); start it (ray start --head) or fix "
            "--ray_address / RAY_ADDRESS, or leave both unset for a local Ray"
        ) from None


class EvalWorker:
    """What one Ray actor runs: an evaluator built once, then one evaluation per call.

    `weights` (the file's name and bytes) replaces the configuration's `supernet_path` by a local copy, which lives
    while the evaluator is built (it loads the supernet then, and never reads the file again); `splits`, when given,
    is passed to the evaluator instead of loading the dataset again.
    """

    def __init__(
        self,
        factory: Callable[..., Evaluator],
        kwargs: dict[str, Any],
        device: str,
        threads: int,
        weights_name: str | None = None,
        weights: bytes | None = None,
        splits: Any = None,
    ) -> None:
        torch.set_num_threads(threads)
        deterministic_torch()  # a Ray worker is a fresh process: torch's flags are not inherited
        kwargs = dict(kwargs)
        if splits is not None:
            kwargs["splits"] = splits
        with tempfile.TemporaryDirectory(prefix="msunas-ray-") as folder:
            if weights_name is not None and weights is not None:
                path = Path(folder) / weights_name
                path.write_bytes(weights)
                kwargs["config"] = dataclasses.replace(kwargs["config"], supernet_path=str(path))
            self.evaluator = factory(**kwargs, device=device)

    def ready(self) -> int:
        """The actor's process id, once its evaluator is built."""
        return os.getpid()

    def evaluate(self, arch: Arch, out_dir: str) -> EvalResult:
        """Evaluate one architecture into `out_dir`."""
        return self.evaluator.evaluate([arch], [out_dir])[0]


@dataclass
class _Job:
    """One architecture of a batch, with the number of its tries that failed so far."""

    index: int
    arch: Arch
    out: str
    attempts: int = 0


@dataclass
class _Running:
    """A job on an actor: the actor, when it started and when it times out."""

    job: _Job
    actor: Any
    start: float
    deadline: float


def _describe(err: Exception) -> str:
    """`Type: message` of the exception behind a Ray error: the task's own exception, not Ray's wrapper.

    Without one (an actor whose constructor raised), the last line of Ray's message, which names the exception.
    """
    cause = getattr(err, "cause", None)
    if isinstance(cause, Exception):
        text = " ".join(str(cause).split())
        return f"{type(cause).__name__}: {text}" if text else type(cause).__name__
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


@register_backend(
    "ray", cluster=True, help="a pool of Ray actors on RAY_ADDRESS (--ray_address) or a local Ray; retries, timeouts"
)
class RayBackend(Backend):
    """A pool of Ray actors, each building the evaluator once (see the module's docstring for why and how).

    On `ray_address` (else `RAY_ADDRESS`) when set, checked for reachability first; else on a local Ray started for
    the search (with `n_workers * cpus_per_eval` CPUs when it evaluates on CPU) and shut down by `close`. A Ray this
    process had already initialised is used as it is and left running. The pool holds `n_workers` actors on CPU, or
    one per `gpu` GPUs of the cluster (of `n_gpus` when given). Bad settings, a missing `ray` package, an unreachable
    cluster and a cluster without the GPUs or CPUs one evaluation needs are `UsageError`s before any evaluation.
    """

    name = "ray"

    def __init__(
        self,
        spec: EvaluatorSpec,
        n_workers: int = 2,
        n_gpus: int | None = None,
        gpu: float = 1.0,
        device: str = "auto",
        cpus_per_eval: int = 1,
        max_retries: int = 1,
        eval_timeout: float | None = None,
        ray_address: str | None = None,
        **_: object,
    ) -> None:
        checks = [
            (n_workers >= 1, f"--n_workers must be >= 1, got {n_workers}"),
            (gpu > 0, f"--gpu must be > 0 (GPUs per evaluation), got {gpu:g}"),
            (cpus_per_eval >= 1, f"--cpus_per_eval must be >= 1, got {cpus_per_eval}"),
            (max_retries >= 0, f"--max_retries must be >= 0, got {max_retries}"),
            (eval_timeout is None or eval_timeout > 0, f"--eval_timeout must be > 0 seconds, got {eval_timeout}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        self.spec = spec
        self.factory = EVALUATORS.get(spec.name)
        self.cpus_per_eval = cpus_per_eval
        self.max_retries = max_retries
        self.eval_timeout = eval_timeout
        self.ray = ray = import_ray()
        self._owns_ray = False
        self._actor_class = ray.remote(EvalWorker)
        self._actors: dict[Any, None] = {}  # every live or starting actor, to kill on close
        self._idle: list[Any] = []
        self._starting: dict[Any, Any] = {}  # ready() ref -> actor
        self._shared: tuple[Any, Any, Any] | None = None  # (weights name, weights ref, splits ref)
        self._start_error = "unknown error"
        address = ray_address or os.environ.get("RAY_ADDRESS") or None
        if address is not None:
            check_reachable(address)
        local_gpu = device != "cpu" and n_gpus != 0 and torch.cuda.device_count() > 0
        if ray.is_initialized():
            log.info("using the Ray this process already initialised")
            self._log_dashboard(None)
        else:
            self._init(address, local_gpu, n_workers, n_gpus)
        try:
            self._plan(n_workers, n_gpus, gpu, device)
        except BaseException:
            self.close()
            raise

    def _init(self, address: str | None, local_gpu: bool, n_workers: int, n_gpus: int | None) -> None:
        """Connect to the cluster at `address`, or start a local Ray sized for this search."""
        ray = self.ray
        try:
            if address is not None:
                context = ray.init(address=address)
                log.info("connected to the Ray cluster at %s", address)
            else:
                cpus = None if local_gpu else n_workers * self.cpus_per_eval
                gpus = n_gpus if local_gpu else 0
                context = ray.init(address="local", num_cpus=cpus, num_gpus=gpus, include_dashboard=False)
                log.info("started a local Ray (%s CPUs, %s GPUs) for this search", cpus or "all", gpus)
        except (ConnectionError, RuntimeError) as err:
            if address is None:
                raise
            raise UsageError(f"cannot connect to the Ray cluster at {address}: {' '.join(str(err).split())}") from None
        self._owns_ray = True
        self._log_dashboard(context)

    def _log_dashboard(self, context: Any) -> None:
        """Log the Ray dashboard's address when one is up (best effort: nothing when there is none)."""
        url = getattr(context, "dashboard_url", None)
        if not url:
            try:
                url = self.ray._private.worker.get_dashboard_url()
            except Exception:  # a private helper: its absence only costs the log line
                url = None
        if url:
            log.info("Ray dashboard: %s", url if "://" in url else f"http://{url}")

    def _plan(self, n_workers: int, n_gpus: int | None, gpu: float, device: str) -> None:
        """Choose the actors' resources and the pool's size from what the cluster has; refuse what it cannot run."""
        ray = self.ray
        total = ray.cluster_resources()
        nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
        cluster_gpus = float(total.get("GPU", 0))
        node_cpus = max((float(r.get("CPU", 0)) for r in nodes), default=0.0)
        node_gpus = max((float(r.get("GPU", 0)) for r in nodes), default=0.0)
        if n_gpus is not None and n_gpus > cluster_gpus:
            raise UsageError(
                f"--n_gpus {n_gpus} but the Ray cluster has {cluster_gpus:g} GPU(s); leave --n_gpus out to use what "
                "it has"
            )
        if device.startswith("cuda") and cluster_gpus == 0:
            raise UsageError(f"--device {device} but the Ray cluster has 0 GPUs")
        use_gpu = device != "cpu" and n_gpus != 0 and cluster_gpus > 0
        # More than one GPU per evaluation, or more than there are, is refused even where the evaluations would run
        # on CPUs (--device cpu): a search asked for GPUs never runs on CPUs without a word. --gpu 1 (the default)
        # on a cluster without GPUs evaluates on CPUs, as the other backends do.
        if gpu > cluster_gpus and (cluster_gpus > 0 or gpu > 1):
            raise UsageError(
                f"--gpu {gpu:g} needs {gpu:g} GPU(s) per evaluation but the Ray cluster has {cluster_gpus:g}"
            )
        if use_gpu and gpu > node_gpus:
            raise UsageError(
                f"--gpu {gpu:g} needs {gpu:g} GPU(s) per evaluation but no node of the Ray cluster has that many "
                f"(the largest has {node_gpus:g})"
            )
        if self.cpus_per_eval > node_cpus:
            raise UsageError(
                f"--cpus_per_eval {self.cpus_per_eval} needs {self.cpus_per_eval} CPU(s) per evaluation but no node of "
                f"the Ray cluster has that many (the largest has {node_cpus:g})"
            )
        self.num_gpus = gpu if use_gpu else 0.0
        self.device = "cuda" if use_gpu else "cpu"
        if use_gpu:
            usable = min(cluster_gpus, n_gpus) if n_gpus is not None else cluster_gpus
            self.size = max(1, math.floor(usable / gpu + 1e-9))
        else:
            self.size = n_workers
        log.info(
            "Ray: %d evaluation worker(s), each with %d CPU(s) and %g GPU(s); the cluster has %g CPU(s), %g GPU(s)",
            self.size,
            self.cpus_per_eval,
            self.num_gpus,
            float(total.get("CPU", 0)),
            cluster_gpus,
        )

    # --- the pool ---------------------------------------------------------------------------------------------------

    def _shared_inputs(self) -> tuple[Any, Any, Any]:
        """The weights' name, the object-store refs of their bytes and of the dataset splits (put once)."""
        if self._shared is None:
            config = self.spec.kwargs.get("config")
            name = weights = splits = None
            if dataclasses.is_dataclass(config) and isinstance(getattr(config, "supernet_path", None), str):
                path = Path(config.supernet_path)
                name, weights = path.name, self.ray.put(path.read_bytes())
            takes_splits = "splits" in inspect.signature(self.factory).parameters
            if takes_splits and callable(getattr(config, "dataset_splits", None)):
                splits = self.ray.put(config.dataset_splits())
            self._shared = (name, weights, splits)
        return self._shared

    def _start_actor(self) -> None:
        """Start one actor; it joins the idle ones when its evaluator is built."""
        name, weights, splits = self._shared_inputs()
        paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        actor = self._actor_class.options(
            num_cpus=self.cpus_per_eval,
            num_gpus=self.num_gpus,
            max_restarts=0,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}},
        ).remote(self.factory, self.spec.kwargs, self.device, self.cpus_per_eval, name, weights, splits)
        self._actors[actor] = None
        self._starting[actor.ready.remote()] = actor

    def _kill(self, actor: Any) -> None:
        """Kill `actor` (already dead is fine) and forget it."""
        self._actors.pop(actor, None)
        try:
            self.ray.kill(actor, no_restart=True)
        except Exception as err:  # an actor Ray already cleaned up
            log.debug("killing a Ray actor: %s", err)

    def _fill(self) -> None:
        """Top the pool up to its size."""
        for _ in range(self.size - len(self._actors)):
            self._start_actor()

    def start(self) -> int:
        """Start the pool now and wait until every worker has built its evaluator; the number of ready workers.

        `evaluate` starts the pool itself; this only moves the start-up out of the first batch (a benchmark).
        """
        self._fill()
        while self._starting:
            for ref in self._wait_for_workers(list(self._starting), None):
                self._started(ref)
        return len(self._idle)

    def _wait_for_workers(self, refs: list[Any], timeout: float | None) -> list[Any]:
        """`ray.wait` for one of `refs` (within `timeout`, else as long as it takes).

        Workers wait until the cluster has the CPUs and GPUs they reserve free (other jobs may hold them): while only
        starting workers are awaited, a warning every `PLACEMENT_WARNING_S` says so.
        """
        while True:
            limit = PLACEMENT_WARNING_S if timeout is None else timeout
            done, _ = self.ray.wait(refs, num_returns=1, timeout=limit)
            if done or timeout is not None:
                return done
            if all(ref in self._starting for ref in refs):
                free = {k: v for k, v in self.ray.available_resources().items() if k in ("CPU", "GPU")}
                log.warning(
                    "waiting for Ray workers to start: each reserves %d CPU(s) and %g GPU(s); the cluster has %s free",
                    self.cpus_per_eval,
                    self.num_gpus,
                    free,
                )

    # --- a batch ----------------------------------------------------------------------------------------------------

    def evaluate(self, archs: Sequence[Arch], out_dirs: Sequence[str | os.PathLike[str]]) -> list[EvalResult]:
        """Spread the batch over the actors, retrying and timing out as configured; results in the order of `archs`.

        The progress bar counts evaluations as they finish, in whatever order that is.
        """
        pending = collections.deque(
            _Job(i, arch, str(Path(out).resolve())) for i, (arch, out) in enumerate(zip(archs, out_dirs, strict=True))
        )
        results: dict[int, EvalResult] = {}
        running: dict[Any, _Running] = {}
        self._fill()
        try:
            with _progress(len(pending)) as bar:
                while pending or running:
                    self._dispatch(pending, running)
                    if not (running or self._starting or self._idle):
                        error = self._start_error
                        while pending:
                            job = pending.popleft()
                            results[job.index] = self._fail(job, f"no Ray worker could start: {error}", 0.0, bar)
                        break
                    self._step(pending, running, results, bar)
        finally:
            for run in running.values():  # interrupted: nothing may keep running into the next batch
                self._kill(run.actor)
        return [results[i] for i in range(len(archs))]

    def _dispatch(self, pending: collections.deque[_Job], running: dict[Any, _Running]) -> None:
        """Give pending jobs to idle actors."""
        while pending and self._idle:
            job, actor = pending.popleft(), self._idle.pop()
            start = time.monotonic()
            deadline = start + self.eval_timeout if self.eval_timeout is not None else math.inf
            running[actor.evaluate.remote(job.arch, job.out)] = _Running(job, actor, start, deadline)

    def _step(
        self, pending: collections.deque[_Job], running: dict[Any, _Running], results: dict[int, EvalResult], bar: tqdm
    ) -> None:
        """Wait for the next finished evaluation, started actor or timeout, and act on it."""
        deadline = min((run.deadline for run in running.values()), default=math.inf)
        timeout = None if deadline == math.inf else max(0.0, deadline - time.monotonic())
        done = self._wait_for_workers([*running, *self._starting], timeout)
        for ref in done:
            if ref in self._starting:
                self._started(ref)
            else:
                self._finished(ref, running.pop(ref), pending, results, bar)
        now = time.monotonic()
        for ref, run in list(running.items()):
            if run.deadline <= now:
                del running[ref]
                self._kill(run.actor)
                self._start_actor()
                log.warning(
                    "evaluation %s timed out after %g s; its Ray worker is replaced", run.job.out, self.eval_timeout
                )
                message = f"timed out after {self.eval_timeout:g} s"
                results[run.job.index] = self._fail(run.job, message, now - run.start, bar)

    def _started(self, ref: Any) -> None:
        """An actor finished building its evaluator, or failed to."""
        actor = self._starting.pop(ref)
        try:
            self.ray.get(ref)
        except self.ray.exceptions.RayError as err:
            self._start_error = _describe(err)
            log.warning("a Ray worker failed to start: %s", self._start_error)
            self._kill(actor)
        else:
            self._idle.append(actor)

    def _finished(
        self,
        ref: Any,
        run: _Running,
        pending: collections.deque[_Job],
        results: dict[int, EvalResult],
        bar: tqdm,
    ) -> None:
        """Record a finished evaluation, or retry it (a raised exception, a dead worker) while tries are left."""
        ray, job = self.ray, run.job
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            error = _describe(err)
            self._idle.append(run.actor)  # a Python exception: the actor is sound
        except ray.exceptions.RayError as err:
            error = f"the Ray worker died while evaluating it ({type(err).__name__})"
            self._kill(run.actor)
            self._start_actor()
        else:
            results[job.index] = result
            self._idle.append(run.actor)
            bar.update(1)
            return
        job.attempts += 1
        if job.attempts <= self.max_retries:
            log.warning("evaluation %s failed (%s); retry %d of %d", job.out, error, job.attempts, self.max_retries)
            pending.appendleft(job)
        else:
            tries = f"{job.attempts} attempt{'s' if job.attempts > 1 else ''}"
            results[job.index] = self._fail(job, f"{error} (failed {tries})", time.monotonic() - run.start, bar)

    def _fail(self, job: _Job, error: str, wall_time_s: float, bar: tqdm) -> EvalResult:
        """A failed result for `job`, written into its net folder (the search copies it into `failed/`)."""
        result = EvalResult.failure(job.arch, error, wall_time_s)
        try:
            write_result(result, job.out)
        except OSError as err:  # the result still reaches the search, which records it in its archive
            log.warning("cannot write the failure of %s: %s", job.out, err)
        bar.update(1)
        return result

    def close(self) -> None:
        """Kill the actors and release the object-store copies; shut Ray down when this backend started it."""
        for actor in list(self._actors):
            self._kill(actor)
        self._idle, self._starting, self._shared = [], {}, None
        if self._owns_ray:
            self.ray.shutdown()
            self._owns_ray = False

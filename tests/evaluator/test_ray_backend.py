"""The `ray` backend: a killed search resumes to the archive of `sequential`; retries, dead workers, timeouts; bad
input.

Three Ray instances in all: a search driver started in a subprocess (and killed) starts one, its resumed search
starts (and stops) another, then one module-scoped backend owns a third for the fault tests. The fault tests use
`FaultyEvaluator`, registered only while that backend is built; the backend ships the evaluator's class to its
workers, and this module is registered with cloudpickle to be pickled by value, so the workers need not import it
(nor pytest).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import msunas  # noqa: E402
from evaluator import EVALUATORS, EvalResult, Evaluator, EvaluatorSpec, write_result  # noqa: E402
from evaluator.ray_backend import RayBackend  # noqa: E402
from tests.search.test_search_loop import archive_summary, argv  # noqa: E402
from utils.cli import run_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


class FaultyEvaluator(Evaluator):
    """Does what each architecture's `mode` says; counts its attempts with marker files in the net folder."""

    name = "faulty"

    @classmethod
    def arguments(cls, search):
        return {}

    def __init__(self, device=None, **_):
        self.device = device

    def evaluate(self, archs, out_dirs):
        return [self.evaluate_one(arch, Path(out)) for arch, out in zip(archs, out_dirs, strict=True)]

    def evaluate_one(self, arch, out):
        out.mkdir(parents=True, exist_ok=True)
        attempt = len(list(out.glob("attempt_*")))
        (out / f"attempt_{attempt}").touch()
        mode = arch["mode"]
        if mode == "raise" or (mode == "raise_once" and attempt == 0):
            raise RuntimeError(f"boom on attempt {attempt}")
        if mode == "kill_once" and attempt == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "sleep":
            time.sleep(30)
        time.sleep(arch.get("delay", 0.0))
        result = EvalResult(
            arch=arch,
            status="ok",
            top1=float(arch.get("top1", 50.0)),
            params=1.0,
            macs=1.0,
            activations=1.0,
            extras={"attempt": attempt, "pid": os.getpid()},
        )
        write_result(result, out)
        return result


@pytest.fixture
def no_ray_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def result_files(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every `net_{i}.stats` under `folder`: its bytes and modification time."""
    return {str(f.relative_to(folder)): (f.read_bytes(), f.stat().st_mtime_ns) for f in folder.glob("*/*.stats")}


def kill_when_iteration_started(process: subprocess.Popen, save: Path, timeout: float = 300.0) -> dict:
    """SIGKILL the driver `process` once an evaluation of iteration 1 has written its result, before the iteration
    ends; returns the iteration's result files at that moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        done = result_files(save / "iter_1")
        if done and not (save / "iter_1.stats").exists():
            process.kill()
            process.wait()
            return done
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"the driver ended (code {process.poll()}) or timed out before iteration 1 was half done")


def test_a_killed_ray_search_resumes_to_the_archive_of_sequential(weights, tmp_path, no_ray_address):
    """The real path end to end: a driver on its own local Ray (2 workers) is SIGKILLed in the middle of iteration
    1, then resumed with `--resume` on a fresh local Ray: the archive is the sequential run's, the evaluations written
    before the kill are kept as they were (none run twice), and each Ray the search started is shut down."""
    assert not ray.is_initialized(), "this test runs before the module's backend starts its own Ray"
    flags = ("--n_doe", "4", "--iterations", "1", "--n_iter", "3", "--ur", "16", "--n_workers", "2")
    reference = tmp_path / "sequential"
    assert run_cli(msunas.main, argv(weights, reference, *flags)) == 0
    save = tmp_path / "ray"
    command = [sys.executable, "msunas.py", *argv(weights, save, *flags, "--backend", "ray")]
    driver = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = kill_when_iteration_started(driver, save)
    assert len(before) < 3
    resume = ("--resume", str(save / "iter_0.stats"), "--backend", "ray")
    assert run_cli(msunas.main, argv(weights, save, *flags, *resume)) == 0
    assert not ray.is_initialized(), "the backend shuts down the Ray it started"
    after = result_files(save / "iter_1")
    assert len(after) == 3 and all(after[name] == before[name] for name in before)
    resumed = archive_summary(json.loads((save / "iter_1.stats").read_text()))
    assert len(resumed) == 4 + 3
    assert resumed == archive_summary(json.loads((reference / "iter_1.stats").read_text()))


@pytest.fixture(scope="module")
def backend():
    """One pool of two Ray workers on a local Ray it owns, for every fault test: 1 retry, no timeout by default."""
    address = os.environ.pop("RAY_ADDRESS", None)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with EVALUATORS.register_temporarily("faulty", FaultyEvaluator):
            pool = RayBackend(EvaluatorSpec("faulty"), n_workers=2, n_gpus=0, max_retries=1)
        with pool:
            assert pool.start() == 2
            yield pool
        assert not ray.is_initialized()
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        if address is not None:
            os.environ["RAY_ADDRESS"] = address


def evaluate(backend, tmp_path, *archs):
    dirs = [tmp_path / f"net_{i}" for i in range(len(archs))]
    return backend.evaluate(list(archs), dirs), dirs


def attempts(out):
    return len(list(out.glob("attempt_*")))


def assert_whole_pool(backend, tmp_path):
    """Both workers are up again and serve a batch."""
    assert backend.start() == 2
    results, _ = evaluate(backend, tmp_path / "after", *({"mode": "ok"} for _ in range(4)))
    assert all(r.ok for r in results) and len({r.extras["pid"] for r in results}) == 2


def test_results_come_back_in_the_order_of_archs(backend, tmp_path):
    archs = [{"mode": "ok", "top1": float(i), "delay": 0.6 if i == 0 else 0.0} for i in range(5)]
    results, dirs = evaluate(backend, tmp_path, *archs)
    assert [r.top1 for r in results] == [0.0, 1.0, 2.0, 3.0, 4.0] and all(r.ok for r in results)
    assert [r.arch for r in results] == archs
    assert len({r.extras["pid"] for r in results}) == 2, "both workers served the batch"
    assert all((d / f"{d.name}.stats").is_file() for d in dirs)


def test_an_evaluation_that_always_raises_is_retried_then_failed(backend, tmp_path):
    (bad, good), dirs = evaluate(backend, tmp_path, {"mode": "raise"}, {"mode": "ok", "top1": 7.0})
    assert not bad.ok and bad.top1 is None
    assert bad.error == "RuntimeError: boom on attempt 1 (failed 2 attempts)"
    assert attempts(dirs[0]) == 1 + backend.max_retries
    assert (dirs[0] / "net_0.error").read_text().startswith("RuntimeError: boom")
    assert good.ok and good.top1 == 7.0


def test_an_evaluation_that_raises_once_succeeds_on_the_retry(backend, tmp_path):
    (result,), dirs = evaluate(backend, tmp_path, {"mode": "raise_once"})
    assert result.ok and result.extras["attempt"] == 1 and attempts(dirs[0]) == 2


def test_a_killed_worker_is_replaced_and_the_evaluation_retried(backend, tmp_path):
    (result, other), dirs = evaluate(backend, tmp_path, {"mode": "kill_once"}, {"mode": "ok"})
    assert result.ok and result.extras["attempt"] == 1 and attempts(dirs[0]) == 2
    assert other.ok
    assert_whole_pool(backend, tmp_path)


def test_a_straggler_times_out_and_the_batch_goes_on(backend, tmp_path, monkeypatch):
    monkeypatch.setattr(backend, "eval_timeout", 2.0)
    start = time.monotonic()
    archs = [{"mode": "sleep"}, {"mode": "ok", "top1": 1.0}, {"mode": "ok", "top1": 2.0}]
    (slow, first, second), dirs = evaluate(backend, tmp_path, *archs)
    assert time.monotonic() - start < 15
    assert not slow.ok and slow.error == "timed out after 2 s" and attempts(dirs[0]) == 1, "no retry of a timeout"
    assert (dirs[0] / "net_0.error").is_file() and not (dirs[0] / "net_0.stats").exists()
    assert (first.top1, second.top1) == (1.0, 2.0)
    assert_whole_pool(backend, tmp_path)


def one_line_error(capsys):
    """The one `error:` line; the rest of stderr, if any, is what Ray's own processes log (a full disk...)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err
    return lines[0]


def test_an_unreachable_cluster_is_one_line_within_seconds(weights, tmp_path, capsys):
    start = time.monotonic()
    save = tmp_path / "run"
    assert run_cli(msunas.main, argv(weights, save, "--backend", "ray", "--ray_address", "127.0.0.1:1")) == 2
    assert time.monotonic() - start < 10
    err = one_line_error(capsys)
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in err
    assert not save.exists()


def test_more_gpus_than_the_cluster_has_is_one_line(backend, weights, tmp_path, capsys):
    save = tmp_path / "run"
    assert run_cli(msunas.main, argv(weights, save, "--backend", "ray", "--gpu", "2")) == 2
    assert "needs 2 GPU(s) per evaluation but the Ray cluster has 0" in one_line_error(capsys)
    assert not save.exists() and ray.is_initialized(), "a Ray the backend did not start is left running"


def test_more_gpus_than_the_cluster_has_are_counted_on_the_cluster_not_here(backend, weights, tmp_path, capsys):
    save = tmp_path / "run"
    assert run_cli(msunas.main, argv(weights, save, "--backend", "ray", "--n_gpus", "1", "--device", "cpu")) == 2
    assert "--n_gpus 1 but the Ray cluster has 0 GPU(s)" in one_line_error(capsys)
    assert not save.exists()


@pytest.mark.parametrize(
    ("flag", "value"), [("--max_retries", "-1"), ("--cpus_per_eval", "0"), ("--eval_timeout", "0")]
)
def test_bad_ray_flags_are_one_line(weights, tmp_path, capsys, flag, value):
    save = tmp_path / "run"
    assert run_cli(msunas.main, argv(weights, save, "--backend", "ray", flag, value)) == 2
    assert flag in one_line_error(capsys) and not save.exists()


def test_without_the_ray_package_it_says_how_to_install_it(weights, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    save = tmp_path / "run"
    assert run_cli(msunas.main, argv(weights, save, "--backend", "ray")) == 2
    assert "pip install -r requirements-ray.txt" in one_line_error(capsys) and not save.exists()

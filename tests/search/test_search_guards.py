"""What keeps a search honest when evaluations fail or objectives carry penalties: the hypervolume's reference point,
the smallest usable initial design, too few successful evaluations, and networks whose logits are not finite."""

import json

import numpy as np
import pytest
from torch import nn

import msunas
from acc_predictor import PREDICTORS
from evaluator.base import EvalResult, write_result
from search.algorithms import SearchContext, create_algorithm
from search.archive import Archive
from search.config import SearchConfig, parse_config
from search.loop import Search
from search.state import SearchState
from search_space.ofa_mbv3.space import OFAMobileNetV3Space
from tests.search_space.tiny_space import TinySpace
from utils.cli import run_cli
from utils.errors import UsageError

SPACE = TinySpace(lr=16, ur=32, rstep=4)
COSTS = SPACE.cost_function(10)
ARCHS = SPACE.sample(8, np.random.default_rng(0))


class Synthetic:
    """A backend that measures by formula (accuracy grows with MACs); the architectures in `failing` fail."""

    def __init__(self, failing=()):
        self.failing = [SPACE.encode(a).tolist() for a in failing]

    def evaluate(self, archs, out_dirs):
        results = []
        for arch, out in zip(archs, out_dirs, strict=True):
            if SPACE.encode(arch).tolist() in self.failing:
                result = EvalResult.failure(arch, "RuntimeError: out of memory")
            else:
                costs = COSTS(arch).as_dict()
                top1 = 50 + 40 * np.tanh(costs["macs"] * 4)
                result = EvalResult(arch, "ok", top1, costs["params"], costs["macs"], costs["activations"])
            write_result(result, out)
            results.append(result)
        return results


def search(tmp_path, backend=None, **settings):
    config = SearchConfig(save=str(tmp_path / "run"), n_iter=3, pop_size=8, n_gen=3, predictor="carts", **settings)
    objectives = [config.objective(name) for name in config.objectives]
    ctx = SearchContext(SPACE, objectives, config.constraints(), COSTS, seed=config.seed)
    algorithm = create_algorithm(
        config.algorithm, ctx, n_iter=config.n_iter, predictor=config.predictor, pop_size=8, n_gen=3
    )
    return Search(config, ctx, algorithm, backend or Synthetic(), SearchState(archive=Archive(SPACE)))


def measured(arch, err, params):
    return EvalResult(arch, "ok", 100.0 - err, params, 1.0, 0.5)


def test_a_penalty_objective_takes_its_reference_point_from_within_the_bounds(tmp_path):
    # tiny_ml = params + 1e10 * (params - 2)+ here; the third architecture exceeds --pmax 2 (and the penalty's bound)
    run = search(tmp_path, sec_obj="tiny_ml", pmax=2.0, wm=0.0, wa=0.0)
    design = [measured(ARCHS[0], 20.0, 1.0), measured(ARCHS[1], 10.0, 1.5), measured(ARCHS[2], 5.0, 3.0)]
    run.tell(design, 0, [r.arch for r in design])
    assert run.objective_values()[2, 1] == pytest.approx(1e10 + 3.0)
    assert run.state.ref_point == pytest.approx((20.0 + 0.1 * 15, 2.0 + 0.1 * 1))
    assert run.state.hv_history == pytest.approx([11.5 * 0.6 + 1.5 * 0.5])
    run.tell([measured(ARCHS[3], 20.0, 0.5)], 1, [ARCHS[3]])  # cheaper at the same error: the front's low-cost end
    assert run.state.hv_history[1] - run.state.hv_history[0] == pytest.approx(1.5 * 0.5)
    run.tell([measured(ARCHS[4], 8.0, 1.2)], 2, [ARCHS[4]])
    assert run.state.hv_history[2] == pytest.approx(13.5 * 0.9 + 1.5 * 0.7)
    stored = json.loads((tmp_path / "run" / "iter_2.stats").read_text())
    assert stored["ref_point"] == pytest.approx([21.5, 2.1])


def test_without_any_feasible_design_the_reference_point_sits_on_the_bounds(tmp_path):
    run = search(tmp_path, sec_obj="tiny_ml", pmax=2.0, wm=0.0, wa=0.0)
    design = [measured(ARCHS[0], 20.0, 4.0), measured(ARCHS[1], 10.0, 3.0)]
    run.tell(design, 0, [r.arch for r in design])
    assert run.state.ref_point == pytest.approx((21.0, 2.0 + 1e-6 * 2.0)) and run.state.hv_history == [0.0]
    run.tell([measured(ARCHS[2], 15.0, 1.0)], 1, [ARCHS[2]])
    assert run.state.hv_history[1] == pytest.approx(6.0 * (1.0 + 2e-6))


def test_a_design_that_leaves_too_few_successes_ends_in_one_line(tmp_path):
    run = search(tmp_path, sec_obj="macs", n_doe=6, iterations=2)
    run.backend = Synthetic(failing=run.algorithm.initial(6)[1::2])
    with pytest.raises(UsageError) as err:
        run.run()
    failed = tmp_path / "run" / "failed"
    assert str(err.value) == (
        f"only 3 of 6 evaluations succeeded, but --algorithm msunas --predictor carts needs at least 4: see why in"
        f" {failed}/, fix it or raise --n_doe"
    )
    assert len(list(failed.iterdir())) == 3 and (tmp_path / "run" / "iter_0.stats").is_file()


def test_a_design_that_fails_entirely_ends_in_one_line(tmp_path):
    run = search(tmp_path, Synthetic(failing=ARCHS), sec_obj="macs", algorithm="random")
    with pytest.raises(UsageError, match=r"^only 0 of 2 evaluations succeeded, but the hypervolume needs at least 1"):
        run.tell(run.evaluate(ARCHS[:2], 0), 0, ARCHS[:2])
    assert not (tmp_path / "run" / "iter_0.stats").exists()


def test_an_initial_design_smaller_than_the_predictor_needs_is_refused_before_anything_is_written(tmp_path, capsys):
    save = tmp_path / "run"
    assert run_cli(msunas.main, ["--save", str(save), "--n_doe", "3", "--predictor", "carts"]) == 2
    assert capsys.readouterr().err == (
        "error: --n_doe 3 is too small: --algorithm msunas with --predictor carts needs at least 4 evaluated"
        " architectures; use --n_doe 4 or more\n"
    )
    assert not save.exists()


def test_the_smallest_design_comes_from_the_predictor_registry():
    with PREDICTORS.register_temporarily("seven", lambda **_: None, min_points=7):
        with pytest.raises(UsageError, match="--predictor seven needs at least 7 evaluated architectures"):
            parse_config(["--save", "x", "--predictor", "seven", "--n_doe", "6"])
        assert parse_config(["--save", "x", "--predictor", "seven", "--n_doe", "7"]).n_doe == 7
        with pytest.raises(UsageError, match="--n_doe 6 is too small"):  # a resume may add iterations
            parse_config(["--save", "x", "--predictor", "seven", "--n_doe", "6", "--iterations", "0"])
        assert parse_config(["--save", "x", "--predictor", "seven", "--n_doe", "2", "--algorithm", "random"])


class NaNLogits(nn.Module):
    """A network whose logits are all NaN (as after a broken recalibration or overflowing weights)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x) * float("nan")


def test_a_subnet_with_nan_logits_fails_and_never_reaches_the_front(weights, tmp_path, monkeypatch):
    smallest = OFAMobileNetV3Space(lr=16, ur=20).smallest()
    real = OFAMobileNetV3Space.extract

    def extract(self, supernet, arch):
        net = real(self, supernet, arch)
        return NaNLogits(net) if arch == smallest else net

    monkeypatch.setattr(OFAMobileNetV3Space, "extract", extract)
    save = tmp_path / "run"
    argv = ["--supernet_path", weights, "--save", str(save), "--lr", "16", "--ur", "20", "--sec_obj", "macs"]
    argv += ["--n_doe", "5", "--iterations", "1", "--n_iter", "2", "--predictor", "carts", "--n_bn_cal", "32"]
    assert run_cli(msunas.main, [*argv, "--pop_size", "8", "--n_gen", "2", "--device", "cpu"]) == 0
    stats = json.loads((save / "iter_1.stats").read_text())
    (failed,) = stats["evaluations"]["failed"]
    assert failed["arch"] == smallest and failed["stats"]["error"].startswith(
        "FloatingPointError: non-finite logits on the valid split"
    )
    assert smallest not in [row[0] for row in stats["archive"]] and len(stats["archive"]) == 4 + 2

"""The contract of every registered evaluator and backend, checked on the tiny test space (fast)."""

import json
import pickle

import pytest
import torch

from evaluator import BACKENDS, EVALUATORS, EvalResult, Evaluator, EvaluatorSpec, create_backend
from search.config import SearchConfig
from search_space import SEARCH_SPACES
from tests.search_space.tiny_space import TinySpace
from utils.errors import UsageError


@pytest.fixture
def search(tmp_path):
    """A search over the tiny space, its supernet on disk (registered for the test only)."""
    with SEARCH_SPACES.register_temporarily("tiny", TinySpace):
        torch.manual_seed(0)
        weights = tmp_path / "tiny.pth"
        torch.save({"state_dict": TinySpace().build_supernet(10).state_dict()}, weights)
        yield SearchConfig(
            save=str(tmp_path / "run"),
            search_space="tiny",
            supernet_path=str(weights),
            lr=16,
            ur=20,
            n_bn_cal=32,
            device="cpu",
            sec_obj="macs",
        )


@pytest.mark.parametrize("name", EVALUATORS.names(aliases=False))
def test_every_evaluator_builds_from_a_search_and_measures(name, search, tmp_path):
    cls = EVALUATORS.get(name)
    assert issubclass(cls, Evaluator) and cls.name == name and EVALUATORS.entry(name).help
    arguments = cls.arguments(search)
    assert pickle.loads(pickle.dumps(arguments)) == arguments  # workers rebuild it in another process
    space = search.space()
    archs = [space.smallest(), space.largest()]
    dirs = [tmp_path / "net_0", tmp_path / "net_1"]
    results = EvaluatorSpec(name, arguments).build().evaluate(archs, dirs)
    costs = space.cost_function(10)
    for arch, result, out in zip(archs, results, dirs, strict=True):
        assert result.ok and result.arch == arch and 0 <= result.top1 <= 100
        assert result.macs == costs(arch).macs
        assert json.loads((out / f"{out.name}.subnet").read_text()) == arch
        stats = json.loads((out / f"{out.name}.stats").read_text())
        assert stats == result.stats() and EvalResult.from_stats(arch, stats).stats() == stats


@pytest.mark.parametrize("name", EVALUATORS.names(aliases=False))
def test_every_evaluator_refuses_a_missing_supernet_before_evaluating(name, search):
    missing = SearchConfig(**{**search.to_dict(), "supernet_path": "/nonexistent/w.pth"})
    with pytest.raises(UsageError, match="/nonexistent/w.pth"):
        EVALUATORS.get(name).arguments(missing)


@pytest.mark.parametrize("name", BACKENDS.names(aliases=False))
def test_every_backend_is_registered_under_its_name_with_help(name):
    entry = BACKENDS.entry(name)
    assert entry.factory.name == name and entry.help


def test_sequential_backend_equals_direct_evaluation(search, tmp_path):
    spec = EvaluatorSpec("supernet", EVALUATORS.get("supernet").arguments(search))
    arch = search.space().largest()
    direct = spec.build().evaluate([arch], [tmp_path / "a" / "net_0"])[0]
    with create_backend("sequential", spec) as backend:
        (result,) = backend.evaluate([arch], [tmp_path / "b" / "net_0"])
    assert (result.top1, result.params, result.macs) == (direct.top1, direct.params, direct.macs)

"""The contract of every registered evaluator and backend, checked on the tiny test space (fast)."""

import json
import pickle

import pytest
import torch

from evaluator import BACKENDS, EVALUATORS, EvalResult, Evaluator, EvaluatorSpec, create_backend
from search.config import SearchConfig
from search_space import SEARCH_SPACES, create_search_space
from tests.search_space.tiny_darts_space import TinyDartsSpace
from tests.search_space.tiny_space import TinySpace
from utils.errors import UsageError


@pytest.fixture
def search(tmp_path):
    """A search over the tiny space, its supernet on disk (the tiny spaces registered for the test only)."""
    with (
        SEARCH_SPACES.register_temporarily("tiny", TinySpace),
        SEARCH_SPACES.register_temporarily("tiny_darts", TinyDartsSpace),
    ):
        yield search_over("tiny", TinySpace(), tmp_path, lr=16, ur=20)


def search_over(name: str, space, tmp_path, **settings) -> SearchConfig:
    """A search over space `name` (instance `space`) with a freshly initialised supernet on disk."""
    torch.manual_seed(0)
    weights = tmp_path / f"{name}.pth"
    torch.save({"state_dict": space.build_supernet(10).state_dict()}, weights)
    return SearchConfig(
        save=str(tmp_path / "run"),
        search_space=name,
        supernet_path=str(weights),
        n_bn_cal=32,
        device="cpu",
        sec_obj="macs",
        **settings,
    )


def served(name: str, search: SearchConfig, tmp_path) -> SearchConfig:
    """`search` when evaluator `name` serves the tiny space, else a search over a space it is the default of."""
    if search.space().default_evaluator == name:
        return search
    if TinyDartsSpace.default_evaluator == name:  # no supernet: DARTS searches and trains each network, in seconds
        tiny = {"search_space": "tiny_darts", "lr": 8, "ur": 8, "n_epochs": 1, "inner_images": 128, "device": "cpu"}
        return SearchConfig.from_dict({"save": search.save, **tiny})
    space = next(e.name for e in SEARCH_SPACES.entries() if SEARCH_SPACES.get(e.name).default_evaluator == name)
    fast = {"lr": 16, "ur": 16, "warmup_ee_epochs": 1, "ee_epochs": 0, "sec_obj": "avg_macs"}
    settings = {k: v for k, v in fast.items() if k in SearchConfig.from_dict({}).to_dict()}
    return SearchConfig.from_dict({**search_over(space, create_search_space(space), tmp_path).to_dict(), **settings})


@pytest.mark.parametrize("name", EVALUATORS.names(aliases=False))
def test_every_evaluator_builds_from_a_search_and_measures(name, search, tmp_path):
    search = served(name, search, tmp_path)
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
        if "macs" in cls.measured(search):  # measured on the network it evaluated (darts: the one DARTS found)
            assert result.macs > 0
        else:
            assert result.macs == costs(arch).macs
        assert json.loads((out / f"{out.name}.subnet").read_text()) == arch
        stats = json.loads((out / f"{out.name}.stats").read_text())
        assert stats == result.stats() and EvalResult.from_stats(arch, stats).stats() == stats


@pytest.mark.parametrize("name", EVALUATORS.names(aliases=False))
def test_every_evaluator_refuses_a_missing_supernet_before_evaluating(name, search, tmp_path):
    search = served(name, search, tmp_path)
    missing = SearchConfig.from_dict({**search.to_dict(), "supernet_path": "/nonexistent/w.pth"})
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

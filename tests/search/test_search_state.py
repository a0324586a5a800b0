"""`SearchState`: the one owner of the `iter_{k}.stats` record (writing, checking, reading)."""

import json

import numpy as np
import pytest

from evaluator.base import EvalResult
from search.archive import Archive
from search.config import SearchConfig
from search.state import REQUIRED, SearchState, read_record
from utils.errors import UsageError

CONFIG = SearchConfig(save="results/run", sec_obj="macs", lr=16, ur=20, seed=3)
SPACE = CONFIG.space()


def result(arch, top1, status="ok"):
    if status != "ok":
        return EvalResult.failure(arch, "RuntimeError: out of memory", wall_time_s=0.5)
    return EvalResult(arch, "ok", top1, 2.0, top1 / 30, 0.04, extras={"latency": 0.25}, wall_time_s=1.5)


@pytest.fixture
def state():
    archs = SPACE.sample(5, np.random.default_rng(0))
    archive = Archive(SPACE)
    archive.add([result(archs[0], 80.0), result(archs[1], 85.5), result(archs[2], 0.0, "failed")], 0)
    archive.add([result(archs[3], 90.25)], 1)
    return SearchState(
        archive=archive,
        iteration=1,
        ref_point=(22.0, 3.5),
        hv_history=[10.5, 12.25],
        n_evals=[3, 4],
        surrogate={"name": "carts", "winner": "carts", "rmse": 1.5, "rho": 0.5, "tau": 0.25},
    )


def record_of(state, config=CONFIG):
    values = np.array([[100 - e.stats["top1"], e.stats["macs"]] for e in state.archive.entries])
    return state.to_record(config, values[:, : len(config.objectives)], [state.archive.entries[-1].arch])


def test_record_round_trip_through_json(state):
    record = json.loads(json.dumps(record_of(state)))
    back = SearchState.from_record(record, SPACE, "iter_1.stats")
    assert back == state
    assert record_of(back) == record


def test_record_layout_is_upstreams_plus_what_resuming_needs(state):
    record = record_of(state)
    assert list(record) == [
        *("archive", "objectives", "iteration", "candidates", "hv", "hv_history", "n_evals", "surrogate"),
        *("ref_point", "seed", "config", "evaluations"),
    ]
    assert record["archive"][0] == [state.archive.entries[0].arch, 20.0, 80.0 / 30]
    assert len(record["archive"]) == 3 and record["objectives"] == ["top1", "macs"]
    assert record["hv"] == 12.25 and record["ref_point"] == [22.0, 3.5] and record["seed"] == 3
    assert record["config"] == CONFIG.to_dict() and record["evaluations"] == state.archive.to_dict()
    single = record_of(state, SearchConfig(save="results/run", sec_obj=None, lr=16, ur=20))
    assert single["archive"][1] == [state.archive.entries[1].arch, 14.5, None]


@pytest.mark.parametrize("key", REQUIRED)
def test_a_record_without_a_required_key_is_refused_naming_flag_path_and_key(state, key):
    record = {k: v for k, v in record_of(state).items() if k != key}
    with pytest.raises(UsageError) as raised:
        SearchState.from_record(record, SPACE, "run/iter_1.stats", "--expr")
    message = str(raised.value)
    assert message.startswith("--expr file run/iter_1.stats is not an iter_{k}.stats written by this search")
    assert f"{key} missing" in message and "\n" not in message


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: [r], "is not an iter_{k}.stats written by this search (it holds a list"),
        (lambda r: {"archive": r["archive"]}, "is not an iter_{k}.stats written by this search"),
        (lambda r: {**r, "config": ["sec_obj"]}, "holds a malformed search configuration"),
        (lambda r: {**r, "evaluations": {"entries": [{"arch": {"r": 64}}]}}, "holds an invalid archive"),
        (lambda r: {**r, "evaluations": []}, "holds an invalid archive"),
        (lambda r: {**r, "iteration": "last"}, "holds a malformed search state"),
        (lambda r: {**r, "ref_point": None}, "holds a malformed search state"),
    ],
)
def test_a_foreign_or_broken_record_is_one_usage_error(state, change, reason):
    with pytest.raises(UsageError) as raised:
        SearchState.from_record(change(record_of(state)), SPACE, "x/iter_1.stats")
    message = str(raised.value)
    assert message.startswith("--resume file x/iter_1.stats ") and reason in message and "\n" not in message


def test_read_record_of_a_missing_unreadable_or_written_file(state, tmp_path):
    with pytest.raises(UsageError, match=f"--resume file not found: {tmp_path / 'nope.stats'}"):
        read_record(tmp_path / "nope.stats")
    bad = tmp_path / "bad.stats"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match=f"--expr file {bad} is not readable JSON"):
        read_record(bad, "--expr")
    good = tmp_path / "iter_1.stats"
    good.write_text(json.dumps(record_of(state)))
    assert SearchState.from_record(read_record(good), SPACE, good) == state

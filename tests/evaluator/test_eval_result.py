"""`EvalResult.stats` and `EvalResult.from_stats` are inverses; `read_result` reads back what `write_result` wrote."""

import json

import pytest

from evaluator.base import EvalResult, read_result, write_result
from search_space import InvalidArchitecture
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from utils.errors import UsageError

ARCH = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 16}
OK = EvalResult(
    arch=ARCH,
    status="ok",
    top1=91.25,
    params=2.1,
    macs=2.4,
    activations=0.04,
    extras={"latency": 0.5, "avg_macs": 1.75, "top1_robust": 80.0},
    wall_time_s=1.25,
)
FAILED = EvalResult.failure(ARCH, FloatingPointError("non-finite training loss nan"), wall_time_s=3.5)
BARE = EvalResult(ARCH, "ok", 50.0, 1.0, 1.0, 0.1)


@pytest.mark.parametrize("result", [OK, FAILED, BARE], ids=["extras", "failure", "bare"])
def test_from_stats_inverts_stats_through_json(result):
    stats = json.loads(json.dumps(result.stats()))
    assert EvalResult.from_stats(result.arch, stats) == result
    assert EvalResult.from_stats(result.arch, stats).stats() == result.stats()
    assert list(EvalResult.from_stats(result.arch, stats).stats()) == list(result.stats())  # same key order


def test_every_unknown_key_is_an_extra():
    stats = {**OK.stats(), "flatness": 0.25}
    assert EvalResult.from_stats(ARCH, stats).extras == {**OK.extras, "flatness": 0.25}


def test_from_stats_refuses_another_status():
    with pytest.raises(ValueError, match="status 'maybe'"):
        EvalResult.from_stats(ARCH, {**OK.stats(), "status": "maybe"})


@pytest.mark.parametrize("key", ["top1", "params", "macs", "activations", "status"])
def test_from_stats_refuses_a_record_without_a_number_or_status(key):
    stats = {k: v for k, v in OK.stats().items() if k != key}
    with pytest.raises(ValueError, match=f"lacks {key}"):
        EvalResult.from_stats(ARCH, stats)


def test_read_result_reads_what_write_result_wrote(tmp_path):
    out = tmp_path / "net_0"
    write_result(OK, out)
    assert read_result(out) == OK
    space = OFAMobileNetV3Space(lr=16, ur=20, rstep=4)
    assert read_result(str(out), space) == OK


@pytest.mark.parametrize(
    ("stats", "reason"),
    [
        (None, "stats file not found: {path}"),
        ("{broken", "{path} is not a readable JSON stats file"),
        ("[1, 2]", "{path} holds a list, not a stats record"),
        ('{"top1": 90.0}', "{path}: the stats record lacks params, macs, activations, status"),
    ],
)
def test_read_result_refuses_an_unreadable_folder_naming_the_file(tmp_path, stats, reason):
    out = tmp_path / "net_3"
    out.mkdir()
    (out / "net_3.subnet").write_text(json.dumps(ARCH))
    if stats is not None:
        (out / "net_3.stats").write_text(stats)
    with pytest.raises(UsageError) as raised:
        read_result(out)
    assert reason.format(path=out / "net_3.stats") in str(raised.value) and "\n" not in str(raised.value)


def test_read_result_of_a_failure_or_a_foreign_architecture(tmp_path):
    failed = tmp_path / "net_1"
    write_result(FAILED, failed)
    with pytest.raises(UsageError, match="stats file not found"):
        read_result(failed)
    foreign = tmp_path / "net_2"
    write_result(EvalResult({**ARCH, "r": 64}, "ok", 50.0, 1.0, 1.0, 0.1), foreign)
    with pytest.raises(InvalidArchitecture, match="net_2.subnet"):
        read_result(foreign, OFAMobileNetV3Space(lr=16, ur=20, rstep=4))

"""Reading a search's net folders back: results to reuse on resume, the archive rebuilt, a choice's folder found."""

import json
import logging

import numpy as np

from evaluator.base import EvalResult, write_result
from search.archive import Archive
from search.files import candidate_dir, find_net_folder, reusable_result, scan_archive
from search_space.ofa_mbv3 import OFAMobileNetV3Space

SPACE = OFAMobileNetV3Space(lr=16, ur=20, rstep=4)
A, B, C, D = SPACE.sample(4, np.random.default_rng(1))


def ok(arch, top1):
    return EvalResult(arch, "ok", top1, 2.0, 3.0, 0.04, extras={"latency": 0.5}, wall_time_s=1.0)


def test_reusable_result_is_a_complete_ok_result_for_that_architecture(tmp_path):
    out = candidate_dir(tmp_path, 1, 0)
    assert reusable_result(out, A) is None  # nothing written yet
    write_result(ok(A, 90.0), out)
    assert reusable_result(out, A) == ok(A, 90.0)
    assert reusable_result(out, B) is None  # another candidate at that place
    (out / "net_0.stats").write_text('{"top1": 90')  # cut short by a crash
    assert reusable_result(out, A) is None
    failed = candidate_dir(tmp_path, 1, 1)
    write_result(EvalResult.failure(B, "RuntimeError: boom"), failed)
    assert reusable_result(failed, B) is None


def test_scan_archive_keeps_ok_results_and_says_why_it_skips_the_rest(tmp_path, caplog):
    write_result(ok(A, 80.0), candidate_dir(tmp_path, 0, 0))
    write_result(EvalResult.failure(B, "RuntimeError: boom"), candidate_dir(tmp_path, 0, 1))
    write_result(ok(C, 85.0), candidate_dir(tmp_path, 0, 2))
    (candidate_dir(tmp_path, 0, 2) / "net_2.stats").write_text("{broken")
    write_result(ok({**D, "r": 64}, 70.0), candidate_dir(tmp_path, 1, 0))
    write_result(ok(A, 80.0), candidate_dir(tmp_path, 1, 1))
    write_result(ok(D, 95.0), candidate_dir(tmp_path, 1, 2))
    with caplog.at_level(logging.WARNING, logger="search.files"):
        archive = scan_archive(tmp_path, SPACE)
    assert [(e.arch, e.iteration, e.stats) for e in archive] == [
        (A, 0, ok(A, 80.0).stats()),
        (D, 1, ok(D, 95.0).stats()),
    ]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].endswith("iter_0/net_1: failed evaluation")
    assert "iter_0/net_2: " in lines[1] and "net_2.stats is not a readable JSON stats file" in lines[1]
    assert "iter_1/net_0: invalid architecture: " in lines[2] and "net_0.subnet" in lines[2]
    assert lines[3].endswith("iter_1/net_1: architecture already found in an earlier folder")
    assert len(lines) == 4


def test_find_net_folder_skips_unreadable_folders_with_a_warning(tmp_path, caplog):
    (candidate_dir(tmp_path, 2, 0)).mkdir(parents=True)
    (candidate_dir(tmp_path, 2, 0) / "net_0.subnet").write_text(json.dumps([1, 2]))
    write_result(ok(A, 80.0), candidate_dir(tmp_path, 2, 1))
    write_result(ok(B, 85.0), candidate_dir(tmp_path, 2, 2))
    archive = Archive(SPACE)
    archive.add([ok(B, 85.0), ok(C, 70.0)], 2)
    with caplog.at_level(logging.WARNING, logger="search.files"):
        assert find_net_folder(tmp_path, archive.entries[0], archive) == candidate_dir(tmp_path, 2, 2)
        assert find_net_folder(tmp_path, archive.entries[1], archive) is None
    assert "iter_2/net_0: " in caplog.text and "holds a list, not an architecture" in caplog.text

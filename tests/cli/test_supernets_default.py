"""`python -m supernets.default` with its weights cached: it reports the card and trains nothing."""

from __future__ import annotations

import json
import logging

import supernets.default
import supernets.train
from supernets.default import default_weights_path
from utils.cli import run_cli

CARD = {
    "accuracy": {"smallest": 97.25, "largest": 97.75, "random": {"n": 20, "min": 94.7, "max": 97.7}},
    "train_time_s": 195.4,
}


def test_a_cached_default_supernet_is_reported_not_trained(tmp_path, caplog, monkeypatch):
    weights = default_weights_path(tmp_path)
    weights.write_bytes(b"weights")
    weights.with_suffix(".json").write_text(json.dumps(CARD))

    def no_training(*args, **kwargs):
        raise AssertionError("the cached default supernet was trained again")

    monkeypatch.setattr(supernets.train.SupernetTrainer, "run", no_training)
    with caplog.at_level(logging.INFO, logger="supernets.default"):
        assert run_cli(supernets.default.main, ["--out", str(tmp_path), "--device", "cpu"]) == 0
    assert "smallest 97.2%, largest 97.8%, 20 random subnets 94.7-97.7% (trained in 195 s)" in caplog.text

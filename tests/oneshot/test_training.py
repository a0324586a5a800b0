import dataclasses
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from oneshot.hc_loss import hardware_constraint_loss
from oneshot.lut import LookupTable
from oneshot.sampling import SAMPLE_STRATEGIES
from oneshot.training import (
    ARCH_OPTIMIZERS,
    ArchitectureStep,
    ArchOptimConfig,
    SupernetTrainConfig,
    steps_per_pass,
    temperature,
    train_supernet,
    trained_candidates,
)
from training.config import OptimConfig, SharpnessConfig
from utils.cli import flat_record
from utils.errors import UsageError

OPTIM = OptimConfig(lr=0.05, batch_size=8)
RES = 16


def config(strategy: str, steps: int = 2, **kw) -> SupernetTrainConfig:
    return SupernetTrainConfig(sample_strategy=strategy, steps_per_epoch=steps, optim=OPTIM, **kw)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sample_strategy": "sandwich"}, "--sample-strategy must be one of differentiable, fairstrict, uniform"),
        ({"epochs": 0}, "--epochs must be >= 1"),
        ({"steps_per_epoch": 0}, "--steps-per-epoch must be >= 1"),
        ({"hc_weight": -1.0}, "--hc-weight must be >= 0"),
        ({"target": 0}, "--target-hc must be > 0"),
        ({"hc_metric": "latency"}, "--hc-metric must be one of macs, flops, params"),
        ({"mode": "path"}, "--mode must be one of softmax, gumbel"),
        ({"tau_min": 0.0}, "--tau-min must be > 0"),
        ({"tau_max": 0.1}, "--tau-max must be >= --tau-min"),
        ({"arch": ArchOptimConfig(a_optimizer="lbfgs")}, "--a-optimizer must be one of adam, rmsprop, sgd"),
        ({"arch": ArchOptimConfig(a_lr=0)}, "--a-lr must be > 0"),
        ({"arch": ArchOptimConfig(a_weight_decay=-1)}, "--a-weight-decay must be >= 0"),
        ({"arch": ArchOptimConfig(a_momentum=1.0)}, "--a-momentum must lie in"),
        ({"optim": OptimConfig(lr=0)}, "--lr must be > 0"),
        ({"optim": OptimConfig(sharpness=SharpnessConfig(optim="sam"))}, "supports --optim sgd only"),
    ],
)
def test_validate_names_the_flag(change, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        dataclasses.replace(SupernetTrainConfig(), **change).validate()


def test_defaults_are_upstreams_and_flatten_to_one_record():
    cfg = SupernetTrainConfig().validate()
    assert cfg.arch == ArchOptimConfig("sgd", 0.05, 4e-4, 0.9)
    assert (cfg.hc_weight, cfg.target, cfg.mode, cfg.tau_max, cfg.tau_min) == (0.005, None, "gumbel", 5.0, 0.5)
    record = flat_record(cfg)
    assert {"a_optimizer", "a_lr", "lr", "batch_size", "sample_strategy", "target"} <= record.keys()


@pytest.mark.parametrize("name", ARCH_OPTIMIZERS.names())
def test_every_arch_optimizer_builds_with_the_configured_settings(name):
    p = torch.nn.Parameter(torch.zeros(3))
    opt = ArchOptimConfig(a_optimizer=name, a_lr=0.02, a_weight_decay=1e-3, a_momentum=0.8).optimizer([p])
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.02, 1e-3)
    assert group.get("momentum", group.get("betas", (None,))[0]) == 0.8
    assert {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[name] is type(opt)


def test_temperature_falls_exponentially_from_tau_max_to_tau_min():
    taus = [temperature(s, 5, 5.0, 0.5) for s in range(5)]
    assert taus[0] == 5.0
    assert math.isclose(taus[-1], 0.5, rel_tol=1e-12)
    ratios = [b / a for a, b in itertools.pairwise(taus)]
    assert all(math.isclose(r, ratios[0], rel_tol=1e-12) for r in ratios)
    assert temperature(0, 1, 5.0, 0.5) == 5.0


def test_steps_per_pass_counts_batches_per_step():
    assert steps_per_pass(160, 8, 1) == 20
    assert steps_per_pass(161, 8, 1) == 20  # a final batch of one image is dropped
    assert steps_per_pass(162, 8, 1) == 21
    assert steps_per_pass(160, 8, 2) == 10
    assert steps_per_pass(5, 8, 1) == 1
    with pytest.raises(UsageError, match="too small"):
        steps_per_pass(5, 8, 2)


@pytest.mark.parametrize("strategy", SAMPLE_STRATEGIES.names())
def test_same_seed_gives_bit_identical_weights(strategy, os_spec, os_lut, os_train_only, os_make_supernet, os_state):
    cfg = config(strategy, target=os_lut.smallest()[1] * 2)
    runs = []
    for _ in range(2):
        net = os_make_supernet(os_spec)
        record = train_supernet(net, os_train_only, RES, cfg, os_lut, "cpu", progress=False)
        runs.append((os_state(net), record))
    (a, log_a), (b, log_b) = runs
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert log_a.losses == log_b.losses and log_a.counts == log_b.counts
    other = os_make_supernet(os_spec)
    train_supernet(other, os_train_only, RES, dataclasses.replace(cfg, seed=1), os_lut, "cpu", progress=False)
    assert not all(torch.equal(a[k], v) for k, v in os_state(other).items())


def test_uniform_trains_one_path_per_step_and_leaves_the_alphas(os_spec, os_train_only, os_make_supernet, os_state):
    net = os_make_supernet(os_spec)
    before = os_state(net)
    global_rng = torch.get_rng_state()
    record = train_supernet(net, os_train_only, RES, config("uniform", steps=3, epochs=2), None, "cpu", progress=False)
    assert torch.equal(torch.get_rng_state(), global_rng)  # the run owns its random streams
    assert record.steps == 6 and len(record.losses) == 6 and all(math.isfinite(v) for v in record.losses)
    assert [sum(row) for row in record.counts] == [6] * os_spec.n_layers
    assert record.arch_losses == record.expected_costs == record.taus == []
    after = os_state(net)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("alpha"))
    assert not torch.equal(before["stem.0.weight"], after["stem.0.weight"])
    assert not net.training
    assert record.to_dict()["sample_strategy"] == "uniform"


def test_fairstrict_with_unequal_choices_trains_each_candidate_g_over_n_times_per_step(
    os_mixed_spec, os_train_only, os_make_supernet
):
    assert os_mixed_spec.n_choices == (6, 7, 7)
    net = os_make_supernet(os_mixed_spec)
    record = train_supernet(net, os_train_only, RES, config("fairstrict", steps=1), None, "cpu", progress=False)
    assert record.counts == [[42 // n] * n for n in (6, 7, 7)]


def test_steps_per_epoch_none_is_one_pass(os_spec, os_train_only, os_make_supernet):
    small = dataclasses.replace(os_train_only, train=os_train_only.train.subset(range(24)))
    for strategy, steps in (("uniform", 3), ("differentiable", 1)):
        net = os_make_supernet(os_spec)
        record = train_supernet(net, small, RES, config(strategy, steps=None), None, "cpu", progress=False)
        assert record.steps == steps


def test_differentiable_trains_alphas_on_training_batches_only(
    os_spec, os_lut, os_train_only, os_make_supernet, os_state
):
    net = os_make_supernet(os_spec)
    before = os_state(net)
    cfg = config("differentiable", steps=4, target=os_lut.smallest()[1], hc_weight=1.0)
    record = train_supernet(net, os_train_only, RES, cfg, os_lut, "cpu", progress=False)  # no valid/test split
    after = os_state(net)
    assert not any(torch.equal(before[k], after[k]) for k in before if k.startswith("alpha"))
    assert len(record.arch_losses) == len(record.expected_costs) == len(record.taus) == 4
    assert record.taus[0] == 5.0 and math.isclose(record.taus[-1], 0.5)
    assert record.expected_costs[0] == pytest.approx(float(os_lut.expected([torch.full((4,), 0.25)] * 6)))
    assert [sum(row) for row in record.counts] == [4] * os_spec.n_layers


def test_differentiable_without_a_table_logs_no_cost_and_a_target_needs_one(os_spec, os_train_only, os_make_supernet):
    record = train_supernet(
        os_make_supernet(os_spec), os_train_only, RES, config("differentiable", mode="softmax"), None, "cpu", False
    )
    assert all(math.isnan(c) for c in record.expected_costs)
    assert record.counts == [[2] * 4] * os_spec.n_layers  # the softmax mixture trains every candidate
    with pytest.raises(UsageError, match="lookup table"):
        train_supernet(
            os_make_supernet(os_spec), os_train_only, RES, config("differentiable", target=10**6), None, "cpu", False
        )


def test_large_hc_weight_and_tight_target_lower_the_expected_cost(os_spec, os_lut, os_train_only, os_make_supernet):
    net = os_make_supernet(os_spec)
    cfg = config("differentiable", steps=6, target=os_lut.smallest()[1], hc_weight=50.0)
    record = train_supernet(net, os_train_only, RES, cfg, os_lut, "cpu", progress=False)
    costs = record.expected_costs
    assert costs[-1] < costs[0]
    assert all(b <= a for a, b in itertools.pairwise(costs))


def test_replayed_gumbel_draws_are_the_candidates_the_forward_ran(os_spec, os_make_supernet):
    net = os_make_supernet(os_spec).eval()
    with torch.no_grad():
        for a in net.arch_parameters():
            a.normal_()
    x = torch.randn(2, 3, RES, RES)
    noise = torch.Generator().manual_seed(5)
    drawn = trained_candidates(net, "gumbel", 0.7, noise.get_state())
    with torch.no_grad():
        mixed = net(x, mode="gumbel", tau=0.7, hard=True, generator=noise)
        single = net(x, [d[0] for d in drawn])
    assert torch.equal(mixed, single)


def test_architecture_step_changes_only_the_alphas_with_ce_plus_hc(os_spec, os_lut, os_make_supernet, os_state):
    net = os_make_supernet(os_spec).train()
    before = os_state(net)
    target = os_lut.smallest()[1]
    step = ArchitectureStep(net, os_lut, ArchOptimConfig(), hc_weight=0.5, target=target, hc_metric="macs")
    x, y = torch.randn(4, 3, RES, RES), torch.tensor([0, 1, 2, 3])
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        ce = F.cross_entropy(net(x, mode="gumbel", tau=1.0, hard=True, generator=torch.Generator().manual_seed(0)), y)
        cost = os_lut.expected(net.probabilities())
        hc = hardware_constraint_loss(cost, target, 0.5)
    loss, expected = step.step(x, y, 1.0, noise)
    assert loss == pytest.approx(float(ce + hc), rel=1e-6)
    assert expected == float(cost) > target
    assert float(os_lut.expected(net.probabilities()).detach()) < expected
    after = os_state(net)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert {k for k in changed if k.startswith("alpha")} == {f"alpha.{i}" for i in range(os_spec.n_layers)}
    assert all(k.startswith("alpha") or "running" in k or "num_batches" in k for k in changed)
    assert all(p.grad is None for p in net.weight_parameters())


def test_lut_table_metric_used_by_hc_metric(os_spec):
    lut = LookupTable.build(os_spec, n_classes=10, resolution=RES)
    p = [torch.full((n,), 1 / n) for n in os_spec.n_choices]
    assert float(lut.expected(p, "flops")) == pytest.approx(2 * float(lut.expected(p, "macs")))

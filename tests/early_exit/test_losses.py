import dataclasses
import math

import pytest
import torch

from early_exit.config import EETrainConfig
from early_exit.losses import (
    EE_LOSSES,
    BernulliLoss,
    JointLoss,
    create_ee_loss,
    exit_probabilities,
    expected_macs,
    list_methods,
    needs_confidence,
)
from early_exit.model import ExitOutputs
from utils.errors import UsageError

# Two samples, three exits (the final last), two classes.
Y = torch.tensor([0, 1])
LOGITS = [
    torch.tensor([[2.0, 0.0], [0.0, 1.0]]),  # exit 0: both right
    torch.tensor([[0.5, 1.0], [0.0, 2.0]]),  # exit 1: sample 0 wrong, sample 1 right
    torch.tensor([[0.0, 3.0], [1.0, 0.0]]),  # final
]
CONF = [[0.5, 0.2], [0.25, 0.5], [1.0, 1.0]]  # per exit, per sample
COSTS = [10.0, 20.0, 40.0]
# Leaving probabilities: sample 0 [0.5, 0.25·0.5, 0.5·0.75], sample 1 [0.2, 0.5·0.8, 0.8·0.5].
PROBS = [[0.5, 0.125, 0.375], [0.2, 0.4, 0.4]]
AVG_MACS = (0.5 * 10 + 0.125 * 20 + 0.375 * 40 + 0.2 * 10 + 0.4 * 20 + 0.4 * 40) / 2  # 24.25


def outputs(conf=CONF, requires_grad=False):
    confidence = [torch.tensor(c, requires_grad=requires_grad) for c in conf]
    return ExitOutputs([z.clone() for z in LOGITS], confidence)


def softplus(x):
    return math.log1p(math.exp(x))


def test_exit_probabilities_and_expected_macs():
    confidence = torch.tensor(CONF).T
    assert torch.allclose(exit_probabilities(confidence), torch.tensor(PROBS))
    assert torch.allclose(exit_probabilities(confidence.clamp(max=0.9)), torch.tensor(PROBS))  # final not read
    assert expected_macs(confidence, COSTS).item() == pytest.approx(AVG_MACS)


def test_joint_is_the_sum_of_every_exit_cross_entropy():
    # CE of two classes: softplus(z_other - z_label).
    ce = [
        (softplus(-2.0) + softplus(-1.0)) / 2,
        (softplus(0.5) + softplus(-2.0)) / 2,
        (softplus(3.0) + softplus(1.0)) / 2,
    ]
    out = ExitOutputs([z.clone() for z in LOGITS])  # no confidence heads needed
    assert JointLoss()(out, Y).item() == pytest.approx(sum(ce))
    weighted = JointLoss(weights=[1.0, 2.0, 0.5])
    assert list(weighted.terms(out, Y)) == ["exit_0", "exit_1", "exit_2"]
    assert weighted(out, Y).item() == pytest.approx(ce[0] + 2 * ce[1] + 0.5 * ce[2])
    with pytest.raises(ValueError, match="2 weights for a network with 3 exits"):
        JointLoss(weights=[1.0, 1.0])(out, Y)


def test_bernulli_classification_term():
    terms = BernulliLoss(COSTS, mmax=100.0).terms(outputs(), Y)
    # Mixture of the early exits' logits: sample 0: 0.5·[2, 0] + 0.125·[0.5, 1]; sample 1: 0.2·[0, 1] + 0.4·[0, 2].
    mixture = (softplus(0.125 - 1.0625) + softplus(0.0 - 1.0)) / 2
    final = (softplus(3.0) + softplus(1.0)) / 2
    assert terms["classification"].item() == pytest.approx(mixture + final)


def test_bernulli_prior_term():
    terms = BernulliLoss(COSTS, mmax=100.0).terms(outputs(), Y)
    # Exit 0: both right, weight 2/(2·2); exit 1: one right one wrong, weights 2/(2·1). The final exit is left out.
    exit0 = 0.5 * -math.log(0.5) + 0.5 * -math.log(0.2)
    exit1 = -math.log(1 - 0.25) + -math.log(0.5)
    assert terms["prior"].item() == pytest.approx((exit0 + exit1) / 4)


def test_bernulli_energy_term_is_differentiable_over_the_budget():
    out = outputs(requires_grad=True)
    energy = BernulliLoss(COSTS, mmax=20.0, w_beta=1.0).terms(out, Y)["energy"]
    assert energy.item() == pytest.approx((AVG_MACS - 20) / (40 - 20))
    energy.backward()
    # d avg_macs / d b_0 of sample 0 = c_0 - b_1·c_1 - (1 - b_1)·c_2 = 10 - 5 - 30, halved by the batch mean.
    assert out.confidence[0].grad[0].item() == pytest.approx(-25 / 2 / 20)
    assert all(c.grad.abs().sum() > 0 for c in out.confidence[:-1])


@pytest.mark.parametrize("mmax", [30.0, 50.0])  # over the average (24.25), over the whole network (40)
def test_bernulli_energy_term_is_zero_within_the_budget(mmax):
    out = outputs(requires_grad=True)
    energy = BernulliLoss(COSTS, mmax=mmax, w_beta=1.0).terms(out, Y)["energy"]
    assert energy.item() == 0
    if energy.requires_grad:
        energy.backward()
        assert all(c.grad is None or not c.grad.any() for c in out.confidence)


def test_bernulli_support_term_follows_the_support_matrix():
    loss = BernulliLoss(COSTS, mmax=100.0, w_gamma=1.0)
    assert loss.terms(outputs(), Y)["support"].item() == 0  # no support set yet
    loss.support = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 1.0]])  # [classes, exits] accuracies
    # Sample 0 (class 0): [0.5, 0.25, 1] against [1, 0.5, 0]; sample 1 (class 1): [0.2, 0.5, 1] against [0.5, 1, 1].
    expected = (0.5**2 + 0.25**2 + 1.0**2 + 0.3**2 + 0.5**2 + 0.0**2) / 6
    assert loss.terms(outputs(), Y)["support"].item() == pytest.approx(expected)
    loss.support = torch.ones(2, 2)
    with pytest.raises(ValueError, match="support matrix of 2 exits"):
        loss(outputs(), Y)


def test_bernulli_weights_and_total():
    unit = BernulliLoss(COSTS, mmax=20.0, w_alpha=1.0, w_beta=1.0, w_gamma=1.0, support=torch.full((2, 3), 0.5))
    weighted = dataclasses.replace(unit, w_alpha=2.0, w_beta=3.0, w_gamma=4.0)
    one, many = unit.terms(outputs(), Y), weighted.terms(outputs(), Y)
    assert list(one) == ["classification", "prior", "energy", "support"]
    scale = {"classification": 2.0, "prior": 1.0, "energy": 3.0, "support": 4.0}
    for name, factor in scale.items():
        assert many[name].item() == pytest.approx(factor * one[name].item()), name
    total = weighted(outputs(), Y)
    assert math.isfinite(total.item()) and total.item() == pytest.approx(sum(t.item() for t in many.values()))


def test_bernulli_is_finite_at_saturated_confidences():
    out = outputs(conf=[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)
    loss = BernulliLoss(COSTS, mmax=5.0, w_beta=1.0, w_gamma=1.0, support=torch.rand(2, 3))(out, Y)
    loss.backward()
    assert math.isfinite(loss.item()) and all(torch.isfinite(c.grad).all() for c in out.confidence)


def test_bernulli_with_only_the_final_exit():
    out = ExitOutputs([LOGITS[-1].clone()], [torch.ones(2)])
    terms = BernulliLoss([40.0], mmax=20.0, w_beta=1.0).terms(out, Y)
    assert terms["prior"].item() == 0 and terms["energy"].item() == pytest.approx(1.0)
    assert terms["classification"].item() == pytest.approx(math.log(2) + (softplus(3.0) + softplus(1.0)) / 2)


def test_bernulli_input_errors():
    with pytest.raises(ValueError, match="confidence heads"):
        BernulliLoss(COSTS, mmax=20.0)(ExitOutputs(list(LOGITS)), Y)
    with pytest.raises(ValueError, match="2 exit costs for a network with 3 exits"):
        BernulliLoss(COSTS[:2], mmax=20.0)(outputs(), Y)


@pytest.mark.parametrize("method", list_methods())
def test_every_method_builds_from_the_config_and_trains(method):
    loss = create_ee_loss(EETrainConfig(method=method, w_beta=1.0), COSTS, mmax=20.0)
    logits = [z.clone().requires_grad_() for z in LOGITS]
    confidence = [torch.tensor(c, requires_grad=True) for c in CONF] if needs_confidence(method) else None
    value = loss(ExitOutputs(logits, confidence), Y)
    value.backward()
    assert value.dim() == 0 and math.isfinite(value.item())
    assert all(z.grad is not None and z.grad.any() for z in logits)
    assert EE_LOSSES.entry(method).help


def test_registry_names_upstreams_methods():
    assert list_methods() == ["bernulli", "joint"]
    assert needs_confidence("bernulli") and not needs_confidence("joint")
    bernulli = create_ee_loss(EETrainConfig(w_alpha=0.5, w_beta=0.25, w_gamma=2.0, support_set=True), COSTS, mmax=7.0)
    assert bernulli == BernulliLoss(COSTS, 7.0, 0.5, 0.25, 2.0)


def test_config_defaults_are_upstreams():
    cfg = EETrainConfig().validate()
    assert (cfg.method, cfg.support_set, cfg.w_alpha, cfg.w_beta, cfg.w_gamma) == ("bernulli", False, 1.0, 0.0, 0.0)
    assert (cfg.warmup_ee_epochs, cfg.ee_epochs, cfg.tune_epsilon, cfg.train_backbone) == (2, 3, False, False)
    assert cfg.epochs == 5 and cfg.support_start == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "nope"}, "unknown early-exit training method 'nope'; choose one of: bernulli, joint"),
        ({"w_alpha": -1.0}, "--w_alpha must be >= 0"),
        ({"w_beta": -0.1}, "--w_beta must be >= 0"),
        ({"w_gamma": -2.0, "support_set": True}, "--w_gamma must be >= 0"),
        ({"warmup_ee_epochs": -1}, "--warmup_ee_epochs must be >= 0"),
        ({"ee_epochs": -3}, "--ee_epochs must be >= 0"),
        ({"method": "joint", "support_set": True}, "--support_set needs --method bernulli"),
        ({"w_gamma": 1.0}, "--w_gamma weighs the support-set term: it needs --support_set"),
    ],
)
def test_config_rejects_bad_values_in_one_line(change, message):
    with pytest.raises(UsageError, match=f"^{message}$"):
        EETrainConfig(**change).validate()

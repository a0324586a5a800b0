"""Exit policies on hand-made outputs: exits, top-1, avg MACs, threshold tuning and repair."""

import pytest
import torch

from early_exit.costs import ExitCosts
from early_exit.model import ExitOutputs
from early_exit.policy import (
    POLICIES,
    ExitPolicy,
    create_policy,
    evaluate_policy,
    list_policies,
    register_policy,
    repair_epsilon,
    tune_epsilon,
)
from utils.errors import UsageError

# Softmax probabilities of 4 samples at 3 exits (the final last); margins (top-1 minus top-2):
# exit 0: .85 .25 .05 .35 (all predict class 0); exit 1: .75 .65 .15 .45 (predict 0 1 1 1); final predicts 0 1 2 2.
PROBS = [
    [[0.9, 0.05, 0.05], [0.55, 0.3, 0.15], [0.45, 0.4, 0.15], [0.6, 0.25, 0.15]],
    [[0.85, 0.1, 0.05], [0.05, 0.8, 0.15], [0.3, 0.45, 0.25], [0.2, 0.65, 0.15]],
    [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]],
]
LABELS = torch.tensor([0, 1, 2, 1])  # right: exit 0 on s0; exit 1 on s0, s1, s3; final on s0, s1, s2
MARGIN = ExitOutputs([torch.tensor(p).log() for p in PROBS])
# Backbone to each exit, each head: leaving at exit 0 costs 1.5, at exit 1 2.75, at the final exit 4.75.
COSTS = ExitCosts(
    backbone_macs=[1.0, 2.0, 4.0], head_macs=[0.5, 0.25, 0.0], head_params=[0.1, 0.1, 0.0], backbone_params=[1, 2, 3]
)
SPENT = [1.5, 2.75, 4.75]

# Confidences in binary fractions, so the cumulative scores are exact.
CONFIDENCE = [torch.tensor([0.75, 0.25, 0.5, 0.125]), torch.tensor([0.5, 0.5, 0.25, 0.25]), torch.ones(4)]
CUMULATIVE = ExitOutputs(MARGIN.logits, CONFIDENCE)


def avg(ratio):
    return sum(f * m for f, m in zip(ratio, SPENT, strict=True))


def test_margin_scores_and_exits():
    policy = create_policy("margin")
    expected = torch.tensor([[0.85, 0.25, 0.05, 0.35], [0.75, 0.65, 0.15, 0.45], [0.85, 0.5, 0.7, 0.7]])
    torch.testing.assert_close(policy.scores(MARGIN), expected)
    assert policy.exit_index(MARGIN, [0.5, 0.6]).tolist() == [0, 1, 2, 2]
    assert policy.exit_index(MARGIN, 0.3).tolist() == [0, 1, 2, 0]
    assert policy.exit_index(MARGIN, [0.9, 0.0]).tolist() == [1, 1, 1, 1]


def test_cumulative_scores_and_exits():
    policy = create_policy("cumulative")
    # D_1 = b_0 + b_1 (1 - b_0); the final exit's confidence 1 makes D_2 = 1
    expected = torch.tensor([[0.75, 0.25, 0.5, 0.125], [0.875, 0.625, 0.625, 0.34375], [1.0, 1.0, 1.0, 1.0]])
    assert torch.equal(policy.scores(CUMULATIVE), expected)
    assert policy.exit_index(CUMULATIVE, [0.5, 0.625]).tolist() == [0, 1, 0, 2]  # a score equal to epsilon exits
    assert policy.exit_index(CUMULATIVE, [0.8, 0.9]).tolist() == [2, 2, 2, 2]
    with pytest.raises(ValueError, match="confidence=True"):
        policy.scores(MARGIN)


def test_evaluate_policy_exactly():
    result = evaluate_policy(MARGIN, LABELS, [0.5, 0.6], "margin", COSTS)
    assert result.exits_ratio == [0.25, 0.25, 0.5]
    assert result.top1 == 75.0  # s0 at exit 0, s1 at exit 1, s2 at the final exit right; s3 at the final wrong
    assert result.avg_macs == pytest.approx(0.25 * 1.5 + 0.25 * 2.75 + 0.5 * 4.75)
    assert result.per_exit_top1 == [25.0, 75.0, 75.0]
    assert result.epsilon == [0.5, 0.6]
    every_sample_at_exit_1 = evaluate_policy(MARGIN, LABELS, [0.9, 0.0], create_policy("margin"), COSTS)
    assert every_sample_at_exit_1.exits_ratio == [0.0, 1.0, 0.0]
    assert every_sample_at_exit_1.avg_macs == 2.75 and every_sample_at_exit_1.top1 == 75.0


def test_cumulative_evaluation():
    result = evaluate_policy(CUMULATIVE, LABELS, [0.5, 0.625], "cumulative", COSTS)
    # s0 and s2 at exit 0 (right, wrong), s1 at exit 1 (right), s3 at the final exit (wrong)
    assert result.exits_ratio == [0.5, 0.25, 0.25] and result.top1 == 50.0
    assert result.avg_macs == pytest.approx(avg([0.5, 0.25, 0.25]))


def test_tune_epsilon_uniform_grid():
    # 0.1: exits 0 0 1 0, top-1 25; 0.5: exits 0 1 2 2, top-1 75, 3.4375; 0.9: all final, top-1 75, 4.75
    result = tune_epsilon(MARGIN, LABELS, "margin", COSTS, grid=(0.1, 0.5, 0.9), first_min=0.0)
    assert result.epsilon == [0.5, 0.5] and result.top1 == 75.0
    assert result.avg_macs == pytest.approx(avg([0.25, 0.25, 0.5]))


def test_tune_epsilon_floors_the_first_exit_and_breaks_ties_by_macs():
    # (0.7, 0.1): exits 0 1 1 1, top-1 75 at 2.4375 MACs, the cheapest of the three 75 % choices
    result = tune_epsilon(MARGIN, LABELS, "margin", COSTS, grid=(0.1, 0.5, 0.9))
    assert result.epsilon == [0.7, 0.1] and result.top1 == 75.0
    assert result.avg_macs == pytest.approx(avg([0.25, 0.75, 0.0]))


def test_tune_epsilon_full_ties_go_to_the_earliest_grid_value():
    result = tune_epsilon(MARGIN, LABELS, "margin", COSTS, grid=(0.95, 0.9), first_min=0.0)
    assert result.epsilon == [0.95, 0.95] and result.exits_ratio == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError):
        tune_epsilon(MARGIN, LABELS, "margin", COSTS, grid=())


def test_repair_lowers_the_last_early_exit_first():
    # exit 1 at 0.7 takes s0, at 0.6 s1, at 0.4 s3 (right): 100 % at 3.25 <= 3.5
    result = repair_epsilon(MARGIN, LABELS, "margin", COSTS, [0.9, 0.9], mmax=3.5, top1min=70.0)
    assert result.epsilon == pytest.approx([0.9, 0.4])
    assert result.top1 == 100.0 and result.avg_macs == pytest.approx(3.25)
    # further, at 0.1 s2 leaves at exit 1 (wrong): 75 % at 2.75
    result = repair_epsilon(MARGIN, LABELS, "margin", COSTS, [0.9, 0.9], mmax=3.0, top1min=70.0)
    assert result.epsilon == pytest.approx([0.9, 0.1])
    assert result.top1 == 75.0 and result.avg_macs == pytest.approx(2.75)


def test_repair_moves_to_the_previous_exit_at_zero_and_stops_before_top1min():
    # exit 1 reaches 0 (2.75 > 2); exit 0 at 0.8 takes s0 (2.4375), at 0.3 would take s3 wrongly (50 % < 70 %)
    result = repair_epsilon(MARGIN, LABELS, "margin", COSTS, [0.9, 0.9], mmax=2.0, top1min=70.0)
    assert result.epsilon == pytest.approx([0.4, 0.0])
    assert result.top1 == 75.0 and result.avg_macs == pytest.approx(2.4375)


def test_repair_changes_nothing_when_feasible_or_below_top1min():
    for mmax, top1min in [(5.0, 70.0), (2.0, 80.0)]:
        result = repair_epsilon(MARGIN, LABELS, "margin", COSTS, 0.9, mmax=mmax, top1min=top1min)
        assert result.epsilon == [0.9, 0.9] and result.avg_macs == 4.75
    with pytest.raises(ValueError):
        repair_epsilon(MARGIN, LABELS, "margin", COSTS, 0.9, mmax=2.0, top1min=0.0, step=0.0)


@pytest.mark.parametrize("epsilon", [[0.5], [0.5, 0.5, 0.5], [float("nan"), 0.5]])
def test_thresholds_need_one_finite_value_per_early_exit(epsilon):
    with pytest.raises(ValueError):
        create_policy("margin").exit_index(MARGIN, epsilon)


def test_inputs_are_checked():
    with pytest.raises(ValueError):
        evaluate_policy(MARGIN, LABELS[:3], 0.5, "margin", COSTS)
    two_exits = ExitCosts(backbone_macs=[1.0, 2.0], head_macs=[0.5, 0.0], head_params=[0, 0], backbone_params=[1, 2])
    with pytest.raises(ValueError):
        evaluate_policy(MARGIN, LABELS, 0.5, "margin", two_exits)


def test_a_single_exit_network():
    outputs = ExitOutputs([MARGIN.logits[-1]], [torch.ones(4)])
    costs = ExitCosts(backbone_macs=[4.0], head_macs=[0.0], head_params=[0.0], backbone_params=[3.0])
    for name in list_policies():
        result = tune_epsilon(outputs, LABELS, name, costs)
        assert result.epsilon == [] and result.exits_ratio == [1.0] and result.top1 == 75.0


# Contract of every registered policy.


@pytest.mark.parametrize("name", list_policies())
def test_policy_contract(name):
    policy = create_policy(name)
    assert isinstance(policy, ExitPolicy) and policy.name == name and POLICIES.entry(name).help
    outputs = CUMULATIVE if policy.needs_confidence else MARGIN
    scores = policy.scores(outputs)
    assert scores.shape == (3, 4) and bool(((scores >= 0) & (scores <= 1)).all())
    assert policy.exit_index(outputs, 0.0).tolist() == [0, 0, 0, 0]
    assert policy.exit_index(outputs, 1.5).tolist() == [2, 2, 2, 2]
    index = policy.exit_index(outputs, [0.5, 0.5])
    assert index.dtype == torch.long and index.shape == (4,)
    # causal: exit i's score depends on exits 0..i only
    first_two = ExitOutputs(outputs.logits[:2], None if outputs.confidence is None else outputs.confidence[:2])
    assert torch.equal(policy.scores(first_two), scores[:2])


def test_unknown_policy_and_registration():
    with pytest.raises(UsageError, match="margin"):
        create_policy("nope")

    class Everyone(ExitPolicy):
        """Every sample leaves at the first exit."""

        name = "everyone"

        def scores(self, outputs):
            return torch.ones(outputs.n_exits, outputs.n_samples)

    with POLICIES.register_temporarily("everyone", Everyone):
        result = evaluate_policy(MARGIN, LABELS, 0.5, "everyone", COSTS)
        assert result.exits_ratio == [1.0, 0.0, 0.0] and result.avg_macs == 1.5
    with pytest.raises(ValueError):
        register_policy("other")(Everyone)

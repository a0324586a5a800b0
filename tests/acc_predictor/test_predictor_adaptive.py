"""`as`: picks the member whose held-out predictions rank best, and reports that member's cross-validation."""

from __future__ import annotations

import numpy as np
import pytest

from acc_predictor import create_predictor, cross_validate
from acc_predictor.adaptive import AdaptiveSwitching
from utils.errors import UsageError


def linear_target(x, space):
    """Purely linear in the genes: exactly what rbf's linear tail represents."""
    return 70 + ((x - space.xl) / (space.xu - space.xl)) @ np.linspace(-1.0, 1.5, space.n_var)


def step_target(x, space):
    """Two axis-aligned steps (top resolution, shallowest first stage), no noise: what trees represent.

    Trees represent it exactly and the rbf's smooth interpolation does not.
    """
    return 70 + 10.0 * (x[:, -1] == space.xu[-1]) + 5.0 * (x[:, 0] == 0)


@pytest.mark.parametrize(("target", "winner"), [(linear_target, "rbf"), (step_target, "carts")])
@pytest.mark.parametrize("seed", [0, 1])
def test_switches_to_the_member_the_problem_favours(space, sample_genomes, target, winner, seed):
    x = sample_genomes(100, seed=20 + seed)
    y = target(x, space)
    model = create_predictor("as", xl=space.xl, xu=space.xu, seed=seed, pool=("rbf", "carts")).fit(x, y)
    assert model.winner == winner, {name: round(s.tau, 3) for name, s in model.scores.items()}
    loser = ({"rbf", "carts"} - {winner}).pop()
    assert model.scores[winner].tau > model.scores[loser].tau + 0.1


def test_full_pool_picks_an_interpolator_on_a_linear_target(space, sample_genomes):
    x = sample_genomes(100, seed=30)
    model = create_predictor("as", xl=space.xl, xu=space.xu, seed=0).fit(x, linear_target(x, space))
    assert set(model.scores) == {"rbf", "gp", "carts", "mlp"}
    assert model.winner in {"rbf", "gp"}
    assert model.report.tau > 0.95


def test_report_is_the_winners_cross_validation_and_predictions_are_the_winners(space, smooth):
    model = create_predictor("as", xl=space.xl, xu=space.xu, seed=3, pool=("carts", "rbf")).fit(
        smooth.x_train, smooth.y_train
    )
    winner = model.winner
    assert model.report == model.scores[winner]
    assert model.report.tau == max(report.tau for report in model.scores.values())

    def make():
        return create_predictor(winner, xl=space.xl, xu=space.xu, seed=3, cv_folds=0)

    expected, _ = cross_validate(make, smooth.x_train, smooth.y_train, folds=5, seed=3)
    assert model.report == expected
    alone = create_predictor(winner, xl=space.xl, xu=space.xu, seed=3).fit(smooth.x_train, smooth.y_train)
    assert alone.report == model.report
    np.testing.assert_array_equal(model.predict(smooth.x_test), alone.predict(smooth.x_test))


def test_ranks_members_by_their_pooled_held_out_tau_not_per_fold_scores(space, smooth):
    """Each member's score is the tau over all its held-out predictions, as its own `fit` reports it."""
    model = create_predictor("as", xl=space.xl, xu=space.xu, seed=1, pool=("rbf", "carts", "gp")).fit(
        smooth.x_train, smooth.y_train
    )
    for member, report in model.scores.items():
        alone = create_predictor(member, xl=space.xl, xu=space.xu, seed=1).fit(smooth.x_train, smooth.y_train)
        assert report == alone.report


def test_pool_validation(space):
    with pytest.raises(UsageError, match="choose one of"):
        AdaptiveSwitching(space.xl, space.xu, pool=("rbf", "lightgbm"))
    with pytest.raises(ValueError, match="itself"):
        AdaptiveSwitching(space.xl, space.xu, pool=("rbf", "as"))
    with pytest.raises(ValueError, match="non-empty"):
        AdaptiveSwitching(space.xl, space.xu, pool=())
    with pytest.raises(ValueError, match="cv_folds"):
        AdaptiveSwitching(space.xl, space.xu, cv_folds=0)

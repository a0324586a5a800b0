"""`as`: picks the member that ranks best out of sample, and reports that member's cross-validation."""

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

    Over six seeds the forest's mean - std fold tau beat rbf's by 0.19 to 0.43 (rbf 0.45-0.58, carts 0.75-0.85).
    """
    return 70 + 10.0 * (x[:, -1] == space.xu[-1]) + 5.0 * (x[:, 0] == 0)


@pytest.mark.parametrize(("target", "winner"), [(linear_target, "rbf"), (step_target, "carts")])
@pytest.mark.parametrize("seed", [0, 1])
def test_switches_to_the_member_the_problem_favours(space, sample_genomes, target, winner, seed):
    x = sample_genomes(100, seed=20 + seed)
    y = target(x, space)
    model = create_predictor("as", xl=space.xl, xu=space.xu, seed=seed, pool=("rbf", "carts")).fit(x, y)
    assert model.winner == winner, {name: round(s.score, 3) for name, s in model.scores.items()}
    loser = ({"rbf", "carts"} - {winner}).pop()
    assert model.scores[winner].score > model.scores[loser].score + 0.1


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
    assert model.report == model.scores[winner].report
    taus = model.scores[winner].fold_taus
    assert model.scores[winner].score == pytest.approx(np.mean(taus) - np.std(taus))

    def make():
        return create_predictor(winner, xl=space.xl, xu=space.xu, seed=3, cv_folds=0)

    expected, expected_taus = cross_validate(make, smooth.x_train, smooth.y_train, folds=5, seed=3)
    assert model.report == expected and list(taus) == expected_taus
    alone = create_predictor(winner, xl=space.xl, xu=space.xu, seed=3).fit(smooth.x_train, smooth.y_train)
    assert alone.report == model.report
    np.testing.assert_array_equal(model.predict(smooth.x_test), alone.predict(smooth.x_test))


def test_pool_validation(space):
    with pytest.raises(UsageError, match="choose one of"):
        AdaptiveSwitching(space.xl, space.xu, pool=("rbf", "lightgbm"))
    with pytest.raises(ValueError, match="itself"):
        AdaptiveSwitching(space.xl, space.xu, pool=("rbf", "as"))
    with pytest.raises(ValueError, match="non-empty"):
        AdaptiveSwitching(space.xl, space.xu, pool=())
    with pytest.raises(ValueError, match="cv_folds"):
        AdaptiveSwitching(space.xl, space.xu, cv_folds=0)

import logging
import warnings

import numpy as np
import pytest

from postsearch.export import name_choices
from postsearch.selection import (
    BestOn,
    Preference,
    TradeOff,
    build_front,
    choose,
    create_chooser,
    with_exits,
)
from search.archive import Entry
from search.objectives import build_constraints, create_objective
from search_space.ofa_mbv3_ee import CBNMobileNetV3Space
from utils.errors import UsageError

TOP1, MACS, PARAMS = (create_objective(n) for n in ("top1", "macs", "params"))
TWO = [TOP1, MACS]


def entries(points, archs=None):
    """Entries with stats from (top1, macs[, params]) triples; the arch just numbers them."""
    out = []
    for i, p in enumerate(points):
        stats = {"top1": p[0], "macs": p[1], "params": p[2] if len(p) > 2 else 1.0, "activations": 0.1}
        out.append(Entry(archs[i] if archs else {"id": i}, stats, iteration=0))
    return out


def front_of(points, objectives=TWO, **constraints):
    return build_front(entries(points), objectives, build_constraints(**constraints))


def ids(front, picks):
    return [front.entries[i].arch["id"] for i in picks]


# error (%) and MACs of a front with a sharp knee at index 3; normalised it is the same shape
KNEE = [(0, 1), (0.02, 0.6), (0.05, 0.3), (0.1, 0.1), (0.3, 0.05), (0.6, 0.02), (1, 0)]
KNEE_POINTS = [(95 - 20 * e, 10 + 100 * m) for e, m in KNEE]


def test_front_is_the_feasible_non_dominated_set_in_evaluation_order():
    points = [(90, 50), (80, 10), (85, 60), (95, 100), (70, 5)]  # (85, 60) is dominated by (90, 50)
    front = front_of(points)
    assert ids(front, range(len(front))) == [0, 1, 3, 4]
    assert ids(front_of(points, mmax=60), range(3)) == [0, 1, 4]  # (95, 100) breaks the MACs bound


def test_trade_off_picks_the_knee_then_spreads():
    front = front_of(KNEE_POINTS)
    assert ids(front, TradeOff().choose(front, 1)) == [3]
    # then farthest from the knee: both extremes are as far; the more accurate first
    assert ids(front, TradeOff().choose(front, 3)) == [3, 0, 6]
    assert sorted(ids(front, TradeOff().choose(front, 7))) == list(range(7))


def test_trade_off_does_not_change_warning_filters():
    before = list(warnings.filters)
    TradeOff().choose(front_of(KNEE_POINTS), 1)
    assert warnings.filters == before


def test_trade_off_on_a_knee_free_front_takes_the_most_balanced_point():
    line = [(100 - e, m) for e, m in [(0, 10), (5, 5), (10, 0)]]  # a straight line: no trade-off outlier
    front = front_of(line)
    assert ids(front, TradeOff().choose(front, 1)) == [1]
    assert ids(front, TradeOff().choose(front, 3)) == [1, 0, 2]


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([(90, 5)], [0]),  # one member
        ([(90, 5), (80, 1)], [0]),  # two members are equally balanced once normalised: the more accurate
    ],
)
def test_trade_off_on_fronts_too_small_for_a_knee(points, expected):
    front = front_of(points)
    assert ids(front, TradeOff().choose(front, 1)) == expected
    assert sorted(ids(front, TradeOff().choose(front, len(points)))) == list(range(len(points)))


def test_single_objective_trade_off_is_the_most_accurate_and_says_so(caplog):
    front = front_of([(90, 5), (97, 50), (93, 1), (97, 20)], objectives=[TOP1])
    assert len(front) == 4  # every feasible network, most accurate first (ties: earlier evaluation)
    with caplog.at_level(logging.INFO, logger="postsearch.selection"):
        assert ids(front, TradeOff().choose(front, 3)) == [1, 3, 2]
    assert "single-objective search has no trade-off" in caplog.text


def test_best_on_an_objective_breaks_ties_by_accuracy():
    points = [(90, 5, 3.0), (80, 1, 2.0), (95, 20, 1.0), (85, 3, 1.0), (99, 50, 9.0)]
    front = front_of(points)
    assert len(front) == 5
    assert ids(front, BestOn(MACS).choose(front, 2)) == [1, 3]
    assert ids(front, BestOn(PARAMS).choose(front, 3)) == [2, 3, 1]  # params 1.0 twice: 95 % before 85 %
    assert ids(front, BestOn(TOP1).choose(front, 1)) == [4]


def asf_front():
    errors, macs = [0, 2, 4, 6, 10], [10, 6, 4, 2, 0]
    return front_of([(100 - e, m) for e, m in zip(errors, macs, strict=True)])


@pytest.mark.parametrize(
    ("prefer", "expected"),
    [
        ("top1#95.8+macs#4.2", [2]),
        ("top1#98+macs#6", [1]),  # top1 is accuracy: 98 % is an error of 2, exactly member 1
        ("macs#6+top1#98", [1]),  # order does not matter
        ("top1#99.5+macs#9.8", [0]),
        ("top1#99+macs#9", [1]),  # the diagonal from (0.1, 0.9) meets the front between members 0 and 1
        ("top1#89+macs#-1", [4]),
        ("top1#95.8+macs#4.2 ", [2]),
    ],
)
def test_preference_picks_the_member_nearest_the_target(prefer, expected):
    front = asf_front()
    assert ids(front, create_chooser(prefer.strip(), create_objective).choose(front, len(expected))) == expected


def test_preference_ranks_by_asf_with_ties_to_the_more_accurate():
    front = asf_front()
    chooser = create_chooser("top1#95.8+macs#4.2", create_objective)
    assert ids(front, chooser.choose(front, 5)) == [2, 1, 3, 0, 4]


def test_preference_may_add_objectives_but_must_cover_the_search_ones():
    front = front_of([(90, 5, 3.0), (80, 1, 2.0), (95, 20, 1.0)])
    chooser = create_chooser("top1#95+macs#20+params#1", create_objective)
    assert ids(front, chooser.choose(front, 1)) == [2]
    with pytest.raises(UsageError, match="gives no target for macs"):
        create_chooser("top1#95+params#1", create_objective).choose(front, 1)


def test_preference_label_is_a_safe_folder_name():
    chooser = create_chooser("top1#80+macs#150.5", create_objective)
    assert isinstance(chooser, Preference) and chooser.label == "top1-80-macs-150.5"
    assert create_chooser("trade-off", create_objective).label == "trade-off"
    assert create_chooser("params", create_objective).label == "params"


@pytest.mark.parametrize(
    ("prefer", "message"),
    [
        ("flops", "unknown objective 'flops'"),
        ("tradeoff", "or trade-off"),
        ("flops#10+top1#80", "unknown objective 'flops'"),
        ("top1#80+", "'' is not one"),
        ("top1#80#3", "is not one"),
        ("top1=80", "unknown objective 'top1=80'"),
        ("top1#abc", "target 'abc' of top1 is not a number"),
        ("top1#nan+macs#3", "must be finite"),
        ("top1#80+top1#90", "top1 is given twice"),
        ("#80", "is not one"),
    ],
)
def test_bad_preferences_are_usage_errors(prefer, message):
    with pytest.raises(UsageError, match=message):
        create_chooser(prefer, create_objective)


def test_n_must_fit_the_front():
    front = front_of(KNEE_POINTS)
    with pytest.raises(UsageError, match=r"-n 8 is larger than the front to choose from \(7 networks\)"):
        choose(front, TradeOff(), 8)
    with pytest.raises(UsageError, match="-n must be >= 1"):
        choose(front, TradeOff(), 0)


def test_an_objective_not_recorded_is_a_usage_error():
    front = front_of(KNEE_POINTS)
    with pytest.raises(UsageError, match="needs 'peak_act'"):
        choose(front, create_chooser("peak_act", create_objective), 1)


def test_no_feasible_network_is_a_usage_error():
    with pytest.raises(UsageError, match="none of the 2 networks"):
        front_of([(90, 5), (80, 1)], mmax=0.5)


def test_the_most_accurate_is_always_offered_once():
    front = front_of(KNEE_POINTS)
    best = front.ranked()[0]
    assert ids(front, [best]) == [0]
    picks = TradeOff().choose(front, 1)
    assert [(c.name, c.index) for c in name_choices("trade-off", picks, best)] == [
        ("net-trade-off_0", 3),
        ("net-top1_0", 0),
    ]
    picks = TradeOff().choose(front, 2)
    assert [c.name for c in name_choices("trade-off", picks, best)] == ["net-trade-off_0", "net-trade-off_1"]
    assert [c.name for c in name_choices("top1", BestOn(TOP1).choose(front, 2), best)] == ["net-top1_0", "net-top1_1"]


def test_exit_filter_counts_early_exits():
    space = CBNMobileNetV3Space(lr=16, ur=16)
    base = space.ofa.smallest()
    flags = [[1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 1, 0], [1, 0, 0, 1]]
    archs = [{**base, "b": b} for b in flags]
    kept = with_exits(entries([(90, 5)] * 4, archs), 2, space)
    assert [e.arch["b"] for e in kept] == [flags[0], flags[3]]
    with pytest.raises(UsageError, match=r"no network has 2 early exits \(they have \[1, 3\]\)"):
        with_exits(entries([(90, 5)] * 2, archs[1:3]), 2, space)
    with pytest.raises(UsageError, match="this search has no early-exit networks"):
        with_exits(entries([(90, 5)]), 1, space.ofa)


def test_choices_are_deterministic_with_equal_points():
    front = front_of([(90, 5), (90, 5), (80, 1), (95, 9)])
    assert len(front) == 4
    assert ids(front, TradeOff().choose(front, 4)) == ids(front, TradeOff().choose(front, 4))
    assert ids(front, BestOn(MACS).choose(front, 2)) == [2, 0]
    assert np.array_equal(front.values(), front.values())

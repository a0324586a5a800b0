from __future__ import annotations

import numpy as np
import pytest

from search.pareto import dominated_by, hypervolume, non_dominated, reference_point, select_hypervolume, select_spread

STAIRCASE = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])


# --- non_dominated ---------------------------------------------------------------------------------------------


def test_non_dominated_small_example_with_duplicates():
    f = np.array(
        [
            [1.0, 3.0],  # 0 front
            [2.0, 2.0],  # 1 front
            [3.0, 3.0],  # 2 dominated by 1
            [2.0, 2.0],  # 3 duplicate of 1: also front
            [3.0, 1.0],  # 4 front
            [2.0, 4.0],  # 5 dominated by 0 and 1
            [1.0, 3.5],  # 6 dominated by 0 (equal first objective)
        ]
    )
    np.testing.assert_array_equal(non_dominated(f), [0, 1, 3, 4])


def test_non_dominated_with_an_infeasible_mask():
    f = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 3.0], [3.0, 1.0], [2.5, 2.5]])
    mask = np.array([True, False, True, True, True])
    # row 1 would dominate row 4; being infeasible, it neither joins the front nor hides row 4
    np.testing.assert_array_equal(non_dominated(f, feasible=mask), [0, 3, 4])
    np.testing.assert_array_equal(non_dominated(f, feasible=np.zeros(5, dtype=bool)), [])
    with pytest.raises(ValueError, match="boolean mask"):
        non_dominated(f, feasible=np.array([1, 0, 1, 1, 1]))


def test_non_dominated_edge_cases():
    assert non_dominated(np.zeros((0, 2))).shape == (0,)
    np.testing.assert_array_equal(non_dominated(np.array([[3.0], [1.0], [2.0], [1.0]])), [1, 3])
    with pytest.raises(ValueError, match="2-D"):
        non_dominated(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="NaN"):
        non_dominated(np.array([[1.0, np.nan]]))


# --- reference_point -------------------------------------------------------------------------------------------


def test_reference_point_arithmetic():
    f = np.array([[10.0, 100.0], [30.0, 50.0], [20.0, 300.0]])
    # max + 0.1 · (max − min): 30 + 2, 300 + 25
    np.testing.assert_allclose(reference_point(f), [32.0, 325.0])
    np.testing.assert_allclose(reference_point(f, margin=0.5), [40.0, 425.0])
    np.testing.assert_allclose(reference_point(f, margin=0.0), [30.0, 300.0])


def test_reference_point_of_a_constant_objective_is_strictly_worse():
    f = np.array([[5.0, 1.0], [5.0, 2.0]])
    ref = reference_point(f)
    assert ref[0] > 5.0 and ref[0] == pytest.approx(5.0, abs=1e-4)
    assert ref[1] == pytest.approx(2.1)
    ref = reference_point(np.array([[0.0, 1e8]]))
    assert np.all(ref > [0.0, 1e8])
    assert hypervolume(f, reference_point(f)) > 0.0
    with pytest.raises(ValueError):
        reference_point(np.zeros((0, 2)))
    with pytest.raises(ValueError):
        reference_point(f, margin=-0.1)


# --- hypervolume -----------------------------------------------------------------------------------------------


def test_hypervolume_of_a_staircase():
    # union of [1,4]×[3,4], [2,4]×[2,4], [3,4]×[1,4]: 3 + 4 − 2 + 3 − 2 = 6
    assert hypervolume(STAIRCASE, np.array([4.0, 4.0])) == pytest.approx(6.0)
    assert hypervolume(STAIRCASE[[1]], np.array([4.0, 4.0])) == pytest.approx(4.0)


def test_hypervolume_ignores_dominated_duplicate_and_out_of_box_points():
    ref = np.array([4.0, 4.0])
    more = np.vstack([STAIRCASE, [[3.0, 3.0], [2.0, 2.0], [0.5, 5.0], [5.0, 0.5], [4.0, 0.0]]])
    # (0.5, 5) and (5, 0.5) lie beyond the reference point, (4, 0) on its boundary: they add nothing
    assert hypervolume(more, ref) == pytest.approx(6.0)
    assert hypervolume(np.array([[5.0, 1.0]]), ref) == 0.0
    assert hypervolume(np.zeros((0, 2)), ref) == 0.0


def test_hypervolume_normalised_by_a_fixed_box():
    ideal, ref = np.array([0.0, 0.0]), np.array([4.0, 4.0])
    assert hypervolume(STAIRCASE, ref, ideal=ideal) == pytest.approx(6.0 / 16.0)
    # the box, not the data, sets the scale: a non-square box scales each objective by its own side
    assert hypervolume(STAIRCASE, np.array([4.0, 8.0]), ideal=np.array([0.0, 0.0])) == pytest.approx(18.0 / 32.0)
    # a point at the ideal fills the whole box; one beyond it is clipped, so HV stays <= 1
    assert hypervolume(np.array([[0.0, 0.0]]), ref, ideal=ideal) == pytest.approx(1.0)
    assert hypervolume(np.array([[-1.0, 2.0]]), ref, ideal=ideal) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ideal"):
        hypervolume(STAIRCASE, ref, ideal=np.array([0.0, 4.0]))


def test_hypervolume_in_one_and_three_objectives():
    assert hypervolume(np.array([[3.0], [1.0], [2.0]]), np.array([4.0])) == pytest.approx(3.0)
    cubes = np.array([[1.0, 1.0, 1.0], [2.0, 0.0, 2.0]])
    # 3·3·3 + 2·4·2 − overlap 2·3·2 = 27 + 16 − 12
    assert hypervolume(cubes, np.array([4.0, 4.0, 4.0])) == pytest.approx(31.0)
    with pytest.raises(ValueError, match="ref_point"):
        hypervolume(cubes, np.array([4.0, 4.0]))


def test_hypervolume_grows_as_the_front_improves():
    ref = reference_point(STAIRCASE)
    before = hypervolume(STAIRCASE, ref)
    after = hypervolume(np.vstack([STAIRCASE, [[1.5, 1.5]]]), ref)
    assert after > before


# --- select_spread ---------------------------------------------------------------------------------------------


def line_front(k: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, k)
    return np.column_stack([t, 1.0 - t])


def test_select_spread_extremes_then_middle_on_a_line():
    f = line_front(5)[[2, 0, 4, 1, 3]]  # shuffled: original positions 2, 0, 4, 1, 3
    chosen = select_spread(f, 3)
    # extremes first (best of objective 0 = position 0 at row 1, best of objective 1 = position 4 at row 2)
    np.testing.assert_array_equal(chosen, [1, 2, 0])
    np.testing.assert_array_equal(select_spread(f, 2), [1, 2])
    np.testing.assert_array_equal(select_spread(f, 1), [1])


def test_select_spread_uses_both_objectives_not_just_the_second():
    # a front whose points are bunched in objective 1 but spread in objective 0
    f = np.array([[0.0, 1.0], [0.1, 0.99], [0.2, 0.98], [0.8, 0.97], [1.0, 0.0]])
    chosen = select_spread(f, 3)
    np.testing.assert_array_equal(chosen[:2], [0, 4])
    assert chosen[2] == 3  # far from both extremes in the normalised plane


def test_select_spread_prefers_candidates_far_from_the_anchors():
    f = line_front(5)
    anchors = np.array([[0.0, 1.0], [0.25, 0.75]])  # equal to candidates 0 and 1
    chosen = select_spread(f, 5, F_anchor=anchors)
    assert chosen[0] == 4  # the far end
    assert chosen[1] == 2
    assert set(chosen[-2:]) == {0, 1}  # the copies of anchors come last
    np.testing.assert_array_equal(select_spread(f, 2, F_anchor=anchors), [4, 2])


def test_select_spread_falls_back_to_dominated_candidates_by_rank():
    f = np.array(
        [
            [0.0, 1.0],  # 0 rank 0
            [1.0, 0.0],  # 1 rank 0
            [1.0, 1.0],  # 2 rank 1
            [0.5, 0.5],  # 3 rank 0
            [2.0, 2.0],  # 4 rank 2
            [0.6, 0.6],  # 5 rank 1
        ]
    )
    np.testing.assert_array_equal(select_spread(f, 3), [0, 1, 3])
    chosen = select_spread(f, 5)
    np.testing.assert_array_equal(chosen[:3], [0, 1, 3])
    assert set(chosen[3:]) == {2, 5}  # the whole second front before the third
    assert select_spread(f, 6)[-1] == 4


def test_select_spread_with_fewer_candidates_than_asked():
    f = line_front(3)
    chosen = select_spread(f, 10)
    assert sorted(chosen) == [0, 1, 2]
    assert select_spread(f, 0).shape == (0,)
    assert select_spread(np.zeros((0, 2)), 4).shape == (0,)
    with pytest.raises(ValueError):
        select_spread(f, -1)
    with pytest.raises(ValueError, match="objectives"):
        select_spread(f, 2, F_anchor=np.zeros((1, 3)))


def test_select_spread_is_deterministic_and_breaks_ties_by_index():
    f = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.5, 0.5], [0.0, 1.0]])
    first = select_spread(f, 5)
    np.testing.assert_array_equal(first, select_spread(f, 5))
    np.testing.assert_array_equal(first[:3], [0, 1, 2])
    rng = np.random.default_rng(0)
    f = rng.random((200, 2))
    np.testing.assert_array_equal(select_spread(f, 8), select_spread(f.copy(), 8))
    assert len(set(select_spread(f, 8))) == 8


def test_select_spread_empty_anchor_array_means_no_anchors():
    f = line_front(5)
    np.testing.assert_array_equal(select_spread(f, 3, F_anchor=np.zeros((0, 2))), select_spread(f, 3))


# --- dominated_by / anchored choice ----------------------------------------------------------------------------


def test_dominated_by_needs_no_worse_everywhere_and_better_somewhere():
    anchors = np.array([[1.0, 3.0], [3.0, 1.0]])
    f = np.array([[2.0, 3.0], [1.0, 3.0], [0.5, 5.0], [3.0, 2.0], [2.0, 2.0], [4.0, 4.0]])
    np.testing.assert_array_equal(dominated_by(f, anchors), [True, False, False, True, False, True])
    assert not dominated_by(f, np.zeros((0, 2))).any()


def test_select_spread_prefers_candidates_the_anchors_do_not_dominate():
    anchors = np.array([[1.0, 3.0], [3.0, 1.0]])
    # 0 and 1 lie behind the anchors' front but far from it; 2 and 3 improve on it
    f = np.array([[5.0, 5.0], [4.0, 4.5], [2.0, 2.0], [0.5, 3.5]])
    assert sorted(select_spread(f, 2, anchors)) == [2, 3]
    assert sorted(select_spread(f, 4, anchors)[:2]) == [2, 3]  # the dominated ones only fill up


def test_select_hypervolume_takes_the_largest_gain_first_then_fills_by_spread():
    anchors = np.array([[1.0, 4.0], [4.0, 1.0]])
    ref = np.array([5.0, 5.0])
    f = np.array(
        [
            [3.0, 3.5],  # adds 0.25 over the anchors, nothing once [2, 2] is in
            [2.0, 2.0],  # adds 2 x 2 = 4 over the anchors
            [4.5, 4.5],  # adds nothing
            [1.5, 3.0],  # adds 0.5 x 1 = 0.5, also after [2, 2]
        ]
    )
    picked = select_hypervolume(f, 3, anchors, ref)
    assert list(picked[:2]) == [1, 3]
    assert picked[2] in (0, 2)  # neither adds anything: the spread choice decides
    assert len(select_hypervolume(f, 10, anchors, ref)) == 4

import numpy as np
import pytest

from stages.evaluation.metrics import chance_recall, recall_at_k, recall_of_rankings, top1_accuracy


def test_recall_hand_worked():
    # 3 queries x 4 candidates; query 0's match ranks 1st, query 1's 3rd, query 2's last (4th)
    sim = np.array([[0.9, 0.1, 0.2, 0.3],
                    [0.5, 0.1, 0.4, 0.8],
                    [0.7, 0.6, 0.1, 0.2]])
    gt = [{0}, {2}, {2}]
    assert recall_at_k(sim, gt, (1, 2, 3, 4)) == {1: 1 / 3, 2: 1 / 3, 3: 2 / 3, 4: 1.0}


def test_any_of_several_true_matches_counts():
    sim = np.array([[0.1, 0.9, 0.8]])
    assert recall_at_k(sim, [{2, 0}], (1, 2)) == {1: 0.0, 2: 1.0}


def test_ties_are_stable_and_shape_checked():
    assert recall_at_k(np.zeros((1, 3)), [{0}], (1,)) == {1: 1.0}  # stable order: the first of equals wins
    with pytest.raises(ValueError, match="2 queries but 1"):
        recall_at_k(np.zeros((2, 3)), [{0}])


def test_top1_accuracy():
    assert top1_accuracy(["a", "b", "c", "a"], ["a", "b", "a", "b"]) == 0.5
    with pytest.raises(ValueError, match="3 predictions for 2"):
        top1_accuracy([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="empty"):
        top1_accuracy([], [])


def test_chance_recall_hand_worked():
    assert chance_recall(1, 1000) == pytest.approx(0.001)
    assert chance_recall(5, 1000) == pytest.approx(0.005)
    # 5 true captions among 5000: 1 - (4995/5000)(4994/4999) for K=2
    assert chance_recall(2, 5000, 5) == pytest.approx(1 - (4995 / 5000) * (4994 / 4999))
    assert chance_recall(20, 10) == 1.0
    with pytest.raises(ValueError):
        chance_recall(1, 3, 4)


def test_recall_of_rankings_hand_worked():
    # query a's match is 2nd, b's is missing from its list, c has two matches, the first at 3rd
    rankings = [["x", "a1", "y"], ["x", "y"], ["x", "y", "c2", "c1"]]
    assert recall_of_rankings(rankings, [{"a1"}, {"b1"}, {"c1", "c2"}], (1, 2, 3)) == {1: 0.0, 2: 1 / 3, 3: 2 / 3}
    with pytest.raises(ValueError, match="1 rankings but 2"):
        recall_of_rankings([["x"]], [{"x"}, {"y"}])

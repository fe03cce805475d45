"""Retrieval figures and the COCO 1K fold mean, by hand-worked cases."""
import numpy as np
import pytest

from stages import evaluate
from stages.evaluation.retrieval import chance, fold_captions, folds, mean_over, recalls

CAP_IMG = np.array([0, 0, 1, 1, 2, 2, 3, 3])     # 4 images, 2 captions each
# Images 0 and 2 each score one caption of the other more than their own: wrong in a ranking of all
# four images, right inside their folds ({0, 1} and {2, 3}) where the distractor is absent.
SIM = np.zeros((4, 8))
SIM[0, [0, 1]], SIM[0, 4] = 0.5, 0.9
SIM[1, [2, 3]] = 0.8
SIM[2, [4, 5]], SIM[2, 0] = 0.7, 0.95
SIM[3, [6, 7]] = 0.6


def test_recalls_of_all_four_images():
    # i2t R@1: image 0 retrieves caption 4, image 2 caption 0: 2/4. t2i R@1: caption 0 retrieves
    # image 2, caption 4 image 0, the other six their own: 6/8.
    r = recalls(SIM, SIM.T, CAP_IMG, ks=(1,))
    assert r == {"i2t_r1": 0.5, "t2i_r1": 0.75, "rsum": 1.25}
    with pytest.raises(ValueError, match="do not fit"):
        recalls(SIM, SIM.T, CAP_IMG[:6])


def test_folds_are_ranked_on_their_own_and_averaged():
    fold_of = folds(["fold0", "fold0", "fold1", "fold1"])
    assert {f: v.tolist() for f, v in fold_of.items()} == {"fold0": [0, 1], "fold1": [2, 3]}
    per = []
    for images in fold_of.values():
        caps, local = fold_captions(CAP_IMG, images)
        sub = SIM[np.ix_(images, caps)]
        per.append(recalls(sub, sub.T, local, ks=(1,)))
    assert fold_captions(CAP_IMG, fold_of["fold1"])[0].tolist() == [4, 5, 6, 7]
    assert fold_captions(CAP_IMG, fold_of["fold1"])[1].tolist() == [0, 0, 1, 1]
    assert per == [{"i2t_r1": 1.0, "t2i_r1": 1.0, "rsum": 2.0}] * 2
    assert mean_over([{"a": 1.0, "b": 0.0}, {"a": 0.5, "b": 0.25}]) == {"a": 0.75, "b": 0.125}


def test_fold_marks_all_or_none():
    assert folds(["train", None, "restval"]) == {}
    with pytest.raises(ValueError, match="1 of 3 test images have no fold"):
        folds(["fold0", "fold1", None])
    assert list(folds(["fold10", "fold2", "fold0"])) == ["fold0", "fold2", "fold10"]   # numeric order


def test_chance_hand_worked():
    c = chance(4, 8, ks=(1,))
    assert c["i2t_r1"] == pytest.approx(2 / 8) and c["t2i_r1"] == pytest.approx(1 / 4)
    assert c["rsum"] == pytest.approx(2 / 8 + 1 / 4)


def test_evaluate_fold_mean_reranks_inside_each_fold():
    asked = []

    def itm(pairs):   # an ITM that knows the truth; records which (image, caption) pairs it scores
        asked.extend(pairs)
        return np.array([float(CAP_IMG[c] == i) for i, c in pairs])

    fold_of = folds(["fold0", "fold0", "fold1", "fold1"])
    out = evaluate._fold_mean(SIM, CAP_IMG, fold_of, 2, itm)
    assert out["folds"] == ["fold0", "fold1"] and out["images"] == [2, 2]
    assert out["itc"]["i2t_r1"] == out["itc"]["t2i_r1"] == 1.0
    assert out["itm_rerank"]["rsum"] == 6.0
    assert out["chance"]["t2i_r1"] == pytest.approx(1 / 2)
    fold_images = {0: {0, 1}, 1: {0, 1}, 2: {2, 3}, 3: {2, 3}}
    assert asked and all(CAP_IMG[c] in fold_images[i] for i, c in asked)    # global ids, never across folds
    whole, _, _ = evaluate._ranked_figures(SIM, np.arange(4), np.arange(8), CAP_IMG, 2, itm)
    assert whole["itc"]["i2t_r1"] == 0.5 and whole["itm_rerank"]["i2t_r1"] == 1.0   # ITM fixes the top 2


def test_rerank_keeps_every_candidate_above_the_rest_for_any_real_score():
    sim = np.array([[0.9, 0.8, 0.1, 0.0]])
    out = evaluate.rerank(sim, 2, lambda top: np.array([[-50.0, -40.0]]))    # log-odds can be very negative
    assert np.argsort(-out[0], kind="stable").tolist() == [1, 0, 2, 3]    # candidates reordered, rest in ITC order


def test_fused_score_adds_the_itc_logit_and_itm_alone_does_not():
    # image 0: ITM prefers caption 1 (log-odds 1 vs 0), ITC prefers caption 0 by 0.2; at temperature 0.05 the
    # ITC logit difference (4) outweighs ITM's (1), at weight 0 (ITM alone) ITM decides.
    sim = np.array([[0.9, 0.7], [0.0, 0.0]])

    def itm(pairs):
        return np.array([1.0 if (i, c) == (0, 1) else 0.0 for i, c in pairs])
    fused, alone = evaluate._pair_scores(itm, sim, 1 / 0.05), evaluate._pair_scores(itm, sim, 0.0)
    assert fused([(0, 0), (0, 1)]) == pytest.approx([18.0, 15.0])
    assert alone([(0, 0), (0, 1)]).tolist() == [0.0, 1.0]
    by_fused = evaluate.rerank(sim[:1], 2, lambda t: fused([(0, int(c)) for c in t[0]])[None])
    by_itm = evaluate.rerank(sim[:1], 2, lambda t: alone([(0, int(c)) for c in t[0]])[None])
    assert np.argmax(by_fused[0]) == 0 and np.argmax(by_itm[0]) == 1

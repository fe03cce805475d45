import numpy as np

from stages.data.pairs import PairCollator, Samples, caption_choice, grouped_plan, random_plan


def _samples(n):
    captions = [[f"c{i}-{j}" for j in range(1 + i % 3)] for i in range(n)]
    return Samples([f"i{i}" for i in range(n)], ["d"] * n, captions, [[f"id-{c}" for c in cs] for cs in captions])


def test_random_plan_is_a_partition_and_never_leaves_a_batch_of_one():
    for n, bs in [(9, 4), (8, 4), (5, 2), (2, 4)]:
        plan = random_plan(_samples(n), bs, seed=0, epoch=1)
        idx = sorted(i for b in plan for i, _ in b)
        assert idx == list(range(n)), (n, bs, plan)
        assert all(len(b) >= 2 for b in plan)
    assert random_plan(_samples(9), 4, 0, 1) == random_plan(_samples(9), 4, 0, 1)
    assert random_plan(_samples(9), 4, 0, 1) != random_plan(_samples(9), 4, 0, 2)


def test_captions_rotate_by_epoch_and_groups_stay_together():
    s = _samples(30)
    picks = {caption_choice(s, 0, e, [2])[0][1] for e in range(20)}
    assert picks == {0, 1, 2}  # sample 2 has three captions; epochs use all of them
    groups = [[0, 1, 2], [3, 4], [5, 6, 7]]
    plan = grouped_plan(s, groups, 0, 3)
    assert sorted(sorted(i for i, _ in b) for b in plan) == sorted(groups)


def test_collated_ids_name_the_same_image_and_caption_text_in_any_collator(monkeypatch):
    """Equal ids = the same image (dataset and id) or the same caption text after normalisation, whichever
    collator (stage) made the batch: the ITC queue, carried in the weights, compares them across stages."""
    def fake_nodes(self, idx):
        return [(np.zeros((2, 4), np.float16), np.zeros((2, 7), np.float32), np.zeros((2, 0), np.int32))
                for _ in idx]

    monkeypatch.setattr(PairCollator, "nodes", fake_nodes)
    s = Samples(["a", "b", "a"], ["d", "d", "e"], [["A red star.", "x"], ["a  red star", "y"], ["A red star"]],
                [["1", "2"], ["3", "4"], ["5"]])
    one = PairCollator(s, 4, 16)([(0, 0), (1, 0), (2, 0), (0, 1)])
    assert len(set(one.caption_ids[:3].tolist())) == 1 and one.caption_ids[3] != one.caption_ids[0]
    assert len(set(one.image_ids[:3].tolist())) == 3 and one.image_ids[3] == one.image_ids[0]
    other = PairCollator(s.subset([2, 1]), 4, 16)([(1, 1), (0, 0)])
    assert other.image_ids.tolist() == one.image_ids[[1, 2]].tolist()
    assert other.caption_ids[1] == one.caption_ids[0]

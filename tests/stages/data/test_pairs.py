from stages.data.pairs import Samples, caption_choice, grouped_plan, random_plan


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

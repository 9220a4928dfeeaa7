import optuna
import pytest

from metaembed.losses import validate_groups
from metaembed.tuning import space
from metaembed.tuning.params import SpaceParams


def _sample_many(params: SpaceParams, ladder: space.Ladders, n: int) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    configs = []

    def objective(trial):
        configs.append(space.suggest(trial, params, ladder))
        return 0.0

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=n)
    return configs


def test_default_ladders_are_powers_of_two_below_full():
    ladder = space.ladders(SpaceParams(), 16, 64)
    assert ladder.query == [1, 2, 4, 8] and ladder.candidate == [1, 2, 4, 8, 16, 32]
    assert ladder.max_groups == 5


def test_every_sample_is_a_valid_nested_group_list():
    params = SpaceParams(num_groups=(1, 5))
    ladder = space.ladders(params, 16, 64)
    configs = _sample_many(params, ladder, 300)
    structures = set()
    for config in configs:
        groups = config["groups"]
        validate_groups(groups, 16, 64)  # raises on any invalid list
        assert groups[-1] == [16, 64, 1.0]
        for (q0, c0, _), (q1, c1, _) in zip(groups, groups[1:]):
            assert q0 < q1 and c0 < c1
        assert 0.02 <= config["temperature"] <= 0.1 and 3e-4 <= config["lr"] <= 3e-3
        structures.add(tuple((q, c) for q, c, _ in groups))
    assert {len(s) for s in structures} == {1, 2, 3, 4, 5}
    assert len(structures) > 50  # the space is explored, not one fixed ladder


def test_explicit_ladders_and_sizes_at_full_are_ignored():
    params = SpaceParams(num_groups=(3, 3), query_sizes=[2, 4, 16, 32], candidate_sizes=[8, 16, 64])
    ladder = space.ladders(params, 16, 64)
    assert ladder.query == [2, 4] and ladder.candidate == [8, 16]
    for config in _sample_many(params, ladder, 20):
        assert [g[:2] for g in config["groups"]] == [[2, 8], [4, 16], [16, 64]]


def test_empty_space_fails_clearly():
    params = SpaceParams(num_groups=(4, 5))
    with pytest.raises(ValueError, match="num_groups: at least 4 groups"):
        space.group_range(params, space.ladders(params, 4, 8))


def test_encode_decode_round_trip_and_out_of_space():
    params = SpaceParams()
    ladder = space.ladders(params, 16, 64)
    groups = [[1, 1, 1.0], [2, 4, 0.5], [4, 8, 1.0], [8, 16, 1.0], [16, 64, 1.0]]
    encoded = space.encode(groups, 0.05, 1e-3, params, ladder)
    assert space.decode(encoded, ladder) == {"groups": groups, "temperature": 0.05, "lr": 1e-3}
    assert space.encode([[3, 4, 1.0], [16, 64, 1.0]], 0.05, 1e-3, params, ladder) is None  # 3 off the ladder
    assert space.encode(groups, 0.5, 1e-3, params, ladder) is None  # temperature out of range
    # Weights count relative to the full group's (the loss scale does not matter to AdamW).
    assert space.encode([[1, 1, 1.0], [16, 64, 2.0]], 0.05, 1e-3, params, ladder)["w0"] == 0.5
    assert space.encode([[1, 1, 0.25], [16, 64, 2.0]], 0.05, 1e-3, params, ladder) is None  # 0.125: below range


def test_space_params_reject_bad_ranges():
    with pytest.raises(ValueError, match="lr"):
        SpaceParams(lr=(1e-3, 1e-4))
    with pytest.raises(ValueError, match="num_groups"):
        SpaceParams(num_groups=(0, 2))


def test_sample_suite_keeps_positive_and_twins_within_k():
    from metaembed.data.records import EvalQuery
    from metaembed.evaluation.suite import MmebSubset, Suite
    from metaembed.tuning.objective import sample_suite

    queries = [EvalQuery("S", row, f"q{row}", tuple(f"c{row}_{i}" for i in range(10)), (7, 3, 9)) for row in range(5)]
    suite = Suite(mmeb=[MmebSubset("S", "retrieval", "in_distribution", queries)], source="x")
    cut = sample_suite(suite, "mmeb_p_at_1", 3, 5).mmeb[0].queries
    assert len(cut) == 3
    for q in cut:
        assert q.candidates == (f"{q.query.replace('q', 'c')}_0", *[f"c{q.row}_{i}" for i in (7, 3, 9, 1)])
        assert [q.candidates[i] for i in q.twin_indices] == [f"c{q.row}_{i}" for i in (7, 3, 9)]
    assert sample_suite(suite, "mmeb_p_at_1", None, None).mmeb[0].queries == queries


def test_a_trial_killed_while_sampling_has_incomplete_params_and_is_not_decoded():
    from metaembed.tuning.space import is_complete

    sampled = {"num_groups": 2, "q0": 0, "c0": 1, "w0": 0.5, "temperature": 0.1, "lr": 1e-3}
    assert is_complete(sampled)
    assert not is_complete({k: v for k, v in sampled.items() if k != "w0"})
    assert not is_complete({})

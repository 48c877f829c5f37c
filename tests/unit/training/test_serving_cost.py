"""What a model costs to serve, as the prediction function answers one row (training/serving_cost.py)."""

import pytest

from tests.unit.training.test_training import small_config
from training import families, job, serving_cost


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    prepared = job.prepare(small_config(tmp_path_factory.mktemp("cost")))
    family, params = families.params_from_trial(families.starting_point("lightgbm", prepared.task, "tune"))
    fitted = families.fit(family, params, prepared.X_train, prepared.y_train, prepared.schema,
                          task=prepared.task, seed=0, threads=1, rounds=20)
    return prepared, fitted.export(prepared.schema)


def test_the_cost_is_the_bundles_bytes_a_warm_answer_and_a_cold_load(served):
    prepared, arrays = served
    cost = serving_cost.measure(arrays, prepared)
    assert set(cost) == {"bundle_bytes", "warm_p50_ms", "cold_ms"}
    assert cost["bundle_bytes"] > 1000
    assert 0 < cost["warm_p50_ms"] < cost["cold_ms"]  # a load decodes the arrays before it answers


def test_a_model_against_itself_is_about_as_fast(served):
    prepared, arrays = served
    assert 0.5 < serving_cost.slowdown(arrays, arrays, prepared, calls=100) < 2.0


def test_each_model_answers_in_blocks_of_its_own_as_a_container_serving_it_does():
    order = []

    class Recording:
        def __init__(self, name):
            self.name = name

        def predict(self, body, max_rows):
            order.append(self.name)

    times = serving_cost.warm_times([Recording("a"), Recording("b")], {}, calls=50)
    assert [len(t) for t in times] == [50, 50]  # timed, after as many untimed
    assert len(order) == 200
    runs = [order[i:i + serving_cost.BLOCK] for i in range(0, len(order), serving_cost.BLOCK)]
    assert all(len(set(run)) == 1 for run in runs)  # never one answer each in turn: the cache is its own
    assert [run[0] for run in runs] == ["a", "b"] * 4  # turns block by block: the drift falls on both

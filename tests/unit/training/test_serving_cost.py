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

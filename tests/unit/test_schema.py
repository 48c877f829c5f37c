"""Requests are turned into feature rows, or refused with the field and the reason."""

import math

import pytest
from serving.schema import FeatureSchema, RequestError

SCHEMA = [
    {"name": "size", "type": "numeric", "nullable": False, "min": 0, "max": 10},
    {"name": "weight", "type": "numeric", "nullable": True, "min": 1, "max": 5},
    {"name": "colour", "type": "categorical", "nullable": False, "categories": ["blue", "red"]},
    {"name": "fresh", "type": "boolean", "nullable": False},
]
ROW = {"size": 3, "weight": 2.5, "colour": "red", "fresh": True}


def errors_of(body, **kwargs):
    with pytest.raises(RequestError) as caught:
        FeatureSchema(SCHEMA, **kwargs).matrix(body, max_rows=10)
    return caught.value


def test_a_valid_row_becomes_codes_in_schema_order():
    X = FeatureSchema(SCHEMA).matrix({"instances": [ROW]}, max_rows=10)
    assert X.tolist() == [[3.0, 2.5, 1.0, 1.0]]


def test_positional_rows_equal_named_rows():
    schema = FeatureSchema(SCHEMA)
    named = schema.matrix({"instances": [ROW]}, max_rows=10)
    positional = schema.matrix({"features": [[3, 2.5, "red", True]]}, max_rows=10)
    assert named.tolist() == positional.tolist()


def test_null_is_missing_only_where_training_saw_missing_values():
    X = FeatureSchema(SCHEMA).matrix({"instances": [{**ROW, "weight": None}]}, max_rows=10)
    assert math.isnan(X[0, 1])
    error = errors_of({"instances": [{**ROW, "size": None}]})
    assert error.status == 422
    assert error.errors == [{"row": 0, "field": "size", "message":
                             "null is not allowed: this feature had no missing values in training"}]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"size": "big"}, "size", "must be a number"),
        ({"size": True}, "size", "must be a number"),
        ({"size": float("inf")}, "size", "finite"),
        ({"colour": "green"}, "colour", "unknown category 'green'"),
        ({"fresh": 1}, "fresh", "true or false"),
        ({"extra": 1}, "extra", "unknown feature"),
    ],
)
def test_each_bad_value_names_its_field_and_reason(change, field, words):
    error = errors_of({"instances": [{**ROW, **change}]})
    assert error.status == 422
    assert [e["field"] for e in error.errors] == [field]
    assert words in error.errors[0]["message"]


def test_a_missing_feature_is_reported_per_row():
    rows = [ROW, {k: v for k, v in ROW.items() if k != "colour"}]
    error = errors_of({"instances": rows})
    assert error.errors == [{"row": 1, "field": "colour", "message":
                             "missing: every feature needs a value (null where allowed)"}]


def test_unknown_categories_can_be_treated_as_missing():
    X = FeatureSchema(SCHEMA, unknown_category="missing").matrix(
        {"instances": [{**ROW, "colour": "green"}]}, max_rows=10)
    assert math.isnan(X[0, 2])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ([ROW], 400),
        ({}, 400),
        ({"instances": []}, 400),
        ({"instances": [ROW], "features": [[1, 2, "red", True]]}, 400),
        ({"instances": [ROW], "extra": 1}, 400),
        ({"instances": [ROW] * 11}, 413),
        ({"features": [[1, 2]]}, 422),
    ],
)
def test_malformed_requests_are_refused_with_the_right_status(body, status):
    assert errors_of(body).status == status

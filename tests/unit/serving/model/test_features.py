"""Requests are turned into feature rows, or refused with the row, the field and the reason."""

import math

import numpy as np
import pytest
from serving.model import features as S
from serving.model.features import FeatureSchema, RequestError

SCHEMA = [
    {"name": "size", "type": "numeric", "nullable": False, "min": 0, "max": 10},
    {"name": "weight", "type": "numeric", "nullable": True, "min": 1, "max": 5},
    {"name": "colour", "type": "categorical", "nullable": False, "categories": ["blue", "red"]},
    {"name": "fresh", "type": "boolean", "nullable": False},
]
ROW = {"size": 3, "weight": 2.5, "colour": "red", "fresh": True}
NUMERIC = [{"name": n, "type": "numeric", "nullable": n == "b"} for n in ("a", "b", "c")]


def errors_of(body, features=SCHEMA, **kwargs):
    with pytest.raises(RequestError) as caught:
        FeatureSchema(features, **kwargs).matrix(body, max_rows=10)
    return caught.value


def test_a_schema_of_no_features_is_refused():
    with pytest.raises(ValueError, match="^a schema needs at least one feature$"):
        FeatureSchema([])


def test_a_valid_row_becomes_codes_in_schema_order():
    X = FeatureSchema(SCHEMA).matrix({"instances": [ROW, {**ROW, "colour": "blue", "fresh": False}]}, max_rows=10)
    assert X.dtype == np.float64
    assert X.tolist() == [[3.0, 2.5, 1.0, 1.0], [3.0, 2.5, 0.0, 0.0]]


def test_positional_rows_equal_named_rows():
    schema = FeatureSchema(SCHEMA)
    named = schema.matrix({"instances": [ROW]}, max_rows=10)
    positional = schema.matrix({"features": [[3, 2.5, "red", True]]}, max_rows=10)
    assert named.tolist() == positional.tolist()


def test_the_numeric_fast_path_gives_the_same_matrix_as_the_checked_path():
    schema = FeatureSchema(NUMERIC)
    rows = [{"a": 1, "b": 2.5, "c": -3}, {"c": 0.125, "b": 7, "a": 10**6}]
    fast = schema.matrix({"instances": rows}, max_rows=10)
    assert schema._fast_matrix(rows, "instances") is not None
    checked = np.array([[schema._value(f, row[f["name"]]) for f in NUMERIC] for row in rows])
    assert fast.tolist() == checked.tolist() == [[1.0, 2.5, -3.0], [1e6, 7.0, 0.125]]
    assert schema.matrix({"features": [[1, 2.5, -3]]}, max_rows=10).tolist() == [[1.0, 2.5, -3.0]]


def test_the_fast_path_reads_a_one_feature_model_too():
    schema = FeatureSchema([NUMERIC[0]])
    rows = [{"a": 2}, {"a": -0.5}]
    assert schema._fast_matrix(rows, "instances").tolist() == [[2.0], [-0.5]]
    assert schema.matrix({"instances": rows}, max_rows=10).tolist() == [[2.0], [-0.5]]
    assert errors_of({"instances": [{"a": "2"}]}, [NUMERIC[0]]).errors[0]["field"] == "a"


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ({"a": 1, "b": 2, "c": math.nan}, "c", "must be a finite number"),
        ({"a": math.inf, "b": 2, "c": 3}, "a", "must be a finite number"),
        ({"a": -math.inf, "b": 2, "c": 3}, "a", "must be a finite number"),
        ({"a": 10**400, "b": 2, "c": 3}, "a", "must be a finite number"),
        ({"a": 1, "b": 2, "c": 3, "d": 4}, "d", "unknown feature"),
        ({"a": True, "b": 2, "c": 3}, "a", "must be a number, got bool"),
        ({"a": "1", "b": 2, "c": 3}, "a", "must be a number, got str"),
        ({"a": 1, "b": 2}, "c", "missing: every feature needs a value"),
        ({"a": None, "b": 2, "c": 3}, "a", "null is not allowed"),
    ],
)
def test_the_numeric_fast_path_refuses_what_the_checked_path_refuses(row, field, words):
    # every feature numeric: the common case goes through one vectorised pass
    error = errors_of({"instances": [{"a": 1, "b": 2, "c": 3}, row]}, NUMERIC)
    assert error.status == 422
    assert [(e["row"], e["field"]) for e in error.errors] == [(1, field)]
    assert words in error.errors[0]["message"]


def test_a_null_where_missing_values_were_seen_is_nan_on_every_path():
    X = FeatureSchema(NUMERIC).matrix({"instances": [{"a": 1, "b": None, "c": 3}]}, max_rows=10)
    assert X[0, 0] == 1 and math.isnan(X[0, 1]) and X[0, 2] == 3
    X = FeatureSchema(NUMERIC).matrix({"features": [[1, None, 3]]}, max_rows=10)
    assert math.isnan(X[0, 1])


@pytest.mark.parametrize("row", [[1, 2], [1, 2, 3, 4], "1,2,3", {"a": 1}])
def test_positional_rows_of_the_wrong_shape_are_named(row):
    error = errors_of({"features": [[1, 2, 3], row]}, NUMERIC)
    assert error.errors == [{"row": 1, "field": None, "message": "must be an array of 3 values in schema order"}]


@pytest.mark.parametrize("row", [[1, 2, 3], "x", None, 7])
def test_named_rows_must_be_objects(row):
    error = errors_of({"instances": [row]}, NUMERIC)
    assert error.errors == [{"row": 0, "field": None, "message": "must be an object of feature: value"}]


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
        ({"size": "big"}, "size", "must be a number, got str"),
        ({"size": True}, "size", "must be a number, got bool"),
        ({"size": [1]}, "size", "must be a number, got list"),
        ({"size": float("inf")}, "size", "finite"),
        ({"colour": "green"}, "colour", "unknown category 'green'; expected one of: blue, red"),
        ({"colour": 1}, "colour", "must be a string, one of the categories; got int"),
        ({"colour": True}, "colour", "must be a string, one of the categories; got bool"),
        ({"fresh": 1}, "fresh", "must be true or false, got int"),
        ({"fresh": "true"}, "fresh", "must be true or false, got str"),
        ({"extra": 1}, "extra", "unknown feature"),
    ],
)
def test_each_bad_value_names_its_field_and_reason(change, field, words):
    error = errors_of({"instances": [{**ROW, **change}]})
    assert error.status == 422
    assert error.message == "some values are not valid for this model"
    assert [e["field"] for e in error.errors] == [field]
    assert words in error.errors[0]["message"]


def test_every_problem_of_every_row_is_reported_up_to_a_limit():
    rows = [{**ROW, "size": "x", "colour": "green", "extra": 1}] * 5
    error = errors_of({"instances": rows})
    assert [(e["row"], e["field"]) for e in error.errors[:3]] == [(0, "extra"), (0, "size"), (0, "colour")]
    assert len(error.errors) == 15
    many = [{**ROW, "size": "x"}] * 150
    with pytest.raises(RequestError) as caught:
        FeatureSchema(SCHEMA).matrix({"instances": many}, max_rows=200)
    assert len(caught.value.errors) == S.MAX_ERRORS == 100
    assert caught.value.errors[-1]["row"] == 99


def test_the_error_lists_a_limited_number_of_categories():
    categories = [f"c{i:04d}" for i in range(1500)]
    features = [{"name": "city", "type": "categorical", "nullable": False, "categories": categories}]
    error = errors_of({"instances": [{"city": "nowhere" * 50}]}, features)
    message = error.errors[0]["message"]
    assert message.startswith(f"unknown category {('nowhere' * 50)[:100]!r}; expected one of: c0000, c0001")
    assert "c0019 and 1480 more (GET /model lists them)" in message
    assert "c0020" not in message
    short = errors_of({"instances": [{"colour": "x", **{k: v for k, v in ROW.items() if k != "colour"}}]})
    assert short.errors[0]["message"].endswith("expected one of: blue, red")


def test_a_missing_feature_is_reported_per_row():
    rows = [ROW, {k: v for k, v in ROW.items() if k != "colour"}]
    error = errors_of({"instances": rows})
    assert error.errors == [{"row": 1, "field": "colour", "message":
                             "missing: every feature needs a value (null where allowed)"}]


def test_unknown_categories_can_be_treated_as_missing():
    X = FeatureSchema(SCHEMA, unknown_category="missing").matrix(
        {"instances": [{**ROW, "colour": "green"}]}, max_rows=10)
    assert math.isnan(X[0, 2])
    X = FeatureSchema(SCHEMA, unknown_category="missing").matrix({"instances": [ROW]}, max_rows=10)
    assert X[0, 2] == 1.0
    error = errors_of({"instances": [{**ROW, "colour": 5}]}, unknown_category="missing")
    assert "must be a string" in error.errors[0]["message"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ([ROW], 400, 'the body must be a JSON object: {"instances": [...]}'),
        ("x", 400, "must be a JSON object"),
        ({}, 400, 'give exactly one of "instances" (objects by feature name) or "features"'),
        ({"instances": [ROW], "features": [[1, 2, "red", True]]}, 400, "give exactly one of"),
        ({"instances": []}, 400, '"instances" must be a non-empty array'),
        ({"features": {}}, 400, '"features" must be a non-empty array'),
        ({"instances": ROW}, 400, '"instances" must be a non-empty array'),
        ({"instances": [ROW], "extra": 1, "more": 2}, 400, "unexpected top-level fields: extra, more"),
        ({"instances": [ROW] * 11}, 413, "11 rows in one request; the limit is 10"),
        ({"features": [[1, 2]]}, 422, "some values are not valid"),
    ],
)
def test_malformed_requests_are_refused_with_the_right_status(body, status, words):
    error = errors_of(body)
    assert (error.status, error.message) == (status, error.message)
    assert words in error.message
    assert error.body()["error"] == error.message
    assert ("errors" in error.body()) is bool(error.errors)


def test_exactly_max_rows_is_allowed():
    assert FeatureSchema(SCHEMA).matrix({"instances": [ROW] * 10}, max_rows=10).shape == (10, 4)


def test_a_schema_with_an_unknown_type_is_refused_when_loaded():
    with pytest.raises(ValueError, match="feature 'when': unsupported type 'date'"):
        FeatureSchema([{"name": "when", "type": "date"}])


def test_names_and_width():
    schema = FeatureSchema(SCHEMA)
    assert schema.names == ["size", "weight", "colour", "fresh"]
    assert schema.width == 4


def test_all_numeric_rows_take_the_one_pass_path_and_others_are_checked_cell_by_cell(monkeypatch):
    checked = []
    real = FeatureSchema._value

    def spy(self, feature, value):
        checked.append(feature["name"])
        return real(self, feature, value)

    monkeypatch.setattr(FeatureSchema, "_value", spy)
    numeric = FeatureSchema(NUMERIC)
    assert numeric.matrix({"instances": [{"a": 1, "b": 2, "c": 3}]}, max_rows=1).tolist() == [[1, 2, 3]]
    assert numeric.matrix({"features": [[1, 2, 3], [4, 5, 6]]}, max_rows=2).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert checked == []
    FeatureSchema(SCHEMA).matrix({"instances": [ROW]}, max_rows=1)
    assert checked == ["size", "weight", "colour", "fresh"]


def test_after_the_error_limit_no_more_rows_are_examined(monkeypatch):
    seen = []
    real = FeatureSchema._fill

    def spy(self, out, row, i, form, errors):
        seen.append(i)
        return real(self, out, row, i, form, errors)

    monkeypatch.setattr(FeatureSchema, "_fill", spy)
    with pytest.raises(RequestError):
        FeatureSchema(SCHEMA).matrix({"instances": [{**ROW, "size": "x"}] * 150}, max_rows=200)
    assert seen == list(range(100))


def test_exact_messages():
    assert errors_of([ROW]).message == 'the body must be a JSON object: {"instances": [...]}'
    error = errors_of({"instances": [{**ROW, "extra": 1}]})
    assert error.errors == [{"row": 0, "field": "extra", "message": "unknown feature"}]
    twenty = [{"name": "c", "type": "categorical", "nullable": False, "categories": [f"v{i}" for i in range(20)]}]
    message = errors_of({"instances": [{"c": "x"}]}, twenty).errors[0]["message"]
    assert message == "unknown category 'x'; expected one of: " + ", ".join(f"v{i}" for i in range(20))


DATED = [{"name": "size", "type": "numeric", "nullable": False},
         {"name": "when", "type": "datetime", "nullable": True, "parts": ["year", "month", "day", "weekday",
                                                                           "dayofyear", "days_since_epoch", "hour",
                                                                           "minute", "second"]}]


def test_a_date_becomes_its_parts_in_the_models_columns():
    schema = FeatureSchema(DATED)
    assert schema.width == 10
    X = schema.matrix({"instances": [{"size": 2, "when": "2024-02-29T13:45:30.5"},
                                     {"size": 3, "when": "1970-01-02"},
                                     {"size": 4, "when": None}]}, max_rows=10)
    assert X[0].tolist() == [2, 2024, 2, 29, 3, 60, 19782 + 13.75 / 24 + 30.5 / 86400, 13, 45, 30.5]
    assert X[1].tolist() == [3, 1970, 1, 2, 4, 2, 1.0, 0, 0, 0]
    assert X[2, 0] == 4 and np.isnan(X[2, 1:]).all()
    positional = schema.matrix({"features": [[2, "2024-02-29T13:45:30.5"]]}, max_rows=1)
    assert positional.tolist() == X[:1].tolist()


def test_a_timestamp_with_an_offset_is_read_in_utc():
    at = S.datetime_parts("2024-03-01T01:30:00+02:00", ["year", "month", "day", "hour", "minute"])
    assert at == [2024, 2, 29, 23, 30]
    assert S.datetime_parts("2024-03-01T01:30:00Z", ["hour"]) == [1]


@pytest.mark.parametrize(("value", "words"), [
    ("yesterday", "not an ISO 8601 date or timestamp (like 2024-05-31 or 2024-05-31T14:30:00): 'yesterday'"),
    ("2024-13-01", "not an ISO 8601 date or timestamp"),
    ("x" * 200, "not an ISO 8601 date or timestamp (like 2024-05-31 or 2024-05-31T14:30:00): '" + "x" * 60 + "'"),
    (20240101, "must be an ISO 8601 date or timestamp string, got int"),
])
def test_a_date_that_does_not_parse_is_named(value, words):
    error = errors_of({"instances": [{"size": 1, "when": value}]}, DATED)
    assert error.errors == [{"row": 0, "field": "when", "message": error.errors[0]["message"]}]
    assert error.errors[0]["message"].startswith(words)
    assert words != error.errors[0]["message"] or len(words) < 200


def test_every_part_has_its_rule():
    import datetime as dt

    moment = dt.datetime(2023, 12, 31, 23, 59, 58, 250000)
    assert {part: rule(moment) for part, rule in S.DATETIME_PARTS.items()} == {
        "year": 2023, "month": 12, "day": 31, "weekday": 6, "dayofyear": 365, "hour": 23, "minute": 59,
        "second": 58.25, "days_since_epoch": 19722 + (23 * 3600 + 59 * 60 + 58.25) / 86400}
    assert [p for p in S.DATETIME_PARTS if p != "days_since_epoch"][:5] + \
        ["days_since_epoch", "hour", "minute", "second"] == S.DATE_PARTS + S.TIME_PARTS


def test_a_timestamp_with_an_offset_is_read_in_utc_whatever_the_machines_time_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        at = S.datetime_parts("2024-03-01T01:30:00+02:00", ["year", "month", "day", "hour", "minute"])
        naive = S.datetime_parts("2024-03-01T01:30:00", ["day", "hour"])
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert at == [2024, 2, 29, 23, 30]
    assert naive == [1, 1]





"""A request's JSON bytes: large bodies of numbers are decoded by msgspec, the rest parsed; both agree."""

import contextlib
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from serving.model import features as S
from serving.model.features import FeatureSchema, RequestError

from tests.unit.serving.model.test_features import NUMERIC, SCHEMA


def outcome(schema, raw: bytes, max_rows=10):
    """What ``matrix`` makes of a body: the matrix's bytes, or the error's status, message and errors."""
    try:
        return schema.matrix(raw, max_rows=max_rows).tobytes()
    except RequestError as error:
        return error.status, error.message, error.errors


def parsed_outcome(schema, raw: bytes, max_rows=10):
    """The same body through the parsed path only (orjson, then the checks value by value)."""
    try:
        body = S.parse_json(raw)
        return schema.matrix(body, max_rows=max_rows).tobytes()
    except RequestError as error:
        return error.status, error.message, error.errors


@contextlib.contextmanager
def typed_always():
    """Within it, every body is decoded by msgspec first, whatever its size; yields parse_json's calls.
    (Hypothesis tests cannot take a function-scoped fixture such as ``typed`` below.)"""
    parsed, size, parse = [], S.TYPED_DECODE_BYTES, S.parse_json
    S.TYPED_DECODE_BYTES, S.parse_json = 0, lambda raw: parsed.append(raw) or parse(raw)
    try:
        yield parsed
    finally:
        S.TYPED_DECODE_BYTES, S.parse_json = size, parse


@pytest.fixture
def typed(monkeypatch):
    """Every body is decoded by msgspec first, whatever its size; parse_json is counted."""
    monkeypatch.setattr(S, "TYPED_DECODE_BYTES", 0)
    parsed = []
    real = S.parse_json
    monkeypatch.setattr(S, "parse_json", lambda raw: parsed.append(raw) or real(raw))
    return parsed


NUMBER = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**30), 10**30))


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(NUMBER, min_size=3, max_size=3), min_size=1, max_size=10),
       spaces=st.integers(0, 3))
def test_numbers_decoded_from_the_bytes_equal_the_parsed_ones_bit_for_bit(rows, spaces):
    schema = FeatureSchema(NUMERIC)
    with typed_always() as parsed:
        for body in ({"instances": [dict(zip("abc", row, strict=True)) for row in rows]}, {"features": rows}):
            raw = json.dumps(body).encode() + b" " * spaces
            X = schema.matrix(raw, max_rows=10)
            assert parsed == []  # the typed decoder read it
            assert X.tobytes() == np.array([[float(v) for v in row] for row in rows]).tobytes()
            assert X.tobytes() == parsed_outcome(schema, raw)
            parsed.clear()


@settings(max_examples=300, deadline=None)
@given(number=st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?", fullmatch=True))
def test_any_number_as_written_is_read_as_the_parsed_path_reads_it(number):
    # correctly rounded both ways, and a number beyond a float's range refused as the parser refuses it
    schema = FeatureSchema(NUMERIC)
    with typed_always():
        raw = b'{"features": [[1, 2, %s]]}' % number.encode()
        assert outcome(schema, raw) == parsed_outcome(schema, raw)


ABC = b'{"instances": [{"a": 1, "b": 2, "c": 3}, %s]}'


@pytest.mark.parametrize("raw", [
    ABC % b'{"a": true, "b": 2, "c": 3}',
    ABC % b'{"a": "1", "b": 2, "c": 3}',
    ABC % b'{"a": null, "b": 2, "c": 3}',  # not allowed for a
    ABC % b'{"a": 1, "b": null, "c": 3}',  # allowed for b: NaN
    ABC % b'{"a": 1, "b": 2, "c": 3, "d": 4}',
    ABC % b'{"a": 1, "b": 2}',
    ABC % b'{"a": 1, "b": 2, "a": 5}',
    ABC % b'{"a": 1, "b": 2, "c": 3, "a": 5}',  # the last value of a repeated name, as the parser takes it
    ABC % b'[1, 2, 3]',
    ABC % b'{"a": 1e999, "b": 2, "c": 3}',
    ABC % b'{"a": NaN, "b": 2, "c": 3}',
    ABC % b'{"a": 1, "b": 2, "c": 3}' + b" x",
    b'{"features": [[1, 2, 3], [1, 2, 3, 4]]}',  # an element too many: refused, not dropped
    b'{"features": [[1, 2, 3], [1, 2]]}',
    b'{"features": [[1, 2, 3], {"a": 1, "b": 2, "c": 3}]}',
    b'{"features": [[1, true, 3]]}',
    b'{"features": [[1, 2, 3]], "instances": null}',
    b'{"features": null}',
    b'{"features": [[1, 2, 3]], "instances": [{"a": 1, "b": 2, "c": 3}]}',
    b'{"features": [[1, 2, 3]], "extra": 1}',
    b'{"features": []}',
    b'{"instances": []}',  # no rows: a 400, not an empty answer
    b'{"instances": {}}',
    b'{}',
    b'[]',
    b'"x"',
    b'{"features": [' + b", ".join([b"[1, 2, 3]"] * 11) + b"]}",  # over max_rows: 413
    b'{"features": [' + b", ".join([b"[1, 2, 3]"] * 10) + b"]}",  # exactly max_rows
    b'{"instances": [{"a": 1, "b": 2, "c": 3}]}',
    b'{"instances": [{"\\u0061": 1, "b": 2, "c": 3}]}',  # a name written with an escape is that name
    b'\xff{"features": [[1, 2, 3]]}',
    b'{"instances": [{"a\xff": 1, "b": 2, "c": 3}]}',  # not UTF-8 in a name (msgspec: UnicodeDecodeError)
    b'\xef\xbb\xbf{"features": [[1, 2, 3]]}',  # a byte order mark
    b'{"features":\x0c[[1, 2, 3]]}',  # a form feed is not JSON's white space
    b'',
])
def test_whatever_the_typed_decoder_refuses_gets_the_answer_of_the_parsed_path(typed, raw):
    schema = FeatureSchema(NUMERIC)
    assert outcome(schema, raw) == parsed_outcome(schema, raw)
    assert schema._typed is not None  # (it was tried)


def test_the_typed_decoder_takes_bodies_from_its_size_and_is_built_once_per_schema():
    schema = FeatureSchema(NUMERIC)
    small = b'{"features": [[1, 2, 3]]}'
    assert schema.matrix(small + b" " * (S.TYPED_DECODE_BYTES - 1 - len(small)), max_rows=1).tolist() == [[1, 2, 3]]
    assert schema._typed is None  # below the size, msgspec is not even imported for it
    assert schema.matrix(small + b" " * (S.TYPED_DECODE_BYTES - len(small)), max_rows=1).tolist() == [[1, 2, 3]]
    decoder = schema._typed
    assert decoder is not None
    schema.matrix(small + b" " * S.TYPED_DECODE_BYTES, max_rows=1)
    assert schema._typed is decoder
    mixed = FeatureSchema(SCHEMA)  # a categorical among the features: always the parsed path
    row = b'{"instances": [{"size": 3, "weight": 2.5, "colour": "red", "fresh": true}]}'
    assert mixed.matrix(row + b" " * S.TYPED_DECODE_BYTES, max_rows=1).tolist() == [[3, 2.5, 1, 1]]
    assert mixed._typed is None


def test_names_that_are_not_identifiers_are_decoded_too(typed):
    features = [{"name": n, "type": "numeric", "nullable": False} for n in ("mean radius", "class", "x.1", "é")]
    schema = FeatureSchema(features)
    raw = b'{"instances": [{"mean radius": 1, "class": 2, "x.1": 3, "\xc3\xa9": 4.5}]}'
    assert schema.matrix(raw, max_rows=1).tolist() == [[1, 2, 3, 4.5]]
    assert typed == []


def test_the_typed_decoder_reads_one_row_and_exactly_max_rows_itself(typed):
    schema = FeatureSchema(NUMERIC)
    one = b'{"instances": [{"a": 1, "b": 2, "c": 3}]}'
    assert schema.matrix(one, max_rows=1).tolist() == [[1, 2, 3]]
    ten = b'{"features": [' + b", ".join([b"[1, 2, 3]"] * 10) + b"]}"
    assert schema.matrix(ten, max_rows=10).shape == (10, 3)
    assert typed == []
    with pytest.raises(RequestError) as caught:
        schema.matrix(ten.replace(b"[[", b"[[1, 2, 3], [", 1), max_rows=10)
    assert (caught.value.status, caught.value.message) == (413, "11 rows in one request; the limit is 10")
    assert len(typed) == 1  # over the limit: the parsed path says so


JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=3),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from("abcd"), inner,
                                                                                  max_size=4), max_leaves=12)


ROWS = st.lists(st.lists(NUMBER, min_size=3, max_size=3), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(st.fixed_dictionaries({}, optional={"instances": JSON, "features": JSON, "x": JSON}),
                      st.builds(lambda rows: {"features": rows}, ROWS),
                      st.builds(lambda rows: {"instances": [dict(zip("abc", r, strict=True)) for r in rows]}, ROWS)),
       cut=st.integers(0, 200), flip=st.integers(0, 255))
def test_any_body_gets_the_answer_of_the_parsed_path(body, cut, flip):
    # valid JSON of any shape, and the same bytes with one byte changed: no exception but a RequestError,
    # and the typed decoder never answers what the parsed path would refuse
    schema = FeatureSchema(NUMERIC)
    with typed_always():
        raw = json.dumps(body, allow_nan=False).encode() if _finite(body) else b"{}"
        for variant in (raw, raw[:cut % (len(raw) + 1)] + bytes([flip]) + raw[cut % (len(raw) + 1) + 1:]):
            assert outcome(schema, variant) == parsed_outcome(schema, variant)


def _finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(map(_finite, value))
    if isinstance(value, dict):
        return all(map(_finite, value.values()))
    return True

"""Capture's own promises: which requests are kept, the exact lines and keys written, when, and what a
failed write reports."""

import contextlib
import re
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from serving.store import capture

from tests.unit.conftest import BUCKET


class FakeS3:
    """Records every object written; raises ``error`` instead when given one."""

    def __init__(self, error=None):
        self.puts, self.error, self.budgets = [], error, []

    def put_object(self, **kwargs):
        if self.error:
            raise self.error
        self.puts.append({**kwargs, "budget": self.budgets[-1] if self.budgets else None})

    @contextlib.contextmanager
    def within(self, seconds):
        self.budgets.append(seconds)
        yield
        self.budgets.pop()


def make(rate=1.0, s3=None, **kwargs):
    s3 = s3 or FakeS3()
    return capture.Capture(lambda: s3, BUCKET, rate=rate, **kwargs), s3


class Draws:
    """A random source that draws the given numbers in turn."""

    def __init__(self, *values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)


UTC_NOW = datetime(2026, 1, 2, 23, 59, 58, 123456, tzinfo=UTC)


class FrozenClock(datetime):
    """Now is 2026-01-02 23:59:58.123456 UTC; the local clock (no zone asked) is ten hours ahead."""

    @classmethod
    def now(cls, tz=None):
        if tz is None:
            return UTC_NOW.astimezone(timezone(timedelta(hours=10))).replace(tzinfo=None)
        return UTC_NOW.astimezone(tz)


def test_the_defaults_write_every_thousand_rows_or_every_minute():
    kept, _ = make()
    assert (kept.flush_rows, kept.flush_seconds, kept.on_error) == (1000, 60.0, None)


def test_a_request_is_kept_exactly_when_its_draw_is_below_the_rate():
    kept, _ = make(rate=0.5)
    kept._random = Draws(0.4999, 0.5, 0.75)
    for _ in range(3):
        kept.add("m", 1, np.ones((1, 2)), np.ones(1))
    assert kept.buffered_rows == 1  # 0.4999 kept; a draw equal to the rate is not


def test_each_row_is_one_compact_json_line_stamped_in_utc_under_a_utc_key(monkeypatch):
    monkeypatch.setattr(capture, "datetime", FrozenClock)
    kept, s3 = make(flush_rows=10**6)
    kept.add("m", 4, np.array([[1.5, np.nan], [2.0, 3.0]]), np.array([0.25, 0.75]))
    kept.flush()
    [put] = s3.puts
    assert put["Bucket"] == BUCKET and put["ContentType"] == "application/x-ndjson"
    # the day and the time of day are UTC's, whatever the container's local clock says
    assert put["Key"] == f"capture/m/date=2026-01-02/235958-{kept.container}-000001.jsonl"
    assert put["Body"] == (
        b'{"time":"2026-01-02T23:59:58.123+00:00","version":4,"row":[1.5,null],"prediction":0.25}\n'
        b'{"time":"2026-01-02T23:59:58.123+00:00","version":4,"row":[2.0,3.0],"prediction":0.75}\n'
    )


def test_the_key_names_the_day_then_the_time_of_day_the_container_and_a_sequence_number():
    kept, s3 = make(flush_rows=1)
    before = datetime.now(UTC)
    kept.add("m", 1, np.ones((1, 1)), np.ones(1))
    kept.add("m", 1, np.ones((1, 1)), np.ones(1))
    after = datetime.now(UTC)
    keys = [put["Key"] for put in s3.puts]
    pattern = rf"capture/m/date=(\d{{4}}-\d\d-\d\d)/(\d{{6}})-{kept.container}-00000([12])\.jsonl"
    parsed = [re.fullmatch(pattern, key) for key in keys]
    assert all(parsed), keys
    assert [m.group(3) for m in parsed] == ["1", "2"]
    for match in parsed:
        stamp = datetime.strptime(match.group(1) + match.group(2), "%Y-%m-%d%H%M%S").replace(tzinfo=UTC)
        assert before.replace(microsecond=0) <= stamp <= after


def test_the_buffer_is_written_by_the_request_that_brings_it_to_flush_rows_exactly():
    kept, s3 = make(flush_rows=3, flush_seconds=3600)
    kept.add("m", 1, np.ones((2, 1)), np.ones(2))
    assert (kept.buffered_rows, s3.puts) == (2, [])
    kept.add("m", 1, np.ones((1, 1)), np.ones(1))  # 3 rows == flush_rows: written now
    assert kept.buffered_rows == 0
    [put] = s3.puts
    assert put["Body"].count(b"\n") == 3


def test_rows_and_predictions_of_different_lengths_are_refused_not_truncated():
    kept, s3 = make(flush_rows=1)
    with pytest.raises(ValueError, match="zip"):
        kept.add("m", 1, np.ones((3, 2)), np.ones(2))
    assert s3.puts == []


@pytest.mark.parametrize("row, prediction", [([1.0, np.inf], 0.5), ([1.0, 2.0], np.nan)])
def test_a_value_json_cannot_carry_is_reported_and_not_written_as_invalid_json(row, prediction):
    reported = []
    kept, s3 = make(flush_rows=1, on_error=lambda *args: reported.append(args))
    kept.add("m", 1, np.array([row]), np.array([prediction]))  # never fails the prediction
    assert s3.puts == [] and kept.buffered_rows == 0
    [(model, rows, error)] = reported
    assert (model, rows) == ("m", 1)
    assert str(error) == "infinite values (or a NaN prediction) are not JSON compliant: not captured"


def test_a_failed_write_reports_the_model_the_rows_lost_and_the_error_itself():
    error = ConnectionError("S3 is away")
    reported = []
    kept, _ = make(s3=FakeS3(error), flush_rows=2, on_error=lambda *args: reported.append(args))
    kept.add("m", 1, np.ones((2, 1)), np.ones(2))
    assert reported == [("m", 2, error)] and reported[0][2] is error
    assert kept.buffered_rows == 0


def test_the_writes_of_a_flush_share_a_budget_of_a_second_that_a_request_can_afford():
    kept, s3 = make(flush_rows=4)
    kept.add("a", 1, np.ones((2, 1)), np.ones(2))
    kept.add("b", 1, np.ones((2, 1)), np.ones(2))
    assert [put["budget"] for put in s3.puts] == [capture.WRITE_SECONDS] * 2 and capture.WRITE_SECONDS == 1.0
    assert s3.budgets == []


def test_a_day_with_nothing_captured_reads_as_no_records(s3):
    s3.put_object(Bucket=BUCKET, Key="capture/m/date=2026-01-02/x.jsonl",
                  Body=b'{"version":1,"row":[1],"prediction":1,"time":"t"}\n')
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=capture.window_prefix("m", "2026-01-01"))
    records = capture.read_window(s3, BUCKET, "m", ["2026-01-01", "2026-01-02", "2026-01-03"])
    assert [r["row"] for r in records] == [[1]]

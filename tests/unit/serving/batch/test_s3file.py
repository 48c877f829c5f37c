"""Reading S3 objects: streamed lines with a bounded read-ahead, and a seekable file of ranged GETs."""

import io
import json
import time

import pytest
from serving.batch import s3file

from tests.models import case
from tests.unit.conftest import BUCKET
from tests.unit.serving.batch.helpers import messy_csv, run_file, text


def test_a_part_streamed_in_small_chunks_gives_what_one_chunk_gives(s3, steps, monkeypatch):
    model = case("bc-lightgbm")
    data = messy_csv(model).rstrip(b"\r\n")  # the last row without a line end
    s3.put_object(Bucket=BUCKET, Key="batch/input/big.csv", Body=data)
    s3.put_object(Bucket=BUCKET, Key="batch/input/small.csv", Body=data)
    run_file(steps, s3, "batch/input/big.csv", execution="a", part_megabytes=3000 / (1 << 20))
    monkeypatch.setattr(s3file, "READ_BYTES", 100)
    sizes, waits = [], []
    real = s3file.prefetched

    def prefetched(chunks, read=None):  # what the read-ahead is given, and whether it counts waits
        waits.append(read)
        return real((sizes.append(len(c)) or c for c in chunks), read=read)

    monkeypatch.setattr(s3file, "prefetched", prefetched)
    # (every part's bytes read are checked against its range when the file is assembled)
    answer = run_file(steps, s3, "batch/input/small.csv", execution="b", part_megabytes=3000 / (1 << 20))
    assert answer["rows"] == 59 and max(sizes) == 100 and len(sizes) >= len(data) // 100
    assert all(isinstance(read, s3file.Read) for read in waits)
    for output in ("predictions", "errors"):
        assert text(s3, f"batch/output/small.{output}.csv") == text(s3, f"batch/output/big.{output}.csv")
    manifest = json.loads(text(s3, "batch/output/small.manifest.json"))
    timings = manifest["timings"]
    assert timings["seconds"] == round(timings["finished"] - timings["started"], 3)
    assert timings["worker_seconds"] == round(sum(p["seconds"] for p in manifest["parts"]), 3)


def test_a_download_is_read_ahead_in_order_a_bounded_number_of_chunks(steps):
    import threading

    produced = []

    def chunks():
        for i in range(10):
            produced.append(i)
            yield bytes([i])

    reader = s3file.prefetched(chunks(), depth=2)
    assert next(reader) == b"\x00"
    time.sleep(0.2)  # the reader runs ahead while the consumer works, but no further than the queue holds
    assert 2 <= len(produced) <= 4
    assert b"".join(reader) == bytes(range(1, 10))
    assert not [t for t in threading.enumerate() if t.name == "s3-read-ahead"]


def test_the_time_the_scoring_waits_for_the_download_is_counted(steps):

    def slow():
        for i in range(4):
            time.sleep(0.05)
            yield bytes([i])

    read = s3file.Read()
    assert b"".join(s3file.prefetched(slow(), read=read)) == bytes(range(4))
    assert 0.18 <= read.waited <= 1.0  # four chunks, each 50 ms behind the consumer

    read = s3file.Read()
    assert list(s3file.prefetched(iter([b"a"]), read=read)) == [b"a"]
    assert read.waited < 0.05


def test_a_failed_download_fails_the_reader_and_a_reader_closed_early_stops_reading(steps):
    import threading

    def broken():
        yield b"a"
        raise ConnectionError("connection reset")

    with pytest.raises(ConnectionError, match="reset"):
        list(s3file.prefetched(broken()))
    produced = []

    def endless():
        while True:
            produced.append(1)
            yield b"x"

    reader = s3file.prefetched(endless(), depth=2)
    next(reader)
    reader.close()
    assert not [t for t in threading.enumerate() if t.name == "s3-read-ahead"]
    assert len(produced) <= 5


def test_a_reader_closed_while_its_download_waits_on_the_network_stops_quietly(steps):
    import threading

    def slow():
        yield b"a"
        time.sleep(0.3)  # the next chunk is late: the queue is empty when the consumer stops
        yield b"b"

    reader = s3file.prefetched(slow())
    assert next(reader) == b"a"
    [thread] = [t for t in threading.enumerate() if t.name == "s3-read-ahead"]
    assert thread.daemon  # a download that never ends cannot keep the function's process alive
    reader.close()  # waits for the reader, without an error, until it has seen the stop
    assert not thread.is_alive()


def test_a_reader_that_dies_of_anything_fails_the_download_instead_of_hanging(steps):
    def interrupted():
        yield b"a"
        raise KeyboardInterrupt

    reader = s3file.prefetched(interrupted())
    assert next(reader) == b"a"
    with pytest.raises(KeyboardInterrupt):
        next(reader)


def test_an_s3_object_reads_as_a_seekable_file(s3, steps):
    data = bytes(range(256)) * 4
    s3.put_object(Bucket=BUCKET, Key="batch/input/f.bin", Body=data)
    file = s3file.S3File(s3, BUCKET, "batch/input/f.bin", len(data))
    assert file.readable() and file.seekable()  # pyarrow asks both before it seeks
    assert file.tell() == 0 and file.read(3) == data[:3] and file.read(3) == data[3:6] and file.tell() == 6
    assert file.read(0) == b"" and file.tell() == 6
    assert file.read() == data[6:] and file.read() == b"" and file.read(5) == b""
    for size in (None, -1):
        file.seek(1000)
        assert file.read(size) == data[1000:]
    assert file.seek(-10, io.SEEK_END) == len(data) - 10 and file.read(4) == data[-10:-6]
    assert file.seek(2, io.SEEK_CUR) == len(data) - 4 and file.read(100) == data[-4:]
    assert file.seek(-5, io.SEEK_SET) == 0 and file.read(2) == data[:2]  # never before the start
    buffer = bytearray(8)
    assert file.readinto(buffer) == 8 and bytes(buffer) == data[2:10]
    file.seek(len(data) - 3)
    assert file.readinto(buffer) == 3 and bytes(buffer[:3]) == data[-3:]


def incomplete(keep, expected, n):
    """What a body that broke off raises, in turn: botocore's error, urllib3's (read() with its
    length enforced), a reset socket."""
    from botocore.exceptions import IncompleteReadError
    from urllib3.exceptions import IncompleteRead

    return [IncompleteReadError(actual_bytes=keep, expected_bytes=expected), IncompleteRead(keep, expected - keep),
            ConnectionResetError(104, "Connection reset by peer")][n % 3]


class Breaking:
    """S3 whose answers' bodies break off after ``keep`` bytes, for the first ``times`` GETs."""

    def __init__(self, s3, times, keep=100):
        self.s3, self.times, self.keep, self.ranges = s3, times, keep, []

    def get_object(self, **request):
        self.ranges.append(request.get("Range"))
        answer = self.s3.get_object(**request)
        if len(self.ranges) > self.times:
            return answer
        data, keep, error = answer["Body"].read(), self.keep, incomplete(self.keep, 10**6, len(self.ranges) - 1)

        class Body:
            def read(self):
                raise error

            def iter_chunks(self, size):
                yield data[:keep]
                raise error

        return {**answer, "Body": Body()}


def test_a_stream_that_breaks_off_is_read_on_from_the_first_byte_not_yet_had(s3):
    data = bytes(range(256)) * 4
    s3.put_object(Bucket=BUCKET, Key="k", Body=data)
    broken = Breaking(s3, times=2)
    assert b"".join(s3file.download(broken, BUCKET, "k", 10, 1000)) == data[10:1000]
    assert broken.ranges == ["bytes=10-999", "bytes=110-999", "bytes=210-999"]


def test_a_stream_that_breaks_off_after_its_last_byte_is_not_asked_for_again(s3):
    """Every byte had: no GET of an empty range (which S3 would answer with the whole object)."""
    data = bytes(range(200))
    s3.put_object(Bucket=BUCKET, Key="k", Body=data)
    broken = Breaking(s3, times=1, keep=190)
    assert b"".join(s3file.download(broken, BUCKET, "k", 10, 200)) == data[10:200]
    assert broken.ranges == ["bytes=10-199"]


def test_a_stream_that_keeps_breaking_off_fails_after_its_attempts(s3):
    from botocore.exceptions import IncompleteReadError

    s3.put_object(Bucket=BUCKET, Key="k", Body=b"x" * 1000)
    broken = Breaking(s3, times=s3file.READ_ATTEMPTS)
    with pytest.raises(IncompleteReadError):  # the fourth error: botocore's again
        b"".join(s3file.download(broken, BUCKET, "k", 0, 1000))
    assert len(broken.ranges) == s3file.READ_ATTEMPTS == 4


def test_a_whole_read_that_breaks_off_is_read_again_up_to_its_attempts(s3):
    from botocore.exceptions import IncompleteReadError

    s3.put_object(Bucket=BUCKET, Key="k", Body=b"0123456789")
    broken = Breaking(s3, times=3)
    assert s3file.read_object(broken, BUCKET, "k", 2, 5) == b"2345"
    assert broken.ranges == ["bytes=2-5"] * 4
    broken = Breaking(s3, times=4)
    with pytest.raises(IncompleteReadError):
        s3file.read_object(broken, BUCKET, "k")
    assert broken.ranges == [None] * 4


def test_the_batch_client_tries_failed_requests_again_and_waits_on_s3_a_bounded_time(monkeypatch):
    from serving.batch import steps
    from serving.settings import Settings

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    steps.configure(Settings(model_bucket="b", s3_read_timeout_seconds=7.5))
    try:
        config = steps.s3().meta.config
        assert config.retries == {"mode": "standard", "total_max_attempts": 6}
        assert (config.read_timeout, config.connect_timeout) == (7.5, 5)
        assert steps.s3() is steps.s3()
        assert Settings(model_bucket="b").s3_read_timeout_seconds == 60  # a part copy can take long
        assert Settings.from_env({"MODEL_BUCKET": "b", "S3_READ_TIMEOUT_SECONDS": "3"}).s3_read_timeout_seconds == 3
    finally:
        steps.configure(Settings(model_bucket="b"))


def test_the_batch_steps_read_the_bundle_store_as_patiently_as_boto3(monkeypatch):
    from serving.batch import steps
    from serving.store.s3 import S3Reader

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    made = steps.reader()
    assert isinstance(made, S3Reader) and (made.attempts, made.budget) == (steps.S3_ATTEMPTS, 60.0)
    assert S3Reader.from_env().attempts == 3  # the API's: a request waits on it

"""The serving function's S3 reader: botocore's signatures, boto-style answers and errors."""

import http.client
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from serving.store import bundles
from serving.store.s3 import (
    EMPTY_SHA256,
    ConfigurationError,
    S3Error,
    S3Reader,
    error_status,
    signing_headers,
)

from tests.unit.conftest import BUCKET


@pytest.fixture
def s3(moto_s3):
    """What the bucket's HTTP answers are (boto3 writes, the functions' reader reads): moto's server."""
    return moto_s3


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("https://models.s3.eu-west-1.amazonaws.com/models/bc/versions/000001/model.npz", None),
        ("http://127.0.0.1:4566/b/models/x%20y/champion.json", {"if-none-match": '"abc"'}),
        ("https://b.s3.eu-west-1.amazonaws.com/k?versionId=3&a=b%2Fc&empty=&x~y=1", None),
        ("https://b.s3.eu-west-1.amazonaws.com", None),
    ],
)
def test_signatures_equal_botocores(url, extra):
    request = AWSRequest(method="GET", url=url,
                         headers={"x-amz-content-sha256": EMPTY_SHA256, **(extra or {})})
    S3SigV4Auth(Credentials("AKIDEXAMPLE", "se/cret+", "token"), "s3", "eu-west-1").add_auth(request)
    when = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = signing_headers("GET", url, "eu-west-1", "AKIDEXAMPLE", "se/cret+", "token",
                           now=when, extra_headers=extra)
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-security-token"] == "token"
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]


def test_without_a_session_token_none_is_signed():
    headers = signing_headers("GET", "https://b.s3.us-east-1.amazonaws.com/k", "us-east-1", "a", "b")
    assert "x-amz-security-token" not in headers
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date," in headers["authorization"]
    assert headers["x-amz-date"].endswith("Z") and len(headers["x-amz-date"]) == 16


class Recorder(BaseHTTPRequestHandler):
    """A stand-in for S3 that writes down each request and answers what the test scripted."""

    answers: list = []
    seen: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.answer()

    def answer(self, **noted):
        """Write the request down (before answering), then send the next scripted answer."""
        self.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                          "method": self.command, "client_port": self.client_address[1], **noted})
        status, headers, body = self.answers.pop(0)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        cut = headers.pop("X-Cut-At", None)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut is not None:  # the whole length promised, part of the body sent, the connection closed
            self.wfile.write(body[:cut])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def local_server(recorder):
    """A local server answering with ``recorder`` (its script and notes emptied): (endpoint, recorder)."""
    recorder.answers, recorder.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", recorder
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_s3():
    yield from local_server(Recorder)


ENV = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "se/cret", "AWS_SESSION_TOKEN": "tok",
       "AWS_REGION": "eu-west-2"}


def test_a_get_is_signed_for_the_environments_credentials_and_region(fake_s3):
    endpoint, recorder = fake_s3
    recorder.answers = [(200, {"ETag": '"e1"'}, b"hello")]
    reader = S3Reader.from_env({**ENV, "AWS_ENDPOINT_URL": endpoint + "/"})
    answer = reader.get_object(Bucket="bkt", Key="models/a b/c.json", IfNoneMatch='"e0"')
    assert answer["Body"].read() == b"hello" and answer["ETag"] == '"e1"'
    [request] = recorder.seen
    assert request["method"] == "GET"
    assert request["path"] == "/bkt/models/a%20b/c.json"
    headers = request["headers"]
    assert headers["if-none-match"] == '"e0"'
    assert headers["x-amz-security-token"] == "tok"
    # the signature a correct signer (checked against botocore's above) gives these credentials
    when = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expected = signing_headers("GET", endpoint + request["path"], "eu-west-2", "AKID", "se/cret", "tok", now=when,
                               extra_headers={"if-none-match": '"e0"'})
    assert headers["authorization"] == expected["authorization"]
    assert "Credential=AKID/" in expected["authorization"] and "/eu-west-2/s3/aws4_request" in expected["authorization"]


def test_the_region_falls_back_to_the_default_region_then_us_east_1():
    base = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
    assert S3Reader.from_env({**base, "AWS_DEFAULT_REGION": "ap-south-1"}).region == "ap-south-1"
    assert S3Reader.from_env({**base, "AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "x"}).region == "eu-north-1"
    assert S3Reader.from_env(base).region == "us-east-1"
    reader = S3Reader.from_env({**base, "AWS_SESSION_TOKEN": "t", "AWS_ENDPOINT_URL_S3": "http://s3.local:1",
                                "AWS_ENDPOINT_URL": "http://other:2"})
    assert (reader.access_key, reader.secret_key, reader.session_token) == ("a", "b", "t")
    assert reader.endpoint == "http://s3.local:1"
    assert S3Reader.from_env(base).session_token is None and S3Reader.from_env(base).endpoint is None


def test_not_modified_and_missing_objects_are_errors_with_their_status(fake_s3):
    endpoint, recorder = fake_s3
    recorder.answers = [
        (304, {}, b""),
        (404, {"Content-Type": "application/xml"},
         b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code><Message>The key does not exist</Message></Error>"),
        (503, {}, b"upstream down " * 30),
        (403, {}, b"<Error><Code>AccessDenied</Code></Error>"),
        (500, {}, b"\xff broken \xfe"),
        (300, {}, b""),  # any status from 300 up is not the object
    ]
    reader = S3Reader("us-east-1", "a", "b", endpoint=endpoint, attempts=1)  # (5xx are tried again)
    for status, code, message in ((304, "304", ""), (404, "NoSuchKey", "The key does not exist"),
                                  (503, "503", ("upstream down " * 30)[:200]), (403, "AccessDenied", ""),
                                  (500, "500", "\ufffd broken \ufffd"), (300, "300", "")):
        with pytest.raises(S3Error) as caught:
            reader.get_object(Bucket="b", Key="k")
        assert error_status(caught.value) == status
        assert caught.value.response["Error"] == {"Code": code, "Message": message}
        assert str(caught.value) == f"{code} ({status}): {message}"


def test_a_silent_server_times_out_at_the_readers_timeout():
    import socket
    import time

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        reader = S3Reader("us-east-1", "a", "b", endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}",
                          timeout=0.5, budget=10)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            reader.get_object(Bucket="b", Key="k")
        assert 0.45 * 3 <= time.monotonic() - started < 0.5 * 3 + 1.5  # three tries, up to 1.4 s of pauses
    assert S3Reader("us-east-1", "a", "b").timeout == 2.0


class KeepAlive(Recorder):
    """HTTP/1.1: the connection stays open between requests, unless the script says to drop it."""

    protocol_version = "HTTP/1.1"
    drop_after: set = set()

    def do_GET(self):  # noqa: N802 - http.server's name
        super().do_GET()  # (what it writes down, the client's port too, is written before it answers)
        if len(self.seen) in self.drop_after:  # closed without saying so, as an idle server does
            self.close_connection = True


@pytest.fixture
def keep_alive_s3():
    KeepAlive.drop_after = set()
    yield from local_server(KeepAlive)


def test_calls_share_one_kept_alive_connection(keep_alive_s3):
    endpoint, recorder = keep_alive_s3
    recorder.answers = [(200, {}, b"pointer"), (200, {}, b"manifest"), (304, {}, b""), (200, {}, b"arrays")]
    reader = S3Reader("us-east-1", "a", "b", endpoint=endpoint)
    assert reader.get_object(Bucket="b", Key="1")["Body"].read() == b"pointer"
    assert reader.get_object(Bucket="b", Key="2")["Body"].read() == b"manifest"
    with pytest.raises(S3Error):  # an error answer keeps the connection too
        reader.get_object(Bucket="b", Key="3", IfNoneMatch='"e"')
    assert reader.get_object(Bucket="b", Key="4")["Body"].read() == b"arrays"
    assert [r["path"] for r in recorder.seen] == ["/b/1", "/b/2", "/b/3", "/b/4"]
    assert len({r["client_port"] for r in recorder.seen}) == 1


def test_a_connection_the_server_dropped_is_reopened_and_the_call_made_once_more(keep_alive_s3):
    endpoint, recorder = keep_alive_s3
    recorder.answers = [(200, {}, b"first"), (200, {}, b"second"), (200, {}, b"third")]
    recorder.drop_after = {1}
    reader = S3Reader("us-east-1", "a", "b", endpoint=endpoint)
    assert reader.get_object(Bucket="b", Key="1")["Body"].read() == b"first"
    time.sleep(0.1)  # the server has closed its end by now
    assert reader.get_object(Bucket="b", Key="2")["Body"].read() == b"second"
    assert reader.get_object(Bucket="b", Key="3")["Body"].read() == b"third"
    assert [r["path"] for r in recorder.seen] == ["/b/1", "/b/2", "/b/3"]
    ports = [r["client_port"] for r in recorder.seen]
    assert ports[0] != ports[1] == ports[2]


def test_a_connection_idle_longer_than_s3_keeps_one_is_not_tried_again(keep_alive_s3, monkeypatch):
    # S3 drops idle connections after ~20 s, sometimes without a word: waiting on one would hang
    import serving.store.s3 as s3_module

    endpoint, recorder = keep_alive_s3
    recorder.answers = [(200, {}, b"a"), (200, {}, b"b"), (200, {}, b"c")]
    now = [1000.0]
    monkeypatch.setattr(s3_module, "monotonic", lambda: now[0])
    reader = S3Reader("us-east-1", "a", "b", endpoint=endpoint)
    reader.get_object(Bucket="b", Key="1")
    now[0] += s3_module.IDLE_SECONDS  # idle for exactly the limit: still used
    reader.get_object(Bucket="b", Key="2")
    now[0] += s3_module.IDLE_SECONDS + 0.5  # idle past it: a new connection
    reader.get_object(Bucket="b", Key="3")
    ports = [r["client_port"] for r in recorder.seen]
    assert ports[0] == ports[1] != ports[2]
    assert 10 <= s3_module.IDLE_SECONDS < 20


def test_a_server_that_drops_every_connection_is_tried_three_times_then_the_error_raised():
    import http.client
    import socket
    import threading

    accepted = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        def drop_every_connection():
            while True:
                try:
                    connection, _ = server.accept()
                except OSError:  # the server closed: the test is over
                    return
                accepted.append(connection.getpeername())
                connection.close()

        threading.Thread(target=drop_every_connection, daemon=True).start()
        reader = S3Reader("us-east-1", "a", "b", endpoint=f"http://127.0.0.1:{server.getsockname()[1]}", timeout=2)
        with pytest.raises((OSError, http.client.HTTPException)):
            reader.get_object(Bucket="b", Key="k")
    assert len(accepted) == 3  # the reader's tries, not again and again


def test_a_refused_connection_is_an_error_not_a_retry_loop():
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    reader = S3Reader("us-east-1", "a", "b", endpoint=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(ConnectionRefusedError):
        reader.get_object(Bucket="b", Key="k")
    with pytest.raises(ConnectionRefusedError):  # and the next call tries again from scratch
        reader.get_object(Bucket="b", Key="k")


def test_reads_objects_and_answers_not_modified_from_moto(s3):
    s3.put_object(Bucket=BUCKET, Key="models/a b/c.json", Body=b'{"x": 1}')
    reader = S3Reader.from_env()
    first = reader.get_object(Bucket=BUCKET, Key="models/a b/c.json")
    assert first["Body"].read() == b'{"x": 1}'
    with pytest.raises(S3Error) as caught:
        reader.get_object(Bucket=BUCKET, Key="models/a b/c.json", IfNoneMatch=first["ETag"])
    assert error_status(caught.value) == 304


def test_a_missing_key_is_a_404_no_such_key(s3):
    with pytest.raises(S3Error) as caught:
        S3Reader.from_env().get_object(Bucket=BUCKET, Key="models/none.json")
    assert caught.value.response["Error"]["Code"] == "NoSuchKey"
    assert error_status(caught.value) == 404
    assert bundles.read_champion(S3Reader.from_env(), BUCKET, "none") is None


def test_the_status_of_boto3_errors_and_of_others(s3):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket=BUCKET, Key="missing")
    assert error_status(caught.value) == 404
    assert error_status(ValueError("x")) is None
    assert error_status(type("E", (Exception,), {"response": None})()) is None
    assert error_status(type("E", (Exception,), {"response": {}})()) is None


@pytest.mark.parametrize(("env", "words"), [
    ({"AWS_ACCESS_KEY_ID": "x"}, "missing AWS_SECRET_ACCESS_KEY in the environment"),
    ({"AWS_SECRET_ACCESS_KEY": "x", "AWS_ACCESS_KEY_ID": ""}, "missing AWS_ACCESS_KEY_ID in the environment"),
    ({}, "missing AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"),
])
def test_without_credentials_it_says_which_are_missing(env, words):
    with pytest.raises(ConfigurationError) as caught:
        S3Reader.from_env(env)
    assert str(caught.value) == words


def test_the_environment_is_read_when_none_is_given(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    assert S3Reader.from_env().access_key == "from-env"
    assert S3Reader.from_env({"AWS_ACCESS_KEY_ID": "given", "AWS_SECRET_ACCESS_KEY": "s"}).access_key == "given"


@pytest.mark.parametrize("endpoint", ["ftp://x", "file:///etc/passwd", "s3.local:9000"])
def test_an_endpoint_that_is_not_http_is_refused(endpoint):
    with pytest.raises(ConfigurationError) as caught:
        S3Reader("us-east-1", "a", "b", endpoint=endpoint)
    assert str(caught.value) == f"the S3 endpoint must be http(s): {endpoint!r}"


def test_endpoints_keep_their_path_and_lose_trailing_slashes():
    assert S3Reader("r", "a", "b", endpoint="https://s3.local//").endpoint == "https://s3.local"
    assert S3Reader("r", "a", "b", endpoint="https://S3.BOX/").endpoint == "https://S3.BOX"
    assert S3Reader("r", "a", "b", endpoint="https://s3.local/base/").url("b", "k") == "https://s3.local/base/b/k"


def test_aws_endpoints_are_https_and_virtual_hosted():
    reader = S3Reader("eu-west-1", "a", "b")
    assert reader.url("bucket", "models/x y~(1).json") == (
        "https://bucket.s3.eu-west-1.amazonaws.com/models/x%20y~%281%29.json")
    import http.client

    # spoken to over TLS (a connection opens on its first request: none is made here)
    assert isinstance(reader._connection("https", "bucket.s3.eu-west-1.amazonaws.com"), http.client.HTTPSConnection)
    assert not isinstance(reader._connection("http", "localhost:4566"), http.client.HTTPSConnection)


def test_the_signing_time_is_utc_whatever_the_machines_time_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        before = datetime.now(UTC)
        stamp = signing_headers("GET", "https://b.s3.us-east-1.amazonaws.com/k", "us-east-1", "a", "b")["x-amz-date"]
        after = datetime.now(UTC)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    signed = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before.replace(microsecond=0) <= signed <= after


def test_a_put_is_signed_with_its_bodys_hash_as_botocore_signs_it():
    import hashlib

    url = "https://b.s3.eu-west-1.amazonaws.com/capture/m/date=2026-11-26/x.jsonl"
    body = b'{"row":[1,2]}\n'
    payload = hashlib.sha256(body).hexdigest()
    request = AWSRequest(method="PUT", url=url, data=body,
                         headers={"x-amz-content-sha256": payload, "content-type": "application/x-ndjson"})
    S3SigV4Auth(Credentials("AKIDEXAMPLE", "secret", None), "s3", "eu-west-1").add_auth(request)
    when = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = signing_headers("PUT", url, "eu-west-1", "AKIDEXAMPLE", "secret", now=when,
                           extra_headers={"content-type": "application/x-ndjson"}, payload_sha256=payload)
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-content-sha256"] == payload


def test_writes_objects_to_moto_that_read_back_the_same(s3):
    reader = S3Reader.from_env()
    answer = reader.put_object(Bucket=BUCKET, Key="capture/m/a b.jsonl", Body=b"one\ntwo\n",
                               ContentType="application/x-ndjson")
    stored = s3.get_object(Bucket=BUCKET, Key="capture/m/a b.jsonl")
    assert stored["Body"].read() == b"one\ntwo\n"
    assert stored["ContentType"] == "application/x-ndjson"
    assert answer["ETag"] == stored["ETag"]


class PutRecorder(Recorder):
    """Recorder that also takes PUTs (and keeps their bodies)."""

    def do_PUT(self):  # noqa: N802 - http.server's name
        self.answer(body=self.rfile.read(int(self.headers.get("Content-Length", 0))))


@pytest.fixture
def put_s3():
    yield from local_server(PutRecorder)


def test_a_put_sends_its_body_signed_with_the_bodys_hash(put_s3):
    import hashlib

    endpoint, recorder = put_s3
    recorder.answers = [(200, {"ETag": '"p1"'}, b"")]
    reader = S3Reader("eu-west-2", "AKID", "se/cret", "tok", endpoint=endpoint)
    body = b'{"row":[1,2]}\n'
    assert reader.put_object(Bucket="bkt", Key="capture/a b.jsonl", Body=body,
                             ContentType="application/x-ndjson") == {"ETag": '"p1"'}
    [request] = recorder.seen
    assert (request["method"], request["path"], request["body"]) == ("PUT", "/bkt/capture/a%20b.jsonl", body)
    headers = request["headers"]
    payload = hashlib.sha256(body).hexdigest()
    assert headers["x-amz-content-sha256"] == payload != EMPTY_SHA256
    assert headers["content-type"] == "application/x-ndjson"
    when = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expected = signing_headers("PUT", endpoint + request["path"], "eu-west-2", "AKID", "se/cret", "tok", now=when,
                               extra_headers={"content-type": "application/x-ndjson"}, payload_sha256=payload)
    assert headers["authorization"] == expected["authorization"]


def test_a_put_without_a_content_type_stores_octet_stream(s3):
    S3Reader.from_env().put_object(Bucket=BUCKET, Key="capture/raw", Body=b"\x00\x01")
    stored = s3.get_object(Bucket=BUCKET, Key="capture/raw")
    assert stored["Body"].read() == b"\x00\x01" and stored["ContentType"] == "application/octet-stream"


def test_a_listing_without_a_prefix_lists_the_whole_bucket(s3):
    for key in ("a/1", "b/2", "c"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"xy")
    page = S3Reader.from_env().list_objects_v2(Bucket=BUCKET)
    assert page["Contents"] == [{"Key": "a/1", "Size": 2}, {"Key": "b/2", "Size": 2}, {"Key": "c", "Size": 2}]
    assert page["CommonPrefixes"] == [] and page["IsTruncated"] is False


def test_a_listing_request_percent_encodes_its_query_and_reads_the_answer_as_boto3_shapes_it(fake_s3):
    endpoint, recorder = fake_s3
    answer = (b"<?xml version='1.0'?><ListBucketResult xmlns='http://s3.amazonaws.com/doc/2006-03-01/'>"
              b"<IsTruncated>true</IsTruncated><NextContinuationToken>t2</NextContinuationToken>"
              b"<Contents><Key>models/a b/x</Key><Size>7</Size></Contents>"
              b"<Contents><Key>models/a b/empty</Key></Contents>"
              b"<CommonPrefixes><Prefix>models/a b/p/</Prefix></CommonPrefixes></ListBucketResult>")
    recorder.answers = [(200, {}, answer)]
    reader = S3Reader("us-east-1", "a", "b", endpoint=endpoint)
    page = reader.list_objects_v2(Bucket="bkt", Prefix="models/a b/", Delimiter="/", ContinuationToken="t+1=",
                                  MaxKeys=5)
    assert page == {"Contents": [{"Key": "models/a b/x", "Size": 7}, {"Key": "models/a b/empty", "Size": 0}],
                    "CommonPrefixes": [{"Prefix": "models/a b/p/"}], "IsTruncated": True,
                    "NextContinuationToken": "t2"}
    [request] = recorder.seen
    assert request["path"] == ("/bkt/?continuation-token=t%2B1%3D&delimiter=%2F&list-type=2&max-keys=5"
                               "&prefix=models%2Fa%20b%2F")


# ---- S3 failing: tries, backoff, budgets


@pytest.fixture
def pauses(monkeypatch):
    import serving.store.s3 as s3_module

    slept = []
    monkeypatch.setattr(s3_module.time, "sleep", slept.append)
    return slept


def test_5xx_answers_are_tried_again_with_growing_jittered_pauses_until_one_succeeds(fake_s3, pauses):
    endpoint, recorder = fake_s3
    slow_down = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    recorder.answers = [(503, {}, slow_down), (500, {}, b""), (200, {}, b"the object")]
    reader = S3Reader("us-east-1", "a", "b", endpoint=endpoint, jitter=lambda: 0.5)
    assert reader.get_object(Bucket="b", Key="k")["Body"].read() == b"the object"
    assert len(recorder.seen) == 3
    assert pauses == [0.5 * 0.1, 0.5 * 0.2]  # full jitter: a share of base * 2**try
    dates = {r["headers"]["x-amz-date"] for r in recorder.seen}
    assert all(r["headers"]["authorization"].startswith("AWS4-HMAC-SHA256") for r in recorder.seen) and dates


def test_the_pause_is_capped_and_no_pause_follows_the_last_try(fake_s3, pauses):
    endpoint, recorder = fake_s3
    recorder.answers = [(503, {}, b"")] * 6
    reader = S3Reader("us-east-1", "a", "b", endpoint=endpoint, attempts=6, budget=100, jitter=lambda: 1.0)
    with pytest.raises(S3Error) as caught:
        reader.get_object(Bucket="b", Key="k")
    assert error_status(caught.value) == 503  # the last answer is the error raised
    assert pauses == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert len(recorder.seen) == 6


@pytest.mark.parametrize("status", [400, 403, 404, 412])
def test_client_errors_are_answers_not_retried(fake_s3, pauses, status):
    endpoint, recorder = fake_s3
    recorder.answers = [(status, {}, b"<Error><Code>No</Code></Error>"), (200, {}, b"never read")]
    with pytest.raises(S3Error):
        S3Reader("us-east-1", "a", "b", endpoint=endpoint).get_object(Bucket="b", Key="k")
    assert len(recorder.seen) == 1 and pauses == []


def test_a_body_cut_short_is_an_error_and_tried_again(fake_s3, pauses):
    endpoint, recorder = fake_s3
    recorder.answers = [(200, {"X-Cut-At": 5}, b"0123456789"), (200, {}, b"0123456789")]
    reader = S3Reader("us-east-1", "a", "b", endpoint=endpoint)
    assert reader.get_object(Bucket="b", Key="k")["Body"].read() == b"0123456789"
    assert len(recorder.seen) == 2
    recorder.answers = [(200, {"X-Cut-At": 3}, b"0123456789")]
    with pytest.raises(http.client.IncompleteRead):
        S3Reader("us-east-1", "a", "b", endpoint=endpoint, attempts=1).get_object(Bucket="b", Key="k")


def test_an_empty_not_modified_answer_is_not_taken_for_a_cut_body(fake_s3):
    endpoint, recorder = fake_s3
    recorder.answers = [(304, {"Content-Length": "9"}, b"")]  # the object's length, as S3 may send it
    with pytest.raises(S3Error) as caught:
        S3Reader("us-east-1", "a", "b", endpoint=endpoint).get_object(Bucket="b", Key="k", IfNoneMatch='"e"')
    assert error_status(caught.value) == 304 and len(recorder.seen) == 1


def test_a_call_gives_up_when_its_budget_is_spent_whatever_its_tries():
    import socket

    with socket.create_server(("127.0.0.1", 0)) as silent:
        reader = S3Reader("us-east-1", "a", "b", endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}",
                          timeout=5, attempts=10, budget=0.6)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            reader.get_object(Bucket="b", Key="k")
        assert 0.55 <= time.monotonic() - started < 0.9  # the socket's wait shortened to what was left


def test_within_sets_one_budget_for_many_calls_and_an_inner_block_keeps_the_earlier_deadline(monkeypatch):
    import serving.store.s3 as s3_module

    now = [100.0]
    monkeypatch.setattr(s3_module, "monotonic", lambda: now[0])
    reader = S3Reader("us-east-1", "a", "b", endpoint="http://127.0.0.1:9")
    assert reader._deadline is None
    with reader.within(5):
        assert reader._deadline == 105.0
        with reader.within(10):
            assert reader._deadline == 105.0
        with reader.within(1):
            assert reader._deadline == 101.0
        assert reader._deadline == 105.0
        now[0] = 106.0
        with pytest.raises(TimeoutError, match="budget"):  # spent: no try at all
            reader.get_object(Bucket="b", Key="k")
    assert reader._deadline is None


@pytest.mark.parametrize(("length", "piece", "gap", "budget"), [
    (300_000, 10_000, 0.1, 0.5),  # 10 KB every 0.1 s: each read in time, the whole far too late
    (300, 1, 0.2, 0.8),  # a byte every 0.2 s: each socket wait in time, a full 64 KiB chunk never
])
def test_a_body_that_trickles_in_is_held_to_the_budget(length, piece, gap, budget):
    import socket
    import threading

    with socket.create_server(("127.0.0.1", 0)) as server:
        def trickle():
            connection, _ = server.accept()
            connection.recv(65536)
            connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode())
            try:
                for _ in range(length // piece):
                    connection.sendall(b"x" * piece)
                    time.sleep(gap)
            except OSError:
                pass
            connection.close()

        threading.Thread(target=trickle, daemon=True).start()
        reader = S3Reader("us-east-1", "a", "b", endpoint=f"http://127.0.0.1:{server.getsockname()[1]}",
                          timeout=1, attempts=1, budget=budget)
        started = time.monotonic()
        with pytest.raises(TimeoutError):  # (the socket's wait, cut to what was left, or the budget's check)
            reader.get_object(Bucket="b", Key="k")
        assert budget - 0.05 <= time.monotonic() - started < budget + 0.4

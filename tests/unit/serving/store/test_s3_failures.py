"""The S3 reader when S3 fails: timeouts, dropped and kept-alive connections, tries, backoff, budgets."""

import http.client
import time

import pytest
from serving.store.s3 import S3Error, S3Reader, error_status


def test_a_silent_server_times_out_at_the_readers_timeout_and_each_tries_connection_is_closed(monkeypatch):
    import socket

    closed = []
    real_close = http.client.HTTPConnection.close
    monkeypatch.setattr(http.client.HTTPConnection, "close", lambda c: closed.append(c) or real_close(c))
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        reader = S3Reader("us-east-1", "a", "b", endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}",
                          timeout=0.5, budget=10)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            reader.get_object(Bucket="b", Key="k")
        assert 0.45 * 3 <= time.monotonic() - started < 0.5 * 3 + 1.5  # three tries, up to 1.4 s of pauses
    assert len(set(map(id, closed))) == 3  # a timed-out connection is not kept (http.client leaves it open)
    assert S3Reader("us-east-1", "a", "b").timeout == 2.0


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
        with pytest.raises(TimeoutError, match="^the S3 call's time budget was spent$"):  # spent: no try at all
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


def test_a_socket_wait_past_the_deadline_is_refused_before_it_starts():
    reader = S3Reader("us-east-1", "a", "b", endpoint="http://127.0.0.1:9", timeout=2)
    with pytest.raises(TimeoutError, match="^the S3 answer did not arrive within the call's time budget$"):
        reader._wait(time.monotonic() - 0.01)
    assert reader._wait(time.monotonic() + 60) == 2 and 0 < reader._wait(time.monotonic() + 0.5) <= 0.5


def test_a_pause_that_would_end_past_the_budget_is_not_taken_and_the_failure_is_raised(fake_s3):
    """S3's own error, at once, rather than a sleep into the deadline and a timeout that hides it."""
    endpoint, recorder = fake_s3
    recorder.answers = [(503, {}, b"<Error><Code>SlowDown</Code></Error>")] * 10
    reader = S3Reader("us-east-1", "a", "b", endpoint=endpoint, attempts=10, budget=0.25, jitter=lambda: 1.0)
    started = time.monotonic()
    with pytest.raises(S3Error) as caught:
        reader.get_object(Bucket="b", Key="k")
    assert error_status(caught.value) == 503 and len(recorder.seen) == 2  # paused 0.1 s; 0.2 s more would pass 0.25
    assert time.monotonic() - started < 0.25


def test_a_cut_body_says_how_much_came_and_how_much_was_promised():
    """Ten bytes promised, three sent in two pieces, then the connection closed."""
    import socket
    import threading

    with socket.create_server(("127.0.0.1", 0)) as server:
        def cut():
            connection, _ = server.accept()
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01")
            time.sleep(0.05)
            connection.sendall(b"2")
            connection.close()

        threading.Thread(target=cut, daemon=True).start()
        reader = S3Reader("us-east-1", "a", "b", endpoint=f"http://127.0.0.1:{server.getsockname()[1]}", attempts=1)
        with pytest.raises(http.client.IncompleteRead) as caught:
            reader.get_object(Bucket="b", Key="k")
    assert (caught.value.partial, caught.value.expected) == (b"012", 7)
    assert str(caught.value) == "IncompleteRead(3 bytes read, 7 more expected)"


def test_a_body_of_many_socket_reads_is_read_whole(fake_s3):
    import serving.store.s3 as s3_module

    endpoint, recorder = fake_s3
    body = bytes(range(256)) * (3 * s3_module.CHUNK_BYTES // 256 + 7)
    recorder.answers = [(200, {}, body)]
    assert S3Reader("us-east-1", "a", "b", endpoint=endpoint).get_object(Bucket="b", Key="k")["Body"].read() == body


def test_every_request_is_sent_with_the_socket_wait_bounded_on_new_and_kept_connections(keep_alive_s3, monkeypatch):
    endpoint, recorder = keep_alive_s3
    recorder.answers = [(200, {}, b"a"), (200, {}, b"b")]
    waits = []
    real = http.client.HTTPConnection.request

    def request(connection, *args, **kwargs):
        waits.append(connection.sock.gettimeout() if connection.sock is not None else connection.timeout)
        return real(connection, *args, **kwargs)

    monkeypatch.setattr(http.client.HTTPConnection, "request", request)
    reader = S3Reader("us-east-1", "a", "b", endpoint=endpoint, timeout=1.5, budget=10)
    reader.get_object(Bucket="b", Key="1")
    reader.get_object(Bucket="b", Key="2")
    assert len({r["client_port"] for r in recorder.seen}) == 1  # the second on the kept connection
    assert len(waits) == 2 and all(wait is not None and 0 < wait <= 1.5 for wait in waits)

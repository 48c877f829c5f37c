"""An S3 object read as a batch worker reads it: a seekable file of ranged GETs (Parquet), or
its lines streamed with a read-ahead thread (CSV, JSON lines).

boto3 tries a failed request again (5xx, resets, timeouts: ``steps.s3``'s retry mode), but
not the reading of a body that breaks off after the answer began: these reads are tried
again here, a stream from the byte where it broke.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError

READ_BYTES = 1 << 20  # the input is streamed in chunks of this size
PREFETCH_CHUNKS = 4  # read ahead of the scoring, at most
READ_ATTEMPTS = 4  # a body that breaks off is read again, up to this many times in all
# what reading a body that broke off raises: botocore's IncompleteReadError, ResponseStreamingError,
# ReadTimeoutError (all BotoCoreError), urllib3's IncompleteRead (an http.client.HTTPException), or
# the socket's own error
BROKEN = (BotoCoreError, http.client.HTTPException, OSError)


def read_object(client, bucket: str, key: str, first: int | None = None, last: int | None = None) -> bytes:
    """An object's bytes (or bytes first..last, inclusive), read again if the download breaks off."""
    request = {"Bucket": bucket, "Key": key}
    if first is not None:
        request["Range"] = f"bytes={first}-{last}"
    for attempt in range(READ_ATTEMPTS):
        body = client.get_object(**request)["Body"]  # (a failed request is boto3's to try again)
        try:
            return body.read()
        except BROKEN:
            if attempt + 1 == READ_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def read_range(client, bucket: str, key: str, first: int, last: int) -> bytes:
    """Bytes first..last (inclusive) of an object."""
    return read_object(client, bucket, key, first, last)


class S3File(io.RawIOBase):
    """An S3 object as a read-only, seekable file: each read is one ranged GET. pyarrow reads a
    Parquet file's footer, then the column chunks of the row groups asked for (pre-buffered: a
    few large reads), so a worker downloads its own row groups only.

    Written here because boto3 has no seekable file object, and pyarrow's own S3 filesystem
    would need the endpoint and credentials passed again in its own settings and its AWS SDK
    initialised, for a few ranged reads.
    """

    def __init__(self, client, bucket: str, key: str, size: int) -> None:
        super().__init__()
        self.client = client
        self.bucket, self.key, self.size, self.position = bucket, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def read(self, size: int = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self.position + size)
        if end <= self.position:
            return b""
        data = read_range(self.client, self.bucket, self.key, self.position, end - 1)
        self.position += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@dataclass
class Read:
    """How much of its input a part read (bytes, or Parquet row groups), and how long the scoring
    waited for the download."""

    amount: int = 0
    waited: float = 0.0


def lines(client, bucket: str, key: str, start: int, end: int, read: Read):
    """The lines of bytes [start, end) of an object, streamed; ``read`` counts the bytes."""
    if end <= start:
        return
    pending = b""
    with contextlib.closing(prefetched(download(client, bucket, key, start, end), read=read)) as chunks:
        for chunk in chunks:
            read.amount += len(chunk)
            split = (pending + chunk).split(b"\n")
            pending = split.pop()
            yield from split
    if pending:
        yield pending


def download(client, bucket: str, key: str, start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end) of an object in chunks, from one ranged GET; if the stream breaks off,
    another GET from the first byte not yet had (READ_ATTEMPTS in all)."""
    at, broken = start, 0
    while at < end:
        body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={at}-{end - 1}")["Body"]
        try:
            for chunk in body.iter_chunks(READ_BYTES):
                at += len(chunk)
                yield chunk
            return
        except BROKEN:
            broken += 1
            if broken == READ_ATTEMPTS:
                raise


def prefetched(chunks: Iterator[bytes], depth: int = PREFETCH_CHUNKS, read: Read | None = None
               ) -> Iterator[bytes]:
    """The chunks of a download, read ahead by a thread: a worker scores one chunk while the next
    ones arrive (the socket read releases the GIL). At most ``depth`` chunks wait, so memory
    stays bounded; an error in the download is raised here; a consumer that stops early stops
    the reader too. ``read.waited`` adds up the time the consumer waited for a chunk."""
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    stop, done = threading.Event(), object()

    def read_ahead() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                waiting.put(chunk)
            waiting.put(done)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            waiting.put(error)

    reader = threading.Thread(target=read_ahead, name="s3-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            asked = time.perf_counter()
            item = waiting.get()
            if read is not None:
                read.waited += time.perf_counter() - asked
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # let a reader blocked on a full queue see the stop
            with contextlib.suppress(queue.Empty):
                waiting.get(timeout=0.05)

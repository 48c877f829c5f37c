"""Read objects from S3 with a signed GET (and write captured rows with a PUT): all the serving
function needs of AWS.

Why not boto3: importing boto3 and creating a client costs 0.2-0.3 s, more
than half of this function's whole cold start (see `make bench`), to make one
kind of call. This module signs that call with AWS Signature Version 4
(the algorithm in AWS's documentation; the tests check its signatures against
botocore's own signer) using only the standard library.

It offers the small part of boto3's S3 client that ``serving.bundle`` uses:
``get_object(Bucket=, Key=, IfNoneMatch=)`` returning ``{"Body", "ETag"}``,
``list_objects_v2(Bucket=, Prefix=, Delimiter=, ContinuationToken=, MaxKeys=)``,
``put_object(Bucket=, Key=, Body=, ContentType=)`` (request capture), and errors shaped as
boto3's (``error_status`` reads the HTTP status of both).

The transport is http.client with one kept-alive connection per endpoint: a model's
pointer, manifest and arrays, and every later refresh check, share one TLS handshake
(urllib.request opened a connection, and loaded the CA certificates, per call; its
import also pulled in tempfile, shutil, bz2 and lzma: ~8 ms of the cold start).

S3 that fails is waited on for a bounded time: a call is tried again after a 5xx answer (S3's
InternalError, SlowDown), a reset or dropped connection, a timeout or a body cut short, with
full-jitter backoff, and gives up when its tries or its time budget are spent (the constants
below; ``within`` sets one budget for a group of calls, as a model load is).

Credentials come from the environment, as Lambda provides them
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: ``serving.settings.AwsAccess``
reads them). The endpoint is AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL when set (LocalStack sets it for its
functions), else the bucket's regional HTTPS endpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import io
import random
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from email.message import Message
from time import monotonic

from serving.settings import AwsAccess, ConfigurationError

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# How long S3 may keep a call waiting (docs/serving.md, "When S3 fails"): each socket operation
# (connect, a read) at most TIMEOUT_SECONDS, at most ATTEMPTS tries with full-jitter backoff
# between them (BACKOFF_BASE * 2**try, capped), the whole call within BUDGET_SECONDS; a caller
# bounds a group of calls with ``within``. The API function's timeout is 10 s.
TIMEOUT_SECONDS = 2.0
ATTEMPTS = 3
BUDGET_SECONDS = 6.0
BACKOFF_BASE = 0.1
BACKOFF_CAP = 1.0
CHUNK_BYTES = 1 << 16
# S3 closes a connection idle for about 20 s, sometimes silently: an older one is not tried
IDLE_SECONDS = 15.0


class S3Error(Exception):
    """An S3 error shaped as boto3's ClientError is: ``response["Error"]["Code"]`` and the HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.response = {"Error": {"Code": code, "Message": message},
                         "ResponseMetadata": {"HTTPStatusCode": status}}


def error_status(error: BaseException) -> int | None:
    """The HTTP status of a failed S3 call (boto3's ClientError or S3Error); None for other errors."""
    response = getattr(error, "response", None)
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(response, dict) else None


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_headers(
    method: str, url: str, region: str, access_key: str, secret_key: str,
    session_token: str | None = None, now: datetime | None = None,
    extra_headers: dict[str, str] | None = None, payload_sha256: str = EMPTY_SHA256,
) -> dict[str, str]:
    """The headers that sign a request for the s3 service (SigV4); ``payload_sha256`` is the body's hash."""
    now = now or datetime.now(UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    parts = urllib.parse.urlsplit(url)
    headers = {"host": parts.netloc, "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date}
    if session_token:
        headers["x-amz-security-token"] = session_token
    for key, value in (extra_headers or {}).items():
        headers[key.lower()] = value
    signed = sorted(headers)
    query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    )
    canonical = "\n".join([
        method,
        parts.path,  # already URI-encoded once, and not normalised: as S3 expects
        query,
        "".join(f"{k}:{headers[k].strip()}\n" for k in signed),
        ";".join(signed),
        payload_sha256,
    ])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return headers


class S3Reader:
    def __init__(self, region: str, access_key: str, secret_key: str,
                 session_token: str | None = None, endpoint: str | None = None,
                 timeout: float = TIMEOUT_SECONDS, attempts: int = ATTEMPTS, budget: float = BUDGET_SECONDS,
                 jitter: Callable[[], float] = random.random) -> None:
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise ConfigurationError(f"the S3 endpoint must be http(s): {endpoint!r}")
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.timeout = timeout  # the longest wait for one socket operation (connect, a read)
        self.attempts = attempts
        self.budget = budget  # the longest a call takes, tries and pauses included
        self.jitter = jitter  # a number in [0, 1): the share of the backoff slept
        self._deadline: float | None = None  # set by within()
        # (scheme, host) → (the connection, when it was last used)
        self._connections: dict[tuple[str, str], tuple[http.client.HTTPConnection, float]] = {}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **options) -> S3Reader:
        """A reader with the environment's credentials, region and endpoint; ``options`` are the
        constructor's (``timeout``, ``attempts``, ``budget``)."""
        access = AwsAccess.from_env(env)
        return cls(region=access.region, access_key=access.access_key, secret_key=access.secret_key,
                   session_token=access.session_token, endpoint=access.endpoint, **options)

    def url(self, bucket: str, key: str) -> str:
        path = urllib.parse.quote(key)  # letters, digits, "/" and "-_.~" stay as they are
        if self.endpoint:  # a local endpoint: path-style addressing
            return f"{self.endpoint}/{bucket}/{path}"
        return f"https://{bucket}.s3.{self.region}.amazonaws.com/{path}"

    def get_object(self, Bucket: str, Key: str, IfNoneMatch: str | None = None) -> dict:  # noqa: N803 - boto3's names
        extra = {"if-none-match": IfNoneMatch} if IfNoneMatch else None
        body, headers = self._get(self.url(Bucket, Key), extra)
        return {"Body": io.BytesIO(body), "ETag": headers.get("ETag")}

    def list_objects_v2(self, Bucket: str, Prefix: str = "", Delimiter: str | None = None,  # noqa: N803
                        ContinuationToken: str | None = None, MaxKeys: int | None = None) -> dict:  # noqa: N803
        """One page of keys (and common prefixes) under a prefix, shaped as boto3's answer."""
        query = {"list-type": "2", "prefix": Prefix, "delimiter": Delimiter,
                 "continuation-token": ContinuationToken, "max-keys": MaxKeys}
        encoded = urllib.parse.urlencode({k: v for k, v in sorted(query.items()) if v is not None},
                                         quote_via=urllib.parse.quote, safe="-_.~")
        body, _ = self._get(f"{self.url(Bucket, '')}?{encoded}", None)
        from xml.etree import ElementTree  # nosec B405 - imported when needed: no model load reads XML

        root = ElementTree.fromstring(body)  # noqa: S314  # nosec B314 - from the configured S3 endpoint
        page: dict = {
            "Contents": [{"Key": item.findtext("{*}Key"), "Size": int(item.findtext("{*}Size") or 0)}
                         for item in root.findall("{*}Contents")],
            "CommonPrefixes": [{"Prefix": item.findtext("{*}Prefix")}
                               for item in root.findall("{*}CommonPrefixes")],
            "IsTruncated": root.findtext("{*}IsTruncated") == "true",
        }
        if page["IsTruncated"]:
            page["NextContinuationToken"] = root.findtext("{*}NextContinuationToken")
        return page

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str = "application/octet-stream",  # noqa: N803
                   ) -> dict:
        """Write one object; returns ``{"ETag"}``."""
        _, headers = self._send("PUT", self.url(Bucket, Key), {"content-type": ContentType}, Body)
        return {"ETag": headers.get("ETag")}

    def _get(self, url: str, extra_headers: dict[str, str] | None) -> tuple[bytes, Message]:
        return self._send("GET", url, extra_headers, None)

    @contextlib.contextmanager
    def within(self, seconds: float) -> Iterator[None]:
        """Every call inside the block, retries and backoff included, ends within ``seconds``
        (a block inside another keeps the earlier deadline)."""
        outer = self._deadline
        deadline = monotonic() + seconds
        self._deadline = deadline if outer is None else min(outer, deadline)
        try:
            yield
        finally:
            self._deadline = outer

    def _send(self, method: str, url: str, extra_headers: dict[str, str] | None,
              body: bytes | None) -> tuple[bytes, Message]:
        """One call: at most ``attempts`` tries, each socket wait at most ``timeout``, backoff with
        full jitter between tries, and all of it within the budget (``budget`` or ``within``).
        An answer of 5xx, a reset or dropped connection, a timeout and a cut-short body are tried
        again; any other answer is the call's."""
        deadline = self._deadline if self._deadline is not None else monotonic() + self.budget
        payload = hashlib.sha256(body).hexdigest() if body is not None else EMPTY_SHA256
        parts = urllib.parse.urlsplit(url)
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        for attempt in range(self.attempts):
            if deadline <= monotonic():  # spent (a group of calls under within): no try at all
                raise TimeoutError("the S3 call's time budget was spent")
            # signed per try: a retry after a long backoff still carries a fresh date
            headers = signing_headers(method, url, self.region, self.access_key, self.secret_key,
                                      self.session_token, extra_headers=extra_headers, payload_sha256=payload)
            try:
                status, data, response_headers = self._try(method, parts, target, headers, body, deadline)
                if status < 500:
                    break
                code, message = _error_document(data)
                failure: Exception = S3Error(status, code or str(status), message)
            except (OSError, http.client.HTTPException) as error:
                dropped = self._connections.pop((parts.scheme, parts.netloc), None)
                if dropped is not None:  # the next try starts afresh
                    dropped[0].close()
                failure = error
            pause = self.jitter() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt)
            if attempt + 1 == self.attempts or monotonic() + pause >= deadline:
                raise failure
            time.sleep(pause)
        if status >= 300:
            code, message = _error_document(data)
            raise S3Error(status, code or str(status), message)
        return data, response_headers

    def _try(self, method: str, parts: urllib.parse.SplitResult, target: str, headers: dict[str, str],
             body: bytes | None, deadline: float) -> tuple[int, bytes, Message]:
        """One request on the endpoint's kept-alive connection: (status, body, headers). Every socket
        wait is at most ``timeout`` and what is left of the budget, so the try ends with it."""
        connection = self._connection(parts.scheme, parts.netloc)
        connection.timeout = self._wait(deadline)
        if connection.sock is not None:
            connection.sock.settimeout(connection.timeout)
        connection.request(method, target, body=body, headers=headers)  # the signed Host header
        sock = connection.sock  # (the answer's reads use it even after the connection lets it go)
        sock.settimeout(self._wait(deadline))
        response = connection.getresponse()
        chunks = []
        while True:
            sock.settimeout(self._wait(deadline))  # a body that trickles in is held to the budget too
            chunk = response.read1(CHUNK_BYTES)  # (one socket read: read() would wait for a full chunk)
            if not chunk:
                break
            chunks.append(chunk)
        if response.length:  # the connection closed before the Content-Length it promised
            raise http.client.IncompleteRead(b"".join(chunks), response.length)
        response.close()  # read to its end (read1 does not say so itself): the connection can go on
        self._connections[(parts.scheme, parts.netloc)] = (connection, monotonic())
        return response.status, b"".join(chunks), response.headers

    def _wait(self, deadline: float) -> float:
        """How long the next socket operation may wait: the timeout, or what is left of the budget."""
        left = deadline - monotonic()
        if left <= 0:
            raise TimeoutError("the S3 answer did not arrive within the call's time budget")
        return min(self.timeout, left)

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        kept = self._connections.get((scheme, netloc))
        if kept is not None and monotonic() - kept[1] <= IDLE_SECONDS:
            return kept[0]
        if kept is not None:
            kept[0].close()
        # https://<bucket>.s3... or the http(s) endpoint checked in __init__
        kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        connection = kind(netloc, timeout=self.timeout)
        self._connections[(scheme, netloc)] = (connection, monotonic())
        return connection


def _error_document(body: bytes) -> tuple[str | None, str]:
    """S3's XML error document → (Code, Message); a body that is not one is the message itself.

    The standard parser is enough: the XML comes from the S3 endpoint this reader was
    configured with, and expat (>= 2.4.1) caps entity expansion.
    """
    from xml.etree import ElementTree  # nosec B405 - imported when needed: a loaded model reads no XML

    try:
        # the document comes from the S3 endpoint this reader was configured with, not from a user
        root = ElementTree.fromstring(body)  # noqa: S314  # nosec B314
    except ElementTree.ParseError:
        return None, body.decode(errors="replace")[:200]
    return root.findtext("Code"), root.findtext("Message") or ""

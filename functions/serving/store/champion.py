"""The champion, loaded once per container and swapped when the pointer moves.

``ChampionCache.current()`` is cheap on the hot path: at most every
``refresh_seconds`` it reads the small champion pointer (a conditional GET on
its ETag, so an unchanged pointer costs a 304). A new version is loaded and
verified off to the side and swapped in with one assignment. A version that is
missing, fails its checksums or does not load is refused: the error is logged
and counted, and the model that was serving keeps serving.

When S3 fails, a request waits on it for a bounded time: a check of a loaded
model at most ``CHECK_SECONDS``; a new version's load, or a container's first
pointer read and load together, at most ``LOAD_SECONDS`` (the reader's ``within``;
its tries and backoff are ``serving.store.s3``'s). A failed check is logged and counted
(``failed_checks``) and the loaded model keeps serving; a container with no model
tries again after ``COLD_RETRY_SECONDS`` (or its refresh interval, if shorter), and
answers 503 with the cause until then.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from serving.model import bundle
from serving.model.predictor import Predictor
from serving.store import bundles
from serving.store.s3 import error_status

LOG = logging.getLogger(__name__)
CHECK_SECONDS = 1.0  # the pointer is a few hundred bytes: a check that takes longer fails
LOAD_SECONDS = 6.0  # a new version's manifest and arrays (the API function's timeout is 10 s)
COLD_RETRY_SECONDS = 5.0


def transient(error: BaseException) -> bool:
    """Whether S3 failed (unreachable, slow, a 5xx, a body cut short) rather than the version:
    a version is refused for good only for what it is (missing, checksums, format)."""
    return isinstance(error, OSError | http.client.HTTPException) or (error_status(error) or 0) >= 500


@dataclass
class LoadFailure:
    version: int | None
    reason: str
    at: float


class ChampionCache:
    def __init__(
        self,
        s3_factory: Callable[[], Any],
        bucket: str,
        name: str,
        *,
        refresh_seconds: float,
        unknown_category: str,
        on_load_failure: Callable[[LoadFailure], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        first_pointer: tuple[dict | None, str | None] | None = None,
    ) -> None:
        self._s3_factory = s3_factory
        # (pointer, ETag) already read by whoever made this cache: the first check uses it
        self._first_pointer = first_pointer
        self._s3 = None
        self.bucket = bucket
        self.name = name
        self.refresh_seconds = refresh_seconds
        self.unknown_category = unknown_category
        self.on_load_failure = on_load_failure
        self.clock = clock
        self.predictor: Predictor | None = None
        self.pointer_etag: str | None = None  # the ETag of the pointer that loaded `predictor`
        self.checked_at: float | None = None
        self.last_failure: LoadFailure | None = None
        self.refused_pointer: str | None = None  # don't retry a bad version on every check
        self.failed_checks = 0  # pointer reads that failed (S3 down, slow or denied), since the start

    @property
    def s3(self):
        if self._s3 is None:
            self._s3 = self._s3_factory()
        return self._s3

    def current(self) -> Predictor | None:
        now = self.clock()
        interval = self.refresh_seconds if self.predictor is not None else min(self.refresh_seconds,
                                                                                COLD_RETRY_SECONDS)
        if self.checked_at is None or now - self.checked_at >= interval:
            self.checked_at = now
            self._refresh()
        return self.predictor

    def status(self) -> dict[str, Any]:
        predictor = self.current()
        if predictor is None:
            reason = (self.last_failure.reason if self.last_failure is not None
                      else f"no champion has been promoted for model {self.name!r} in {self.bucket}")
            return {"status": "no_model", "reason": reason}
        model = {"name": predictor.name, "version": predictor.version}
        status: dict[str, Any] = {"status": "ok", "model": model}
        if self.last_failure is not None:
            status["last_load_failure"] = {"version": self.last_failure.version,
                                           "reason": self.last_failure.reason}
        if self.failed_checks:
            status["failed_checks"] = self.failed_checks
        return status

    def _refresh(self) -> None:
        cold = self.predictor is None
        # a container without the model: its pointer read and its load share one budget
        with self.s3.within(LOAD_SECONDS) if cold else contextlib.nullcontext():
            self._check(LOAD_SECONDS if cold else CHECK_SECONDS)

    def _check(self, budget: float) -> None:
        try:
            with self.s3.within(budget):
                pointer, etag = self._read_pointer()
        except Exception as error:  # S3 down, slow or denied, or a pointer that is not JSON: keep serving
            self.failed_checks += 1
            self._fail(None, f"could not read the champion pointer: {error}")
            return
        if pointer is None:  # unchanged (304), or absent: a model that was serving keeps serving
            failure = self.last_failure
            if self.predictor is None or (failure is not None and failure.version is None):
                self.last_failure = None  # (a check that failed before is over; a refused version is not)
            return
        try:
            version = int(pointer["version"])
        except (KeyError, TypeError, ValueError) as error:
            self.failed_checks += 1
            self._fail(None, f"the champion pointer is not valid: {error!r}")
            return
        if self.predictor is not None and version == self.predictor.version:
            self.pointer_etag = etag
            return
        if etag is not None and etag == self.refused_pointer:
            return
        try:
            with self.s3.within(LOAD_SECONDS):
                loaded = bundles.load(self.s3, self.bucket, self.name, version,
                                      pointer.get("manifest_sha256"))
            predictor = Predictor(loaded, unknown_category=self.unknown_category)
        except Exception as error:
            if transient(error):  # S3 failed, not the version: the next check loads it again
                self._fail(version, f"could not load version {version}: {error}")
                return
            self.refused_pointer = etag
            self._fail(version, f"refused version {version}: {error}")
            return
        previous = self.predictor.version if self.predictor is not None else None
        self.predictor = predictor  # the swap: one reference assignment
        self.pointer_etag = etag
        self.last_failure = None
        LOG.info("champion loaded", extra={"model_version": version, "previous_version": previous})

    def _read_pointer(self) -> tuple[dict | None, str | None]:
        """(pointer, its ETag); (None, the loaded ETag) when unchanged; (None, None) when absent."""
        if self._first_pointer is not None:
            first, self._first_pointer = self._first_pointer, None
            return first
        kwargs = {"Bucket": self.bucket, "Key": bundle.champion_key(self.name)}
        if self.pointer_etag is not None:  # set only once a model is loaded
            kwargs["IfNoneMatch"] = self.pointer_etag
        try:
            response = self.s3.get_object(**kwargs)
        except Exception as error:
            status = error_status(error)
            if status == 304:  # not modified
                return None, self.pointer_etag
            if status == 404:
                return None, None
            raise
        return json.loads(response["Body"].read()), response["ETag"]

    def _fail(self, version: int | None, reason: str) -> None:
        self.last_failure = LoadFailure(version=version, reason=reason, at=self.clock())
        LOG.error("champion load failed", extra={"model_version": version, "reason": reason})
        if self.on_load_failure is not None:
            self.on_load_failure(self.last_failure)

"""Every model in the bucket behind one API: a champion cache per model, a bounded number in memory.

``ModelRegistry.champion(name)`` gives the model's ``ChampionCache`` (loaded on
first use, re-checked on its own interval, a broken version refused while the
last good one serves, as ``serving.champion`` describes). At most
``max_models`` caches are kept; the least recently used is dropped when another
is needed, and loaded again if it is asked for later.

A name is checked (``bundle.check_name``) before any S3 key is built from it. A
name with no champion pointer is looked up once per refresh interval (a GET and a
one-key LIST), so that an unknown model is told apart from one that has versions
but no champion, without a cache entry for every name a client makes up.

``listing()`` is what ``GET /models`` shows: the models that have a champion,
from one LIST of ``models/`` and their pointers, re-read at most once per
refresh interval.

When S3 fails (down, slow, denied), a model not loaded yet is ``StoreUnavailable``
(a 503 naming the cause; S3 is asked again after ``COLD_RETRY_SECONDS``, not on every
request), the listing read before is kept until a new one is read, and the models
already loaded keep serving (``serving.store.champion``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from serving.model import bundle
from serving.store import bundles
from serving.store.champion import COLD_RETRY_SECONDS, LOAD_SECONDS, ChampionCache, LoadFailure

NEGATIVE_NAMES = 256  # unknown names remembered between checks (and names S3 failed to answer for)
# a name's first lookup (its pointer, and a one-key listing if it has none): with a first load
# (LOAD_SECONDS) it stays inside the API function's 10 s
LOOKUP_SECONDS = 3.0


class StoreUnavailable(RuntimeError):
    """S3 did not answer what a model needs: the request cannot be served now (503)."""


class UnknownModel(LookupError):
    """No model of that name has been published in the bucket."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no model named {name!r} has been published")

    def __str__(self) -> str:
        return str(self.args[0])


class ModelRegistry:
    def __init__(
        self,
        s3_factory: Callable[[], Any],
        bucket: str,
        *,
        refresh_seconds: float,
        unknown_category: str,
        max_models: int,
        on_load_failure: Callable[[LoadFailure], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._s3_factory = s3_factory
        self._s3 = None
        self.bucket = bucket
        self.refresh_seconds = refresh_seconds
        self.unknown_category = unknown_category
        self.max_models = max_models
        self.on_load_failure = on_load_failure
        self.clock = clock
        self._caches: OrderedDict[str, ChampionCache] = OrderedDict()  # least recently used first
        self._unknown: OrderedDict[str, float] = OrderedDict()  # name → when it was found absent
        self._unreachable: OrderedDict[str, tuple[float, str]] = OrderedDict()  # name → (when, why) S3 failed
        self._listing: tuple[float, list[dict[str, Any]]] | None = None
        # (what, name) → (when read, what was read): histories and drift reports
        self._read: OrderedDict[tuple[str, str], tuple[float, Any]] = OrderedDict()

    @property
    def s3(self):
        if self._s3 is None:
            self._s3 = self._s3_factory()
        return self._s3

    def champion(self, name: str) -> ChampionCache:
        """The model's champion cache; ValueError for a bad name, UnknownModel for one never published."""
        bundle.check_name(name)
        cache = self._caches.get(name)
        if cache is not None:
            self._caches.move_to_end(name)
            return cache
        pointer = self._check_known(name)
        cache = ChampionCache(
            lambda: self.s3, self.bucket, name, refresh_seconds=self.refresh_seconds,
            unknown_category=self.unknown_category, on_load_failure=self.on_load_failure, clock=self.clock,
            first_pointer=pointer,  # read once: the cache's first check uses it (one GET less per load)
        )
        self._caches[name] = cache
        while len(self._caches) > self.max_models:
            self._caches.popitem(last=False)  # the least recently used model leaves memory
        return cache

    def loaded(self) -> dict[str, ChampionCache]:
        """The caches in memory, least recently used first."""
        return dict(self._caches)

    def _check_known(self, name: str) -> tuple[dict | None, str | None]:
        """The model's champion pointer and its ETag ((None, None): versions but no champion yet)."""
        def read() -> tuple[bool, tuple[dict | None, str | None]]:
            pointer = bundles.read_champion_and_etag(self.s3, self.bucket, name)
            return pointer[0] is not None or bundles.has_versions(self.s3, self.bucket, name), pointer

        return self._ask(name, LOOKUP_SECONDS, read)

    def _ask(self, name: str, seconds: float, read: Callable[[], tuple[bool, Any]]) -> Any:
        """``read()``'s value ((whether the model is known, the value), within ``seconds`` of S3). An
        unknown name is remembered for a refresh interval, a failing S3 for COLD_RETRY_SECONDS:
        asking again meanwhile costs no S3 call."""
        now = self.clock()
        found_absent = self._unknown.get(name)
        if found_absent is not None and now - found_absent < self.refresh_seconds:
            raise UnknownModel(name)
        failed = self._unreachable.get(name)
        if failed is not None and now - failed[0] < min(self.refresh_seconds, COLD_RETRY_SECONDS):
            raise StoreUnavailable(failed[1])
        try:
            with self.s3.within(seconds):
                known, value = read()
        except Exception as error:  # S3 down, slow or denied, or a pointer that is not JSON
            reason = f"the model store did not answer for model {name!r}: {error}"
            _remember(self._unreachable, name, (now, reason))
            raise StoreUnavailable(reason) from None
        self._unreachable.pop(name, None)
        if not known:
            _remember(self._unknown, name, now)
            raise UnknownModel(name)
        self._unknown.pop(name, None)
        return value

    def listing(self) -> list[dict[str, Any]]:
        """Every model with a champion: name, version, task, classes or target, held-out metrics."""
        now = self.clock()
        if self._listing is None or now - self._listing[0] >= self.refresh_seconds:
            try:
                with self.s3.within(LOAD_SECONDS):
                    self._listing = (now, bundles.list_champions(self.s3, self.bucket))
            except Exception as error:  # S3 down, slow or denied
                if self._listing is None:
                    raise StoreUnavailable(f"the model store did not answer the listing: {error}") from None
                self._listing = (now, self._listing[1])  # the last listing read, until S3 answers again
        return self._listing[1]


    def history(self, name: str) -> dict[str, Any]:
        """The model's versions and promotions (``bundles.history``), re-read at most once per refresh
        interval; ValueError for a bad name, UnknownModel for one never published."""
        return self._once_per_interval("history", name, lambda: bundles.history(self.s3, self.bucket, name))

    def drift(self, name: str) -> dict[str, Any] | None:
        """The model's latest drift report (``report.latest``), re-read at most once per refresh interval."""
        from serving.monitoring import report  # imported on first use: no prediction needs it

        return self._once_per_interval("drift", name, lambda: report.latest(self.s3, self.bucket, name))

    def _once_per_interval(self, what: str, name: str, read: Callable[[], Any]) -> Any:
        """``read()`` for a known model (``_ask``), kept for a refresh interval."""
        bundle.check_name(name)
        now, kept = self.clock(), self._read.get((what, name))
        if kept is not None and now - kept[0] < self.refresh_seconds:
            return kept[1]

        def known_then_read() -> tuple[bool, Any]:
            known = bundles.has_versions(self.s3, self.bucket, name)
            return known, read() if known else None

        value = self._ask(name, LOAD_SECONDS, known_then_read)
        _remember(self._read, (what, name), (now, value))
        return value


def _remember(names: OrderedDict, name, value) -> None:
    """``names[name] = value``, most recent last, the oldest dropped past NEGATIVE_NAMES."""
    names[name] = value
    names.move_to_end(name)
    while len(names) > NEGATIVE_NAMES:
        names.popitem(last=False)

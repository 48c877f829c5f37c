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
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from serving.model import bundle
from serving.store import bundles
from serving.store.champion import ChampionCache, LoadFailure

NEGATIVE_NAMES = 256  # unknown names remembered between checks


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
        self._listing: tuple[float, list[dict[str, Any]]] | None = None

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
        now = self.clock()
        found_absent = self._unknown.get(name)
        if found_absent is not None and now - found_absent < self.refresh_seconds:
            raise UnknownModel(name)
        pointer = bundles.read_champion_and_etag(self.s3, self.bucket, name)
        if pointer[0] is None and not bundles.has_versions(self.s3, self.bucket, name):
            self._unknown[name] = now
            self._unknown.move_to_end(name)
            while len(self._unknown) > NEGATIVE_NAMES:
                self._unknown.popitem(last=False)
            raise UnknownModel(name)
        self._unknown.pop(name, None)
        return pointer

    def listing(self) -> list[dict[str, Any]]:
        """Every model with a champion: name, version, task, classes or target, held-out metrics."""
        now = self.clock()
        if self._listing is None or now - self._listing[0] >= self.refresh_seconds:
            self._listing = (now, bundles.list_champions(self.s3, self.bucket))
        return self._listing[1]

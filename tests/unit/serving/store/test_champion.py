"""The champion cache: loaded once, re-checked on its interval with a conditional GET,
swapped when the pointer moves, and a broken version refused while the last good one serves."""

import json

import pytest
from serving.model import bundle
from serving.store import bundles
from serving.store.champion import ChampionCache
from serving.store.s3 import S3Error, S3Reader

from tests.models import case
from tests.unit.conftest import BUCKET
from tests.unit.fakes import Clock

NAME = "bc"


class Recording:
    """The function's own S3 reader, with every call written down."""

    def __init__(self):
        self.reader = S3Reader.from_env()
        self.calls = []
        self.budgets = []

    def get_object(self, **kwargs):
        self.calls.append(kwargs)
        return self.reader.get_object(**kwargs)

    def within(self, seconds):
        self.budgets.append(seconds)
        return self.reader.within(seconds)

    def pointer_reads(self):
        return [c for c in self.calls if c["Key"] == bundle.champion_key(NAME)]


@pytest.fixture
def cache(s3):
    clock = Clock()
    recording = Recording()
    failures = []
    made = []

    def factory():
        made.append(1)
        return recording

    champion = ChampionCache(factory, bucket=BUCKET, name=NAME, refresh_seconds=60, clock=clock,
                             unknown_category="reject", on_load_failure=failures.append)
    champion.clock_, champion.recording, champion.failures, champion.made = clock, recording, failures, made
    return champion


def publish(s3, name="bc-lightgbm", promote=True):
    model = case(name)
    manifest = bundles.publish(s3, BUCKET, NAME, model.arrays, model.manifest_fields())
    if promote:
        bundles.set_champion(s3, BUCKET, NAME, manifest["version"], "test")
    return manifest["version"]


def test_no_s3_client_is_made_before_the_first_request(cache, s3):
    assert cache.made == []
    publish(s3)
    assert cache.current().version == 1
    cache.current()
    cache.clock_.now += 61
    cache.current()
    assert cache.made == [1]  # made once, on first use


def test_the_pointer_is_read_once_per_interval(cache, s3):
    publish(s3)
    assert cache.current().version == 1
    assert len(cache.recording.pointer_reads()) == 1
    cache.clock_.now += 59.9
    cache.current()
    assert len(cache.recording.pointer_reads()) == 1  # within the interval: no S3 call at all
    cache.clock_.now += 0.1
    cache.current()
    assert len(cache.recording.pointer_reads()) == 2  # at the interval: checked again
    cache.clock_.now += 10
    cache.current()
    assert len(cache.recording.pointer_reads()) == 2


def test_an_unchanged_pointer_costs_a_conditional_get_and_nothing_else(cache, s3):
    publish(s3)
    first = cache.current()
    assert "IfNoneMatch" not in cache.recording.pointer_reads()[0]
    calls = len(cache.recording.calls)
    cache.clock_.now += 60
    assert cache.current() is first
    check = cache.recording.pointer_reads()[-1]
    assert check["IfNoneMatch"] == cache.pointer_etag and check["IfNoneMatch"]
    assert len(cache.recording.calls) == calls + 1  # one 304, no manifest or model read
    assert cache.last_failure is None and cache.failures == []  # "not modified" is not a failure


def test_a_new_champion_is_swapped_in_at_the_next_check(cache, s3):
    publish(s3)
    first = cache.current()
    publish(s3, "bc-lightgbm-short")
    assert cache.current() is first  # not before the interval
    cache.clock_.now += 60
    second = cache.current()
    assert second.version == 2 and second is not first
    assert cache.last_failure is None


def test_a_pointer_rewritten_to_the_same_version_is_not_reloaded(cache, s3):
    publish(s3)
    first = cache.current()
    bundles.set_champion(s3, BUCKET, NAME, 1, "again")  # a new ETag, the same version
    cache.clock_.now += 60
    reads = len(cache.recording.calls)
    assert cache.current() is first
    assert len(cache.recording.calls) == reads + 1
    cache.clock_.now += 60
    cache.current()
    assert cache.recording.pointer_reads()[-1]["IfNoneMatch"] == cache.pointer_etag


def test_a_broken_champion_is_refused_once_and_the_last_good_model_keeps_serving(cache, s3):
    publish(s3)
    good = cache.current()
    broken = publish(s3, "bc-lightgbm-short", promote=False)
    s3.put_object(Bucket=BUCKET, Key=bundle.version_prefix(NAME, broken) + "model.npz", Body=b"corrupted")
    bundles.set_champion(s3, BUCKET, NAME, broken, "bad push")
    cache.clock_.now += 60
    assert cache.current() is good
    assert cache.last_failure.version == 2
    assert cache.last_failure.reason == "refused version 2: model.npz of bc v2 does not match its sha256"
    assert cache.last_failure.at == cache.clock_.now
    assert len(cache.failures) == 1 and cache.failures[0] is cache.last_failure
    status = cache.status()
    assert status == {"status": "ok", "model": {"name": NAME, "version": 1},
                      "last_load_failure": {"version": 2, "reason": cache.last_failure.reason}}
    # the refused pointer is not loaded again on every check
    cache.clock_.now += 60
    reads = len(cache.recording.calls)
    assert cache.current() is good
    new_reads = cache.recording.calls[reads:]
    assert [c["Key"] for c in new_reads] == [bundle.champion_key(NAME)]
    assert len(cache.failures) == 1
    # a fixed champion is taken at the next check, and the failure is forgotten
    fixed = publish(s3, "bc-lightgbm-short")
    cache.clock_.now += 60
    assert cache.current().version == fixed
    assert cache.last_failure is None
    assert cache.status() == {"status": "ok", "model": {"name": NAME, "version": fixed}}


def test_a_refused_first_champion_leaves_no_model_and_says_why(cache, s3):
    version = publish(s3, promote=False)
    s3.put_object(Bucket=BUCKET, Key=bundle.version_prefix(NAME, version) + "model.npz", Body=b"x")
    bundles.set_champion(s3, BUCKET, NAME, version, "bad")
    assert cache.current() is None
    status = cache.status()
    assert status["status"] == "no_model"
    assert status["reason"].startswith("refused version 1: ")
    assert "last_load_failure" not in status and "model" not in status
    # without a model loaded, the pointer is read in full (no IfNoneMatch) at the next check
    cache.clock_.now += 60
    cache.current()
    assert "IfNoneMatch" not in cache.recording.pointer_reads()[-1]


def test_without_a_champion_the_reason_names_the_model_and_bucket(cache, s3):
    assert cache.current() is None
    assert cache.status() == {"status": "no_model",
                              "reason": f"no champion has been promoted for model 'bc' in {BUCKET}"}
    assert cache.failures == []
    publish(s3)
    cache.clock_.now += 60
    assert cache.current().version == 1


def test_an_unreadable_pointer_keeps_the_model_and_is_counted(cache, s3):
    publish(s3)
    good = cache.current()
    s3.put_object(Bucket=BUCKET, Key=bundle.champion_key(NAME), Body=b"{not json")
    cache.clock_.now += 60
    assert cache.current() is good
    assert cache.last_failure.version is None
    assert cache.last_failure.reason.startswith("could not read the champion pointer: ")
    assert len(cache.failures) == 1


def test_s3_errors_keep_the_model_serving(cache, s3):
    publish(s3)
    good = cache.current()

    def down(**kwargs):
        raise ConnectionError("S3 is unreachable")

    cache.recording.get_object = down
    cache.clock_.now += 60
    assert cache.current() is good
    assert cache.last_failure.reason == "could not read the champion pointer: S3 is unreachable"


def test_a_deleted_pointer_keeps_the_model_it_had(cache, s3):
    publish(s3)
    good = cache.current()
    s3.delete_object(Bucket=BUCKET, Key=bundle.champion_key(NAME))
    cache.clock_.now += 60
    assert cache.current() is good
    assert cache.last_failure is None


def test_a_pointer_naming_a_missing_version_is_refused(cache, s3):
    s3.put_object(Bucket=BUCKET, Key=bundle.champion_key(NAME),
                  Body=json.dumps({"name": NAME, "version": 5}).encode())
    assert cache.current() is None
    assert "refused version 5: s3://models/models/bc/versions/000005/manifest.json does not exist" \
        in cache.status()["reason"]


def test_a_refresh_of_zero_checks_on_every_request(s3):
    publish(s3)
    recording = Recording()
    champion = ChampionCache(lambda: recording, bucket=BUCKET, name=NAME, refresh_seconds=0,
                             unknown_category="reject")
    for _ in range(3):
        champion.current()
    assert len(recording.pointer_reads()) == 3


def test_unknown_categories_policy_reaches_the_predictor(s3):
    publish(s3, "penguins-lightgbm")
    for policy in ("missing", "reject"):
        champion = ChampionCache(S3Reader.from_env, bucket=BUCKET, name=NAME, refresh_seconds=60,
                                 unknown_category=policy)
        assert champion.current().schema.unknown_category == policy


def test_a_pointer_whose_manifest_checksum_is_wrong_is_refused(cache, s3):
    publish(s3)
    pointer = bundles.read_champion(s3, BUCKET, NAME)
    pointer["manifest_sha256"] = "0" * 64
    s3.put_object(Bucket=BUCKET, Key=bundle.champion_key(NAME), Body=json.dumps(pointer).encode())
    assert cache.current() is None
    assert cache.status()["reason"] == "refused version 1: manifest of bc v1 does not match the champion pointer"


def test_once_the_pointer_is_gone_a_refusal_is_no_longer_the_reason(cache, s3):
    version = publish(s3, promote=False)
    s3.put_object(Bucket=BUCKET, Key=bundle.version_prefix(NAME, version) + "model.npz", Body=b"x")
    bundles.set_champion(s3, BUCKET, NAME, version, "bad")
    assert cache.current() is None and cache.last_failure is not None
    s3.delete_object(Bucket=BUCKET, Key=bundle.champion_key(NAME))
    cache.clock_.now += 60
    assert cache.current() is None
    assert cache.status() == {"status": "no_model",
                              "reason": f"no champion has been promoted for model 'bc' in {BUCKET}"}


def test_loads_and_refusals_are_logged_with_the_versions(cache, s3, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="serving.store.champion")
    publish(s3)
    cache.current()
    publish(s3, "bc-lightgbm-short")
    cache.clock_.now += 60
    cache.current()
    loaded = [r for r in caplog.records if r.getMessage() == "champion loaded"]
    assert [(r.model_version, r.previous_version) for r in loaded] == [(1, None), (2, 1)]
    s3.put_object(Bucket=BUCKET, Key=bundle.champion_key(NAME), Body=b"not json")
    cache.clock_.now += 60
    cache.current()
    [failed] = [r for r in caplog.records if r.getMessage() == "champion load failed"]
    assert failed.levelname == "ERROR" and failed.model_version is None
    assert failed.reason.startswith("could not read the champion pointer: ")


# ---- S3 failing


def test_with_s3_down_a_loaded_champion_keeps_serving_and_each_failed_check_is_counted(cache, s3):
    publish(s3)
    good = cache.current()
    s3.down = True
    for _ in range(3):  # three refresh intervals of S3 down
        cache.clock_.now += 60
        assert cache.current() is good
        assert cache.current() is good  # (between checks no S3 call at all)
    assert cache.failed_checks == 3 and len(cache.failures) == 3
    assert [f.version for f in cache.failures] == [None] * 3
    status = cache.status()
    assert status["status"] == "ok" and status["failed_checks"] == 3
    assert status["last_load_failure"]["reason"].startswith("could not read the champion pointer: ")
    assert "Connection refused" in status["last_load_failure"]["reason"]


def test_when_s3_returns_a_champion_promoted_meanwhile_is_taken_at_the_next_check(cache, s3):
    publish(s3)
    assert cache.current().version == 1
    s3.down = True
    cache.clock_.now += 60
    cache.current()
    s3.down = False
    publish(s3)  # version 2 promoted while this container could not see S3
    assert cache.current().version == 1  # within the interval: not checked yet
    cache.clock_.now += 60
    assert cache.current().version == 2
    assert "last_load_failure" not in cache.status() and cache.status()["failed_checks"] == 1


def test_an_unchanged_pointer_after_an_outage_clears_the_outage_but_not_a_refused_version(cache, s3):
    publish(s3)
    cache.current()
    s3.down = True
    cache.clock_.now += 60
    cache.current()
    assert cache.last_failure is not None
    s3.down = False
    cache.clock_.now += 60
    cache.current()  # a 304
    assert cache.last_failure is None
    version = publish(s3, promote=False)
    s3.put_object(Bucket=BUCKET, Key=bundle.version_prefix(NAME, version) + "model.npz", Body=b"x")
    bundles.set_champion(s3, BUCKET, NAME, version, "bad")
    cache.clock_.now += 60
    assert cache.current().version == 1 and cache.last_failure.version == version
    cache.clock_.now += 60
    cache.current()  # the bad pointer again: still refused, still said
    assert cache.last_failure.version == version


def test_a_check_a_load_and_a_first_load_each_have_their_time_budget(cache, s3):
    from serving.store import champion
    from serving.store.registry import LOOKUP_SECONDS

    first = publish(s3)
    cache.current()  # no model yet: the pointer read and the load within one budget (the outer block)
    assert cache.recording.budgets == [champion.LOAD_SECONDS] * 3
    cache.clock_.now += 60
    cache.current()  # a loaded model's check
    assert cache.recording.budgets[3:] == [champion.CHECK_SECONDS]
    publish(s3)
    cache.clock_.now += 60
    assert cache.current().version == first + 1  # a check, then a new version's load on its own budget
    assert cache.recording.budgets[4:] == [champion.CHECK_SECONDS, champion.LOAD_SECONDS]
    assert champion.CHECK_SECONDS <= 1
    assert LOOKUP_SECONDS + champion.LOAD_SECONDS < 10  # a cold request's S3, inside the function's timeout


def test_a_container_without_a_model_tries_again_sooner_than_its_refresh_interval(cache, s3):
    from serving.store import champion

    publish(s3)
    s3.down = True
    assert cache.current() is None
    reason = cache.status()["reason"]
    assert reason.startswith("could not read the champion pointer: ") and "Connection refused" in reason
    s3.down = False
    cache.clock_.now += champion.COLD_RETRY_SECONDS - 0.5
    assert cache.current() is None  # not yet
    cache.clock_.now += 0.5
    assert cache.current().version == 1  # well before the 60 s refresh interval
    assert champion.COLD_RETRY_SECONDS == 5.0


def failing_once(recording, suffix, error):
    """The recording's reader fails the first GET of a key ending with ``suffix``."""
    real, failed = recording.get_object, []

    def get_object(**kwargs):
        if kwargs["Key"].endswith(suffix) and not failed:
            failed.append(kwargs["Key"])
            raise error
        return real(**kwargs)

    recording.get_object = get_object
    return failed


@pytest.mark.parametrize("error", [ConnectionResetError(104, "reset"), TimeoutError("timed out"),
                                   S3Error(503, "SlowDown", "Please reduce your request rate.")])
def test_a_load_s3_fails_is_tried_again_at_the_next_check_not_refused(cache, s3, error):
    publish(s3)
    assert cache.current().version == 1
    publish(s3)
    failed = failing_once(cache.recording, "/model.npz", error)
    cache.clock_.now += 60
    assert cache.current().version == 1 and failed  # the arrays' GET failed: the loaded model serves
    assert cache.refused_pointer is None
    assert cache.last_failure.version == 2 and cache.last_failure.reason.startswith("could not load version 2: ")
    cache.clock_.now += 60
    assert cache.current().version == 2 and cache.last_failure is None


def test_a_cold_load_s3_fails_is_tried_again_after_the_cold_pause(cache, s3):
    from serving.store import champion

    publish(s3)
    failing_once(cache.recording, "/manifest.json", ConnectionResetError(104, "reset"))
    assert cache.current() is None
    assert cache.status()["reason"].startswith("could not load version 1: ")
    cache.clock_.now += champion.COLD_RETRY_SECONDS
    assert cache.current().version == 1


def test_only_what_s3_did_is_transient_what_the_version_is_refuses_it():
    from serving.model.bundle import BundleError
    from serving.store.champion import transient

    assert not transient(BundleError("checksum")) and not transient(S3Error(404, "NoSuchKey", ""))
    assert not transient(S3Error(403, "AccessDenied", "")) and not transient(ValueError("format"))
    assert transient(S3Error(500, "InternalError", "")) and transient(ConnectionRefusedError())


@pytest.mark.parametrize("pointer", [b"{}", b"[]", b'{"version": "two"}'])
def test_a_pointer_without_a_version_is_a_failed_check_not_an_error(cache, s3, pointer):
    publish(s3)
    good = cache.current()
    s3.put_object(Bucket=BUCKET, Key=bundle.champion_key(NAME), Body=pointer)
    cache.clock_.now += 60
    assert cache.current() is good and cache.failed_checks == 1
    assert cache.last_failure.reason.startswith("the champion pointer is not valid: ")
    s3.put_object(Bucket=BUCKET, Key=bundle.champion_key(NAME), Body=pointer + b" ")  # a new ETag, still broken
    cache.clock_.now += 60
    assert cache.current() is good and cache.failed_checks == 2

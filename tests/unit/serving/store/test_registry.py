"""Many models behind one API: a champion cache per model, a bounded number kept, names checked first."""

import pytest
from serving.model import bundle
from serving.store import bundles
from serving.store.registry import NEGATIVE_NAMES, ModelRegistry, UnknownModel
from serving.store.s3 import S3Reader

from tests.models import case
from tests.unit.conftest import BUCKET
from tests.unit.fakes import Clock


class Recording:
    def __init__(self):
        self.reader = S3Reader.from_env()
        self.calls = []
        self.budgets = []

    def get_object(self, **kwargs):
        self.calls.append(("get", kwargs["Key"]))
        return self.reader.get_object(**kwargs)

    def list_objects_v2(self, **kwargs):
        self.calls.append(("list", kwargs["Prefix"]))
        return self.reader.list_objects_v2(**kwargs)

    def within(self, seconds):
        self.budgets.append(seconds)
        return self.reader.within(seconds)


@pytest.fixture
def registry(s3):
    recording, clock, made, failures = Recording(), Clock(50.0), [], []

    def factory():
        made.append(1)
        return recording

    models = ModelRegistry(factory, BUCKET, refresh_seconds=30, unknown_category="missing", max_models=2,
                           on_load_failure=failures.append, clock=clock)
    models.recording, models.clock_, models.made, models.failures = recording, clock, made, failures
    return models


def publish(s3, name, case_name="bc-lightgbm", promote=True):
    model = case(case_name)
    manifest = bundles.publish(s3, BUCKET, name, model.arrays, model.manifest_fields())
    if promote:
        bundles.set_champion(s3, BUCKET, name, manifest["version"], "test")


@pytest.mark.parametrize("name", ["../models/x", "a/b", "A", "", "x" * 65, "a..b"])
def test_an_invalid_name_is_refused_before_any_s3_call(registry, name):
    with pytest.raises(ValueError, match="is not valid"):
        registry.champion(name)
    assert registry.recording.calls == [] and registry.made == []


def test_models_load_on_first_use_and_share_one_s3_client(registry, s3):
    publish(s3, "a")
    publish(s3, "b", "penguins-catboost")
    a, b = registry.champion("a"), registry.champion("b")
    assert a.current().name == "a" and b.current().name == "b"
    assert a.current().schema.unknown_category == "missing"
    assert (a.refresh_seconds, a.bucket, a.clock) == (30, BUCKET, registry.clock_)
    assert registry.champion("a") is a
    assert registry.made == [1]


def test_the_least_recently_used_model_leaves_memory(registry, s3):
    for name in ("a", "b", "c"):
        publish(s3, name)
    a = registry.champion("a")
    registry.champion("b")
    assert registry.champion("a") is a  # a is now the most recent
    registry.champion("c")
    assert list(registry.loaded()) == ["a", "c"]
    assert registry.champion("b") is not None and list(registry.loaded()) == ["c", "b"]


def test_an_unknown_name_is_looked_up_once_per_interval(registry, s3):
    with pytest.raises(UnknownModel) as caught:
        registry.champion("ghost")
    assert str(caught.value) == "no model named 'ghost' has been published"
    assert registry.recording.calls == [("get", "models/ghost/champion.json"), ("list", "models/ghost/versions/")]
    registry.clock_.now += 29
    with pytest.raises(UnknownModel):
        registry.champion("ghost")
    assert len(registry.recording.calls) == 2  # remembered: no S3 call
    assert registry.loaded() == {}
    publish(s3, "ghost")
    registry.clock_.now += 1  # the interval is over: looked up again, and found
    assert registry.champion("ghost").current().version == 1


def test_a_model_with_versions_but_no_champion_is_known(registry, s3):
    publish(s3, "draft", promote=False)
    cache = registry.champion("draft")
    assert cache.current() is None
    assert cache.status()["reason"] == f"no champion has been promoted for model 'draft' in {BUCKET}"


def test_remembered_unknown_names_are_bounded(registry):
    for i in range(NEGATIVE_NAMES + 5):
        with pytest.raises(UnknownModel):
            registry.champion(f"ghost-{i}")
    assert len(registry._unknown) == NEGATIVE_NAMES
    assert "ghost-0" not in registry._unknown and f"ghost-{NEGATIVE_NAMES + 4}" in registry._unknown
    calls = len(registry.recording.calls)
    with pytest.raises(UnknownModel):
        registry.champion(f"ghost-{NEGATIVE_NAMES + 4}")  # the most recent is still remembered
    assert len(registry.recording.calls) == calls


def test_a_name_found_again_is_forgotten_as_unknown(registry, s3):
    with pytest.raises(UnknownModel):
        registry.champion("late")
    publish(s3, "late")
    registry.clock_.now += 30
    registry.champion("late")
    assert "late" not in registry._unknown


def test_the_listing_is_read_once_per_interval(registry, s3):
    publish(s3, "a")
    assert [m["name"] for m in registry.listing()] == ["a"]
    publish(s3, "b")
    registry.clock_.now += 29.9
    assert [m["name"] for m in registry.listing()] == ["a"]
    registry.clock_.now += 0.1
    assert [m["name"] for m in registry.listing()] == ["a", "b"]


def test_load_failures_of_every_model_are_reported(registry, s3):
    publish(s3, "a", promote=False)
    s3.put_object(Bucket=BUCKET, Key=bundle.version_prefix("a", 1) + "model.npz", Body=b"x")
    bundles.set_champion(s3, BUCKET, "a", 1, "bad")
    assert registry.champion("a").current() is None
    assert [f.version for f in registry.failures] == [1]


def test_every_lookup_of_a_name_goes_to_the_registrys_bucket(registry, s3):
    buckets = []
    recording = registry.recording
    for method in ("get_object", "list_objects_v2"):
        real = getattr(recording, method)

        def spy(real=real, **kwargs):
            buckets.append(kwargs["Bucket"])
            return real(**kwargs)

        setattr(recording, method, spy)
    publish(s3, "draft", promote=False)
    assert registry.champion("draft").current() is None
    with pytest.raises(UnknownModel):
        registry.champion("ghost")
    assert len(buckets) >= 4 and set(buckets) == {BUCKET}


def test_a_remembered_unknown_name_is_named_again(registry):
    for _ in range(2):
        with pytest.raises(UnknownModel) as caught:
            registry.champion("ghost")
        assert str(caught.value) == "no model named 'ghost' has been published"
    assert len(registry.recording.calls) == 2


def test_a_models_first_load_reads_its_champion_pointer_once_then_checks_it_conditionally(registry, s3):
    publish(s3, "a")
    sent = []
    real = registry.recording.get_object

    def get_object(**kwargs):
        sent.append(kwargs)
        return real(**kwargs)

    registry.recording.get_object = get_object
    assert registry.champion("a").current().version == 1
    pointer_key = bundle.champion_key("a")
    assert [k["Key"] for k in sent].count(pointer_key) == 1  # the name check's read is the load's too
    assert "IfNoneMatch" not in sent[0]
    registry.clock_.now += 30  # the refresh interval later: a conditional GET with the pointer's ETag
    assert registry.champion("a").current().version == 1
    assert sent[-1]["Key"] == pointer_key and sent[-1]["IfNoneMatch"].strip('"')


def test_with_s3_down_a_model_not_loaded_is_unavailable_and_s3_is_asked_again_after_a_pause(registry, s3):
    from serving.store.champion import COLD_RETRY_SECONDS
    from serving.store.registry import LOOKUP_SECONDS, StoreUnavailable

    publish(s3, "a")
    s3.down = True
    with pytest.raises(StoreUnavailable, match="the model store did not answer for model 'a': .*refused"):
        registry.champion("a")
    calls = len(registry.recording.calls)
    registry.clock_.now += COLD_RETRY_SECONDS - 1
    with pytest.raises(StoreUnavailable, match="did not answer for model 'a': .*refused"):  # said again, S3 not asked
        registry.champion("a")
    assert len(registry.recording.calls) == calls and registry.loaded() == {}
    assert registry.recording.budgets == [LOOKUP_SECONDS] == [3.0]
    s3.down = False
    registry.clock_.now += 1
    assert registry.champion("a").current().version == 1


def test_with_s3_down_the_last_listing_is_kept_and_none_at_all_is_unavailable(registry, s3):
    from serving.store.registry import LOAD_SECONDS, StoreUnavailable

    publish(s3, "a")
    s3.down = True
    with pytest.raises(StoreUnavailable, match="did not answer the listing"):
        registry.listing()
    assert registry.recording.budgets == [LOAD_SECONDS]
    s3.down = False
    listed = registry.listing()
    assert [m["name"] for m in listed] == ["a"]
    s3.down = True
    registry.clock_.now += 30
    assert registry.listing() == listed
    calls = len(registry.recording.calls)
    assert registry.listing() == listed and len(registry.recording.calls) == calls  # not asked again yet


def test_a_history_and_a_drift_report_are_read_once_per_interval_for_known_names_only(registry, s3):
    publish(s3, "a")
    first = registry.history("a")
    calls = len(registry.recording.calls)
    assert registry.history("a") is first and registry.drift("a") is None
    after_drift = len(registry.recording.calls)
    assert after_drift > calls  # (the drift report is read on its own)
    assert registry.drift("a") is None and len(registry.recording.calls) == after_drift
    publish(s3, "a")
    assert [v["version"] for v in registry.history("a")["versions"]] == [1]  # within the interval
    registry.clock_.now += 30
    assert [v["version"] for v in registry.history("a")["versions"]] == [2, 1]
    with pytest.raises(UnknownModel):
        registry.history("b")
    with pytest.raises(ValueError, match="is not valid"):
        registry.drift("../a")


def test_asking_again_for_an_unknown_name_or_while_s3_fails_costs_no_s3_call_within_the_pause(registry, s3):
    from serving.store.champion import COLD_RETRY_SECONDS
    from serving.store.registry import LOAD_SECONDS, StoreUnavailable

    with pytest.raises(UnknownModel):
        registry.history("nobody")
    calls = len(registry.recording.calls)
    assert registry.recording.calls == [("list", "models/nobody/versions/")]  # its versions looked for, nothing read
    assert registry.recording.budgets == [LOAD_SECONDS]
    with pytest.raises(UnknownModel):
        registry.drift("nobody")
    assert len(registry.recording.calls) == calls
    publish(s3, "a")
    s3.down = True
    with pytest.raises(StoreUnavailable, match="did not answer for model 'a'"):
        registry.history("a")
    calls = len(registry.recording.calls)
    with pytest.raises(StoreUnavailable):
        registry.drift("a")
    assert len(registry.recording.calls) == calls
    s3.down = False
    registry.clock_.now += COLD_RETRY_SECONDS
    assert [v["version"] for v in registry.history("a")["versions"]] == [1]

"""The store tests' scripted S3 servers and a record of the reader's pauses."""

import pytest

from tests.unit.serving.store.servers import KeepAlive, Recorder, local_server


@pytest.fixture
def fake_s3():
    yield from local_server(Recorder)


@pytest.fixture
def keep_alive_s3():
    KeepAlive.drop_after = set()
    yield from local_server(KeepAlive)


@pytest.fixture
def pauses(monkeypatch):
    """The reader's backoff pauses, written down instead of slept."""
    import serving.store.s3 as s3_module

    slept = []
    monkeypatch.setattr(s3_module.time, "sleep", slept.append)
    return slept

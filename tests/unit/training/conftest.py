import pytest


@pytest.fixture
def s3(moto_s3):
    """The training job makes its own boto3 clients from the environment: moto's server, over HTTP."""
    return moto_s3

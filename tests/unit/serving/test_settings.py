"""The functions' settings fail at init, naming the variable, instead of on the first request."""

import pytest
from serving.settings import LAMBDA_SYNC_PAYLOAD_BYTES, ConfigurationError, Settings


def test_defaults_need_only_the_bucket():
    settings = Settings.from_env({"MODEL_BUCKET": " models "})
    assert settings == Settings(model_bucket="models", default_model="breast-cancer", max_models=8, max_rows=1000,
                                max_explain_rows=10, capture_rate=0.0, capture_flush_rows=1000, max_body_bytes=LAMBDA_SYNC_PAYLOAD_BYTES, refresh_seconds=60.0,
                                unknown_category="reject", allowed_origin="", tracing=False,
                                batch_part_megabytes=64.0, batch_concurrency=10)
    assert LAMBDA_SYNC_PAYLOAD_BYTES == 6 * 1024 * 1024


def test_every_setting_is_read():
    settings = Settings.from_env({
        "MODEL_BUCKET": "b", "DEFAULT_MODEL": "penguins", "MAX_MODELS_IN_MEMORY": "3", "MAX_ROWS": "20",
        "MAX_EXPLAIN_ROWS": "4", "CAPTURE_RATE": "0.25", "CAPTURE_FLUSH_ROWS": "50", "MAX_BODY_BYTES": "1000",
        "CHAMPION_REFRESH_SECONDS": "0.5", "UNKNOWN_CATEGORY": "missing",
        "ALLOWED_ORIGIN": "https://form.example", "POWERTOOLS_TRACE_DISABLED": "False",
        "BATCH_PART_MB": "0.5", "BATCH_CONCURRENCY": "40"})
    assert settings == Settings("b", "penguins", 3, 20, 4, 0.25, 50, 1000, 0.5, "missing", "https://form.example",
                                True, 0.5, 40)
    assert Settings.from_env({"MODEL_BUCKET": "b", "MAX_ROWS": ""}).max_rows == 1000
    assert Settings.from_env({"MODEL_BUCKET": "b", "CHAMPION_REFRESH_SECONDS": "0"}).refresh_seconds == 0
    assert Settings.from_env({"MODEL_BUCKET": "b", "MAX_ROWS": "1"}).max_rows == 1
    assert Settings.from_env({"MODEL_BUCKET": "b", "POWERTOOLS_TRACE_DISABLED": "true"}).tracing is False


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({}, "MODEL_BUCKET is not set: the bucket that holds the models"),
        ({"MODEL_BUCKET": "  "}, "MODEL_BUCKET is not set: the bucket that holds the models"),
        ({"MAX_ROWS": "many"}, "MAX_ROWS must be an integer, not 'many'"),
        ({"MAX_ROWS": "1.5"}, "MAX_ROWS must be an integer, not '1.5'"),
        ({"MAX_ROWS": "0"}, "MAX_ROWS must be at least 1, not '0'"),
        ({"MAX_EXPLAIN_ROWS": "0"}, "MAX_EXPLAIN_ROWS must be at least 1, not '0'"),
        ({"CAPTURE_RATE": "1.5"}, "CAPTURE_RATE must be at most 1, not '1.5'"),
        ({"CAPTURE_RATE": "-0.1"}, "CAPTURE_RATE must be at least 0, not '-0.1'"),
        ({"CAPTURE_FLUSH_ROWS": "0"}, "CAPTURE_FLUSH_ROWS must be at least 1, not '0'"),
        ({"MAX_BODY_BYTES": "-1"}, "MAX_BODY_BYTES must be at least 1, not '-1'"),
        ({"CHAMPION_REFRESH_SECONDS": "soon"}, "CHAMPION_REFRESH_SECONDS must be a number, not 'soon'"),
        ({"CHAMPION_REFRESH_SECONDS": "-1"}, "CHAMPION_REFRESH_SECONDS must be at least 0, not '-1'"),
        ({"CHAMPION_REFRESH_SECONDS": "nan"}, "CHAMPION_REFRESH_SECONDS must be at least 0, not 'nan'"),
        ({"CHAMPION_REFRESH_SECONDS": "inf"}, "CHAMPION_REFRESH_SECONDS must be at least 0, not 'inf'"),
        ({"UNKNOWN_CATEGORY": "ignore"}, "UNKNOWN_CATEGORY must be reject or missing, not 'ignore'"),
        ({"MAX_MODELS_IN_MEMORY": "0"}, "MAX_MODELS_IN_MEMORY must be at least 1, not '0'"),
        ({"BATCH_PART_MB": "0"}, "BATCH_PART_MB must be at least 0.001, not '0'"),
        ({"BATCH_CONCURRENCY": "0"}, "BATCH_CONCURRENCY must be at least 1, not '0'"),
        ({"BATCH_CONCURRENCY": "10001"}, "BATCH_CONCURRENCY must be at most 10000, not '10001'"),
        ({"ALLOWED_ORIGIN": "*"}, "ALLOWED_ORIGIN must be the form's one origin (scheme://host[:port]), "
                                  "not '*': CORS is granted to it alone"),
        ({"ALLOWED_ORIGIN": "https://a.example,https://b.example"},
         "ALLOWED_ORIGIN must be the form's one origin (scheme://host[:port]), "
         "not 'https://a.example,https://b.example': CORS is granted to it alone"),
        ({"DEFAULT_MODEL": "../other"}, "DEFAULT_MODEL: model name '../other' is not valid: 1-64 characters: lowercase "
                                     "letters, digits, '.', '_' and '-', starting and ending alphanumeric"),
    ],
)
def test_a_bad_setting_is_named(env, words):
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"MODEL_BUCKET": "b", **env} if "MODEL_BUCKET" not in env and env else env)
    assert str(caught.value) == words


def test_the_drift_and_s3_settings_are_read_within_their_bounds():
    settings = Settings.from_env({"MODEL_BUCKET": "b", "DRIFT_PSI": "0.3", "DRIFT_P_VALUE": "1", "DRIFT_MIN_ROWS": "1",
                                  "DRIFT_WINDOW_HOURS": "0.5", "S3_READ_TIMEOUT_SECONDS": "0.1"})
    assert (settings.drift_psi, settings.drift_p_value, settings.drift_min_rows, settings.drift_window_hours,
            settings.s3_read_timeout_seconds) == (0.3, 1.0, 1, 0.5, 0.1)
    assert settings.drift_thresholds == {"psi": 0.3, "p_value": 1.0, "min_rows": 1}
    assert Settings.from_env({"MODEL_BUCKET": "b", "DRIFT_WINDOW_HOURS": "0"}).drift_window_hours == 0
    assert Settings.from_env({"MODEL_BUCKET": "b"}).drift_window_hours == 24.0


@pytest.mark.parametrize(("env", "words"), [
    ({"DRIFT_P_VALUE": "1.5"}, "DRIFT_P_VALUE must be at most 1, not '1.5'"),
    ({"DRIFT_MIN_ROWS": "0"}, "DRIFT_MIN_ROWS must be at least 1, not '0'"),
    ({"DRIFT_WINDOW_HOURS": "-1"}, "DRIFT_WINDOW_HOURS must be at least 0, not '-1'"),
    ({"DRIFT_WINDOW_HOURS": "a day"}, "DRIFT_WINDOW_HOURS must be a number, not 'a day'"),
    ({"S3_READ_TIMEOUT_SECONDS": "0.05"}, "S3_READ_TIMEOUT_SECONDS must be at least 0.1, not '0.05'"),
])
def test_a_bad_drift_or_s3_setting_is_named(env, words):
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"MODEL_BUCKET": "b", **env})
    assert str(caught.value) == words


CONSOLE = {"MODEL_BUCKET": "models", "DATA_BUCKET": "data", "BATCH_STATE_MACHINE_ARN": "arn:sm",
           "AUTH_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/pool", "AUTH_AUDIENCE": "client"}


def test_the_console_settings_default_the_keys_url_and_limits():
    from serving.settings import ConsoleSettings

    settings = ConsoleSettings.from_env(CONSOLE)
    assert settings.auth_jwks_url == "https://cognito-idp.us-east-1.amazonaws.com/pool/.well-known/jwks.json"
    assert (settings.upload_max_megabytes, settings.url_seconds, settings.allowed_origin) == (100.0, 300, "")
    assert settings.in_lambda is False
    local = ConsoleSettings.from_env({**CONSOLE, "AUTH_ISSUER": "https://i/pool/", "ALLOWED_ORIGIN": " http://a:1 ",
                                      "AUTH_JWKS_URL": "http://127.0.0.1:4569/pool/.well-known/jwks.json",
                                      "UPLOAD_MAX_MB": "5120", "PRESIGNED_URL_SECONDS": "3600",
                                      "AWS_LAMBDA_FUNCTION_NAME": "f"})
    assert local.auth_jwks_url == "http://127.0.0.1:4569/pool/.well-known/jwks.json"
    assert (local.upload_max_megabytes, local.url_seconds, local.allowed_origin, local.in_lambda) == \
        (5120.0, 3600, "http://a:1", True)
    assert ConsoleSettings.from_env({**CONSOLE, "AUTH_ISSUER": "https://i/pool/"}).auth_jwks_url == \
        "https://i/pool/.well-known/jwks.json"


@pytest.mark.parametrize("change, message", [
    ({"DATA_BUCKET": " "}, "DATA_BUCKET is not set: the console's batch routes need it"),
    ({"MODEL_BUCKET": ""}, "MODEL_BUCKET is not set"),
    ({"BATCH_STATE_MACHINE_ARN": ""}, "BATCH_STATE_MACHINE_ARN is not set"),
    ({"AUTH_ISSUER": ""}, "AUTH_ISSUER is not set"),
    ({"AUTH_AUDIENCE": ""}, "AUTH_AUDIENCE is not set"),
    ({"AUTH_ISSUER": "http://issuer.example/pool"}, "AUTH_ISSUER must be an https:// URL (http only on loopback)"),
    ({"AUTH_JWKS_URL": "http://10.0.0.1/jwks"}, "AUTH_JWKS_URL must be an https:// URL (http only on loopback)"),
    ({"AUTH_JWKS_URL": "ftp://x"}, "AUTH_JWKS_URL must be an https:// URL"),
    ({"ALLOWED_ORIGIN": "*"}, "ALLOWED_ORIGIN must be the form's one origin"),
    ({"ALLOWED_ORIGIN": "http://a,http://b"}, "ALLOWED_ORIGIN must be the form's one origin"),
    ({"UPLOAD_MAX_MB": "5121"}, "UPLOAD_MAX_MB must be at most 5120"),
    ({"UPLOAD_MAX_MB": "0"}, "UPLOAD_MAX_MB must be at least 0.001"),
    ({"PRESIGNED_URL_SECONDS": "3601"}, "PRESIGNED_URL_SECONDS must be at most 3600"),
    ({"PRESIGNED_URL_SECONDS": "0"}, "PRESIGNED_URL_SECONDS must be at least 1"),
    ({"PRESIGNED_URL_SECONDS": "1.5"}, "PRESIGNED_URL_SECONDS must be an integer"),
])
def test_a_bad_console_setting_is_named(change, message):
    from serving.settings import ConsoleSettings

    with pytest.raises(ConfigurationError) as caught:
        ConsoleSettings.from_env({**CONSOLE, **change})
    assert str(caught.value).startswith(message)


def test_loopback_issuers_are_taken_over_http():
    from serving.settings import ConsoleSettings

    for url in ("http://127.0.0.1:4569/pool", "http://localhost:4569/pool"):
        assert ConsoleSettings.from_env({**CONSOLE, "AUTH_ISSUER": url}).auth_issuer == url


def test_the_console_settings_read_the_environment_and_name_a_missing_variable(monkeypatch):
    from serving.settings import ConsoleSettings

    for key, value in CONSOLE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AUTH_ISSUER", "https://i/poolX/")  # a trailing slash only is dropped
    assert ConsoleSettings.from_env().auth_jwks_url == "https://i/poolX/.well-known/jwks.json"
    monkeypatch.delenv("DATA_BUCKET")
    with pytest.raises(ConfigurationError) as caught:
        ConsoleSettings.from_env()
    assert str(caught.value) == "DATA_BUCKET is not set: the console's batch routes need it"

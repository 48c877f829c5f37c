"""The functions' configuration, read from the environment once per container.

This is the one module that reads the environment. Checked when the container
starts: a missing bucket or a value that is not a number fails the init with
the variable's name, instead of a confusing error on the first request.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from serving.model.bundle import check_name
from serving.monitoring.drift import DEFAULT_THRESHOLDS

LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous request limit


class ConfigurationError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    model_bucket: str
    default_model: str = "breast-cancer"  # what /model, /predict and batch/input/<file> use
    max_models: int = 8  # champion caches kept in one container (least recently used dropped)
    max_rows: int = 1000
    max_explain_rows: int = 10  # explanations cost more per row than predictions (docs/api.md)
    capture_rate: float = 0.0  # share of /predict requests kept for drift monitoring (the template sets it)
    capture_flush_rows: int = 1000  # rows buffered before they are written to S3
    max_body_bytes: int = LAMBDA_SYNC_PAYLOAD_BYTES
    refresh_seconds: float = 60.0
    unknown_category: str = "reject"
    allowed_origin: str = ""
    tracing: bool = False
    batch_part_megabytes: float = 64.0  # the size of a batch file's parts (each scored by one worker)
    batch_concurrency: int = 10  # parts of one file scored at once
    s3_read_timeout_seconds: float = 60.0  # batch: the longest wait for S3's answer (a big part copy)
    drift_psi: float = DEFAULT_THRESHOLDS["psi"]  # a feature drifted when its PSI is at least this...
    drift_p_value: float = DEFAULT_THRESHOLDS["p_value"]  # ...or its test's p-value is below this
    drift_min_rows: int = DEFAULT_THRESHOLDS["min_rows"]  # fewer captured rows: too few to judge
    drift_window_hours: float = 24.0  # a scheduled check reads the rows captured in this window
    in_lambda: bool = False  # running in a Lambda container (not a test or a tool importing the code)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        bucket = env.get("MODEL_BUCKET", "").strip()
        if not bucket:
            raise ConfigurationError("MODEL_BUCKET is not set: the bucket that holds the models")
        name = env.get("DEFAULT_MODEL", cls.default_model)
        try:
            check_name(name)
        except ValueError as error:
            raise ConfigurationError(f"DEFAULT_MODEL: {error}") from None
        origin = env.get("ALLOWED_ORIGIN", "").strip()
        if origin == "*" or "," in origin:
            raise ConfigurationError(f"ALLOWED_ORIGIN must be the form's one origin (scheme://host[:port]), "
                                     f"not {origin!r}: CORS is granted to it alone")
        policy = env.get("UNKNOWN_CATEGORY", cls.unknown_category)
        if policy not in ("reject", "missing"):
            raise ConfigurationError(f"UNKNOWN_CATEGORY must be reject or missing, not {policy!r}")
        return cls(
            model_bucket=bucket,
            default_model=name,
            max_models=_number(env, "MAX_MODELS_IN_MEMORY", cls.max_models, int, minimum=1),
            max_rows=_number(env, "MAX_ROWS", cls.max_rows, int, minimum=1),
            max_explain_rows=_number(env, "MAX_EXPLAIN_ROWS", cls.max_explain_rows, int, minimum=1),
            capture_rate=_number(env, "CAPTURE_RATE", cls.capture_rate, float, minimum=0, maximum=1),
            capture_flush_rows=_number(env, "CAPTURE_FLUSH_ROWS", cls.capture_flush_rows, int, minimum=1),
            max_body_bytes=_number(env, "MAX_BODY_BYTES", cls.max_body_bytes, int, minimum=1),
            refresh_seconds=_number(env, "CHAMPION_REFRESH_SECONDS", cls.refresh_seconds, float, minimum=0),
            batch_part_megabytes=_number(env, "BATCH_PART_MB", cls.batch_part_megabytes, float,
                                         minimum=0.001),
            batch_concurrency=_number(env, "BATCH_CONCURRENCY", cls.batch_concurrency, int, minimum=1,
                                      maximum=10_000),
            s3_read_timeout_seconds=_number(env, "S3_READ_TIMEOUT_SECONDS", cls.s3_read_timeout_seconds,
                                            float, minimum=0.1),
            unknown_category=policy,
            allowed_origin=origin,
            tracing=env.get("POWERTOOLS_TRACE_DISABLED", "true").lower() == "false",
            drift_psi=_number(env, "DRIFT_PSI", cls.drift_psi, float, minimum=0),
            drift_p_value=_number(env, "DRIFT_P_VALUE", cls.drift_p_value, float, minimum=0, maximum=1),
            drift_min_rows=_number(env, "DRIFT_MIN_ROWS", cls.drift_min_rows, int, minimum=1),
            drift_window_hours=_number(env, "DRIFT_WINDOW_HOURS", cls.drift_window_hours, float, minimum=0),
            in_lambda=bool(env.get("AWS_LAMBDA_FUNCTION_NAME")),
        )

    @property
    def drift_thresholds(self) -> dict[str, float]:
        return {"psi": self.drift_psi, "p_value": self.drift_p_value, "min_rows": self.drift_min_rows}


@dataclass(frozen=True)
class ConsoleSettings:
    """The console's batch routes (handlers/console.py) and the API's authorizer: where uploads go,
    which state machine scores them, and whose tokens are accepted (serving/api/auth.py)."""

    model_bucket: str
    data_bucket: str
    state_machine_arn: str
    auth_issuer: str  # the user pool's issuer URL: a token's ``iss`` must equal it
    auth_audience: str  # the console's app client id: an ID token's ``aud``
    auth_jwks_url: str  # where the issuer's public keys are (the issuer's /.well-known/jwks.json)
    allowed_origin: str = ""
    upload_max_megabytes: float = 100.0  # bigger files: `aws s3 cp` (a multipart upload) instead
    url_seconds: int = 300  # presigned upload and download URLs expire after this
    in_lambda: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConsoleSettings:
        env = os.environ if env is None else env
        values = {}
        for field, variable in (("model_bucket", "MODEL_BUCKET"), ("data_bucket", "DATA_BUCKET"),
                                ("state_machine_arn", "BATCH_STATE_MACHINE_ARN"),
                                ("auth_issuer", "AUTH_ISSUER"), ("auth_audience", "AUTH_AUDIENCE")):
            values[field] = env.get(variable, "").strip()
            if not values[field]:
                raise ConfigurationError(f"{variable} is not set: the console's batch routes need it")
        for variable in ("AUTH_ISSUER", "AUTH_JWKS_URL"):
            url = env.get(variable, "").strip()
            if url and not url.startswith(("https://", "http://127.0.0.1:", "http://localhost:")):
                raise ConfigurationError(f"{variable} must be an https:// URL (http only on loopback), "
                                         f"not {url!r}")
        jwks = (env.get("AUTH_JWKS_URL", "").strip()
                or f"{values['auth_issuer'].rstrip('/')}/.well-known/jwks.json")
        origin = env.get("ALLOWED_ORIGIN", "").strip()
        if origin == "*" or "," in origin:
            raise ConfigurationError(f"ALLOWED_ORIGIN must be the form's one origin, not {origin!r}")
        return cls(
            **values, auth_jwks_url=jwks, allowed_origin=origin,
            upload_max_megabytes=_number(env, "UPLOAD_MAX_MB", cls.upload_max_megabytes, float, minimum=0.001,
                                         maximum=5 * 1024),  # S3's largest single upload: 5 GiB
            url_seconds=_number(env, "PRESIGNED_URL_SECONDS", cls.url_seconds, int, minimum=1, maximum=3600),
            in_lambda=bool(env.get("AWS_LAMBDA_FUNCTION_NAME")),
        )


@dataclass(frozen=True)
class AwsAccess:
    """Where and as whom the functions reach S3: Lambda sets these variables in every container
    (LocalStack adds the endpoint)."""

    region: str
    access_key: str
    secret_key: str
    session_token: str | None = None
    endpoint: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AwsAccess:
        env = os.environ if env is None else env
        missing = [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not env.get(k)]
        if missing:
            raise ConfigurationError(f"missing {' and '.join(missing)} in the environment")
        return cls(
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            access_key=env["AWS_ACCESS_KEY_ID"],
            secret_key=env["AWS_SECRET_ACCESS_KEY"],
            session_token=env.get("AWS_SESSION_TOKEN"),
            endpoint=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
        )


def _number(env, variable: str, default, kind, minimum, maximum=math.inf):
    raw = env.get(variable)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"{variable} must be {'an integer' if kind is int else 'a number'}, "
                                 f"not {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigurationError(f"{variable} must be at least {minimum}, not {raw!r}")
    if value > maximum:
        raise ConfigurationError(f"{variable} must be at most {maximum}, not {raw!r}")
    return value

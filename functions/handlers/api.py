"""The prediction API behind API Gateway (REST): /health, /model, /predict, /openapi.json.

Thin on purpose: parse, call ``serving``, answer. The champion is loaded on
the first request of a container and re-checked every CHAMPION_REFRESH_SECONDS.
Route functions are plain functions registered from one table (``ROUTES``), so
that /openapi.json describes exactly what is served.
"""

from __future__ import annotations

import base64
import binascii
import time

import orjson
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from serving import openapi
from serving.champion import ChampionCache, LoadFailure
from serving.s3 import S3Reader
from serving.schema import RequestError
from serving.settings import Settings

settings = Settings.from_env()
logger = Logger(service="predict")
metrics = Metrics(namespace="TabularServerless", service="predict")

cors = (
    CORSConfig(allow_origin=settings.allowed_origin, allow_headers=["Content-Type", "X-Api-Key"], max_age=600)
    if settings.allowed_origin
    else None
)
app = APIGatewayRestResolver(cors=cors)


def _s3_client():
    # serving.s3, not boto3: the function only reads objects, and boto3's import
    # would cost a quarter of a second on every cold start
    return S3Reader.from_env()


def _count_load_failure(failure: LoadFailure) -> None:
    metrics.add_metric(name="ModelLoadFailures", unit=MetricUnit.Count, value=1)


champion = ChampionCache(
    _s3_client,
    bucket=settings.model_bucket,
    name=settings.model_name,
    refresh_seconds=settings.refresh_seconds,
    unknown_category=settings.unknown_category,
    on_load_failure=_count_load_failure,
)


def _json(status: int, body: dict) -> Response:
    return Response(status_code=status, content_type="application/json", body=orjson.dumps(body).decode())


def health() -> Response:
    status = champion.status()
    return _json(200 if status["status"] == "ok" else 503, status)


def model() -> Response:
    predictor = champion.current()
    if predictor is None:
        return _json(503, {"error": champion.status()["reason"]})
    return _json(200, predictor.describe())


def request_body(event) -> object:
    """The JSON body of a request, or a RequestError saying what is wrong with it."""
    content_type = event.headers.get("content-type") or ""  # Powertools' headers ignore case
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise RequestError(415, "send the request as Content-Type: application/json")
    text = event.body or ""
    if event.is_base64_encoded:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, "the body is not valid base64") from None
    else:  # lone surrogates survive to orjson, which names them
        raw = text.encode("utf-8", "surrogatepass")
    if len(raw) > settings.max_body_bytes:
        raise RequestError(413, f"the body is over {settings.max_body_bytes} bytes")
    try:
        # strict JSON in UTF-8: NaN, Infinity and invalid bytes are refused
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise RequestError(400, f"the body is not valid JSON: {error}") from None


def predict() -> Response:
    body = request_body(app.current_event)
    predictor = champion.current()
    if predictor is None:
        return _json(503, {"error": champion.status()["reason"]})
    started = time.perf_counter()
    answer = predictor.predict(body, max_rows=settings.max_rows)
    metrics.add_metric(name="PredictLatency", unit=MetricUnit.Milliseconds,
                       value=(time.perf_counter() - started) * 1000)
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=len(answer["predictions"]))
    metrics.add_dimension(name="ModelVersion", value=str(predictor.version))
    return _json(200, answer)


def openapi_document() -> Response:
    predictor = champion.current()
    described = predictor.describe() if predictor else None
    return _json(200, openapi.document(ROUTES, described, settings.max_rows))


def request_error(error: RequestError) -> Response:
    metrics.add_metric(name="RequestErrors", unit=MetricUnit.Count, value=1)
    return _json(error.status, error.body())


def not_found(_error) -> Response:
    event = app.current_event
    return _json(404, {"error": f"no route {event.http_method} {event.path}"})


def unexpected(error: Exception) -> Response:
    logger.exception("unexpected error")
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
    return _json(500, {"error": "internal error", "request_id": app.lambda_context.aws_request_id})


# One table of routes: the resolver serves them and /openapi.json describes them.
ROUTES = [
    openapi.Route("GET", "/health", "Whether a model is being served, and which", health),
    openapi.Route("GET", "/model", "The champion: feature schema, classes, metrics, lineage", model),
    openapi.Route("POST", "/predict", "Class probabilities for one or many rows", predict, api_key=True),
    openapi.Route("GET", "/openapi.json", "This document", openapi_document),
]
for _route in ROUTES:
    app.route(_route.path, method=_route.method)(_route.function)
app.exception_handler(RequestError)(request_error)
app.not_found(not_found)
app.exception_handler(Exception)(unexpected)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event, context):
    return app.resolve(event, context)


if settings.tracing:
    # Imported only when X-Ray is on: aws_xray_sdk pulls in botocore (~0.4 s at start).
    from aws_lambda_powertools import Tracer

    tracer = Tracer(service="predict")
    handler = tracer.capture_lambda_handler(handler)

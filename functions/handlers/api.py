"""The prediction API behind API Gateway (REST): every published model, by name, from one function.

    GET  /health                 the default model and every model loaded in this container
    GET  /model                  the default model: feature schema, classes, metrics, lineage
    POST /predict                predictions of the default model
    GET  /models                 every model with a champion
    GET  /models/{name}          one model, as /model
    POST /models/{name}/predict  predictions of that model
    POST /explain                predictions of the default model and why: SHAP values per feature
    POST /models/{name}/explain  the same for that model
    GET  /openapi.json           this API's OpenAPI document

Thin on purpose: parse, call ``serving``, answer. A model is loaded on its
first request in a container and re-checked every CHAMPION_REFRESH_SECONDS.
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
from serving import drift, openapi
from serving.capture import Capture
from serving.champion import LoadFailure
from serving.predictor import Predictor
from serving.registry import ModelRegistry, UnknownModel
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


registry = ModelRegistry(
    _s3_client,
    settings.model_bucket,
    refresh_seconds=settings.refresh_seconds,
    unknown_category=settings.unknown_category,
    max_models=settings.max_models,
    on_load_failure=_count_load_failure,
)


def _count_capture_failure(model: str, rows: int, error: Exception) -> None:
    logger.warning("captured rows not written", extra={"model": model, "rows": rows, "error": str(error)})
    metrics.add_metric(name="CaptureWriteFailures", unit=MetricUnit.Count, value=1)


# a sample of requests, kept for drift monitoring (serving.capture says what can be lost)
capture = Capture(_s3_client, settings.model_bucket, rate=settings.capture_rate,
                  flush_rows=settings.capture_flush_rows, on_error=_count_capture_failure)


def _json(status: int, body: dict) -> Response:
    return Response(status_code=status, content_type="application/json", body=orjson.dumps(body).decode())


def serving_model(name: str) -> Predictor:
    """The model answering for ``name`` now; a RequestError when there is none, saying why."""
    try:
        champion = registry.champion(name)
    except ValueError as error:  # a name that must not become an S3 key
        raise RequestError(400, str(error)) from None
    except UnknownModel as error:
        # the default model not published yet is a service without its model; another name is unknown
        raise RequestError(503 if name == settings.default_model else 404, str(error)) from None
    predictor = champion.current()
    if predictor is None:
        raise RequestError(503, champion.status()["reason"])
    return predictor


def health() -> Response:
    try:
        default = registry.champion(settings.default_model).status()
    except UnknownModel as error:
        default = {"status": "no_model", "reason": str(error)}
    loaded = {name: cache.status() for name, cache in registry.loaded().items()}
    return _json(200 if default["status"] == "ok" else 503,
                 {**default, "default_model": settings.default_model, "models": loaded})


def model() -> Response:
    return describe(settings.default_model)


def describe(name: str) -> Response:
    return _json(200, serving_model(name).describe())


def models() -> Response:
    return _json(200, {"default_model": settings.default_model, "models": registry.listing()})


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
    return predict_with(settings.default_model)


def predict_with(name: str) -> Response:
    body = request_body(app.current_event)
    predictor = serving_model(name)
    started = time.perf_counter()
    X, output = predictor.predict_rows(body, max_rows=settings.max_rows)
    answer = predictor.answer(output)
    capture.add(predictor.name, predictor.version, X, drift.prediction_values(output, predictor.task))
    return _answered(predictor, answer, started, "PredictLatency", "Predictions")


def explain() -> Response:
    return explain_with(settings.default_model)


def explain_with(name: str) -> Response:
    body = request_body(app.current_event)
    predictor = serving_model(name)
    started = time.perf_counter()
    answer = predictor.explain(body, max_rows=settings.max_explain_rows)
    return _answered(predictor, answer, started, "ExplainLatency", "Explanations")


def _answered(predictor: Predictor, answer: dict, started: float, latency: str, count: str) -> Response:
    """The answer, with its latency, its rows and the model's name and version as metrics."""
    elapsed_ms = (time.perf_counter() - started) * 1000
    metrics.add_metric(name=latency, unit=MetricUnit.Milliseconds, value=elapsed_ms)
    metrics.add_metric(name=count, unit=MetricUnit.Count, value=len(answer["predictions"]))
    metrics.add_dimension(name="Model", value=predictor.name)
    metrics.add_dimension(name="ModelVersion", value=str(predictor.version))
    return _json(200, answer)


def openapi_document() -> Response:
    try:
        described = serving_model(settings.default_model).describe()
    except RequestError:  # the document is served even when the default model is not
        described = None
    names = [entry["name"] for entry in registry.listing()]
    return _json(200, openapi.document(ROUTES, described, settings.max_rows, names,
                                       max_explain_rows=settings.max_explain_rows))


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
    openapi.Route("GET", "/health", "Whether the default model is served; every model loaded here", health),
    openapi.Route("GET", "/model", "The default model: feature schema, classes, metrics, lineage", model),
    openapi.Route("POST", "/predict", "Predictions of the default model for one or many rows", predict,
                  api_key=True),
    openapi.Route("GET", "/models", "Every model with a champion: version, task, classes, metrics", models),
    openapi.Route("GET", "/models/{name}", "One model: feature schema, classes, metrics, lineage", describe),
    openapi.Route("POST", "/models/{name}/predict", "Predictions of one model for one or many rows",
                  predict_with, api_key=True),
    openapi.Route("POST", "/explain", "The default model's predictions and each feature's SHAP contribution",
                  explain, api_key=True),
    openapi.Route("POST", "/models/{name}/explain",
                  "One model's predictions and each feature's SHAP contribution", explain_with, api_key=True),
    openapi.Route("GET", "/openapi.json", "This document", openapi_document),
]
for _route in ROUTES:
    app.route(_route.resolver_path, method=_route.method)(_route.function)
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

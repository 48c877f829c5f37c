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
first request in a container (the default model during init, in Lambda: see
``_preload`` below) and re-checked every CHAMPION_REFRESH_SECONDS.
Route functions are plain functions in one table (``ROUTES``), so that
/openapi.json describes exactly what is served.

Routing is a dict lookup here, not Powertools' APIGatewayRestResolver. API
Gateway has already matched the route: the event's ``resource`` is the
template's path (``/models/{name}/predict``) and ``pathParameters`` holds the
name. Measured on the warm path (make bench, 2 cores): the resolver took about
80 µs of a 160 µs single-row answer (a case-insensitive copy of every header,
regular expressions over the routes, a middleware stack built per call), and
importing ``aws_lambda_powertools.event_handler`` (every resolver, asyncio,
every event class) about 30 ms of the cold start. What it did for this API is
below: the CORS headers of its CORSConfig, a JSON 404, and exception handlers.
Logger and Metrics stay Powertools'.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import threading
import time

import orjson
from serving.api import openapi
from serving.model.features import RequestError
from serving.model.predictor import Predictor
from serving.monitoring import drift
from serving.settings import Settings
from serving.store.capture import Capture
from serving.store.champion import LoadFailure
from serving.store.registry import ModelRegistry, UnknownModel
from serving.store.s3 import S3Reader

settings = Settings.from_env()


def _s3_client():
    # serving.s3, not boto3: the function only reads objects, and boto3's import
    # would cost a quarter of a second on every cold start
    return S3Reader.from_env()


_metrics_ready = threading.Event()  # set once `metrics` below exists


def _count_load_failure(failure: LoadFailure) -> None:
    _metrics_ready.wait()  # (a failure of the preload, below, can come before the metrics exist)
    metrics.add_metric(name="ModelLoadFailures", unit=MetricUnit.Count, value=1)


registry = ModelRegistry(
    _s3_client,
    settings.model_bucket,
    refresh_seconds=settings.refresh_seconds,
    unknown_category=settings.unknown_category,
    max_models=settings.max_models,
    on_load_failure=_count_load_failure,
)


def _preload_default_model() -> None:
    # not published, a bad name, S3 unreachable: the first request tries again and answers why
    with contextlib.suppress(Exception):
        registry.champion(settings.default_model).current()


# In a Lambda function, the default model is fetched while the rest of the code is imported: its
# S3 reads wait on the network while the imports below (Powertools: ~20 ms) use the CPU, and the
# init phase ends (see the join at the end) with the model loaded. Outside Lambda (tests, tools
# importing this module) nothing is read at import.
_preload = threading.Thread(target=_preload_default_model, name="preload-default-model", daemon=True)
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    _preload.start()

from aws_lambda_powertools import Logger, Metrics  # noqa: E402
from aws_lambda_powertools.metrics import MetricUnit  # noqa: E402

logger = Logger(service="predict")
metrics = Metrics(namespace="TabularServerless", service="predict")
_metrics_ready.set()

# CORS for the form's origin only (the preflight is answered by API Gateway: template.yaml's Cors)
cors = {
    "Access-Control-Allow-Origin": [settings.allowed_origin],
    "Access-Control-Allow-Headers": ["Authorization,Content-Type,X-Amz-Date,X-Amz-Security-Token,X-Api-Key"],
    "Access-Control-Max-Age": ["600"],
} if settings.allowed_origin else None


def _count_capture_failure(model: str, rows: int, error: Exception) -> None:
    logger.warning("captured rows not written", extra={"model": model, "rows": rows, "error": str(error)})
    metrics.add_metric(name="CaptureWriteFailures", unit=MetricUnit.Count, value=1)


# a sample of requests, kept for drift monitoring (serving.capture says what can be lost)
capture = Capture(_s3_client, settings.model_bucket, rate=settings.capture_rate,
                  flush_rows=settings.capture_flush_rows, on_error=_count_capture_failure)


Response = dict  # an API Gateway proxy response: statusCode, multiValueHeaders, body, isBase64Encoded


def _json(status: int, body: dict) -> Response:
    return {"statusCode": status, "multiValueHeaders": {"Content-Type": ["application/json"]},
            "body": orjson.dumps(body).decode(), "isBase64Encoded": False}


def header(event: dict, name: str, usual: str) -> str | None:
    """A request header's value, whatever the case of its name (``name`` in lower case, ``usual``
    as clients mostly spell it: looked up first, as a scan of every header costs more)."""
    headers = event.get("headers") or {}
    value = headers.get(usual)
    if value is not None:
        return value
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


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


def health(event: dict) -> Response:
    try:
        default = registry.champion(settings.default_model).status()
    except UnknownModel as error:
        default = {"status": "no_model", "reason": str(error)}
    loaded = {name: cache.status() for name, cache in registry.loaded().items()}
    return _json(200 if default["status"] == "ok" else 503,
                 {**default, "default_model": settings.default_model, "models": loaded})


def model(event: dict) -> Response:
    return describe(event, settings.default_model)


def describe(event: dict, name: str) -> Response:
    return _json(200, serving_model(name).describe())


def models(event: dict) -> Response:
    return _json(200, {"default_model": settings.default_model, "models": registry.listing()})


def request_body(event: dict) -> bytes:
    """The JSON body of a request, as bytes (``serving.schema`` parses it), or a RequestError
    saying what is wrong with it."""
    content_type = header(event, "content-type", "Content-Type") or ""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise RequestError(415, "send the request as Content-Type: application/json")
    text = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, "the body is not valid base64") from None
    else:  # lone surrogates survive to the JSON parser, which names them
        raw = text.encode("utf-8", "surrogatepass")
    if len(raw) > settings.max_body_bytes:
        raise RequestError(413, f"the body is over {settings.max_body_bytes} bytes")
    return raw


def predict(event: dict) -> Response:
    return predict_with(event, settings.default_model)


def predict_with(event: dict, name: str) -> Response:
    body = request_body(event)
    predictor = serving_model(name)
    started = time.perf_counter()
    X, output = predictor.predict_rows(body, max_rows=settings.max_rows)
    answer = predictor.answer(output)
    if capture.rate > 0:  # (the values it keeps are not worked out when nothing is kept)
        capture.add(predictor.name, predictor.version, X, drift.prediction_values(output, predictor.task))
    return _answered(predictor, answer, started, "PredictLatency", "Predictions")


def explain(event: dict) -> Response:
    return explain_with(event, settings.default_model)


def explain_with(event: dict, name: str) -> Response:
    body = request_body(event)
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


def openapi_document(event: dict) -> Response:
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


def not_found(event: dict) -> Response:
    return _json(404, {"error": f"no route {event.get('httpMethod')} {event.get('path')}"})


def unexpected(context) -> Response:
    logger.exception("unexpected error")
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
    return _json(500, {"error": "internal error", "request_id": context.aws_request_id})


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
# (method, resource) → (the route's function, whether it takes the {name} path parameter)
_DISPATCH = {(route.method, route.path): (route.function, "{name}" in route.path) for route in ROUTES}


def respond(event: dict, context) -> Response:
    """The response to one API Gateway (REST) proxy event."""
    try:
        found = _DISPATCH.get((event.get("httpMethod"), event.get("resource")))
        if found is None:
            response = not_found(event)
        elif found[1]:
            response = found[0](event, (event.get("pathParameters") or {}).get("name") or "")
        else:
            response = found[0](event)
    except RequestError as error:
        response = request_error(error)
    except Exception:  # noqa: BLE001  # the client gets a request id, the log the trace
        response = unexpected(context)
    try:
        if cors is not None and header(event, "origin", "Origin") == settings.allowed_origin:
            response["multiValueHeaders"].update(cors)
    except (AttributeError, TypeError):  # headers that are not an object: no CORS for them
        pass
    return response


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def _logged(event, context):
    return respond(event, context)


def handler(event, context):
    # API Gateway's request id, as Powertools' correlation_paths.API_GATEWAY_REST names it, read
    # directly (its JMESPath query cost ~8 µs per request) and set before the logger's decorator
    # runs, so that a logged event carries its own id
    request_context = event.get("requestContext") if isinstance(event, dict) else None
    logger.set_correlation_id(request_context.get("requestId") if isinstance(request_context, dict) else None)
    return _logged(event, context)


if settings.tracing:
    # Imported only when X-Ray is on: aws_xray_sdk pulls in botocore (~0.4 s at start).
    from aws_lambda_powertools import Tracer

    tracer = Tracer(service="predict")
    handler = tracer.capture_lambda_handler(handler)

if _preload.is_alive():  # the init phase ends with the default model loaded (or found missing)
    _preload.join()

"""The prediction API: every published model, by name, from one function.

    GET  /health                 the default model and every model loaded in this container
    GET  /model                  the default model: feature schema, classes, metrics, lineage
    POST /predict                predictions of the default model
    GET  /models                 every model with a champion
    GET  /models/{name}          one model, as /model
    POST /models/{name}/predict  predictions of that model
    POST /explain                predictions of the default model and why: SHAP values per feature
    POST /models/{name}/explain  the same for that model
    GET  /models/{name}/versions its versions (metrics, data) and promotions, newest first
    GET  /models/{name}/drift    its latest drift report, pictures inlined
    GET  /openapi.json           this API's OpenAPI document

A model is loaded on its first request in a container (the default model during
init, in Lambda) and re-checked every CHAMPION_REFRESH_SECONDS. Route functions
are plain methods in one table (``routes``), so that /openapi.json describes
exactly what is served. Routing is a dict lookup on the resource API Gateway has
already matched (docs/decisions/no-router.md says why).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from serving.api import openapi
from serving.api.responses import Response, header
from serving.api.responses import json_response as _json
from serving.model.features import RequestError
from serving.model.predictor import Predictor
from serving.monitoring import drift
from serving.settings import Settings
from serving.store.capture import Capture
from serving.store.champion import LoadFailure
from serving.store.registry import ModelRegistry, StoreUnavailable, UnknownModel

COUNT, MILLISECONDS = "Count", "Milliseconds"  # Powertools' MetricUnit values, without importing it


class PredictionApi:
    """The API of one container: its models, its request capture, its routes.

    Built in two steps so that a Lambda's init overlaps its work: the constructor
    starts fetching the default model (in Lambda only) before Powertools is imported,
    ``instrument`` then attaches the logger and metrics, and ``finish_init`` waits for
    the model.
    """

    def __init__(self, settings: Settings, s3_client: Callable[[], Any]) -> None:
        self.settings = settings
        self.metrics: Any = None
        self.logger: Any = None
        self.handler: Callable[[dict, Any], Response] = self.respond  # handlers/api.py wraps it
        self._instrumented = threading.Event()  # set once the metrics exist
        self.registry = ModelRegistry(
            s3_client, settings.model_bucket, refresh_seconds=settings.refresh_seconds,
            unknown_category=settings.unknown_category, max_models=settings.max_models,
            on_load_failure=self._count_load_failure,
        )
        # a sample of requests, kept for drift monitoring (serving.store.capture says what can be lost)
        self.capture = Capture(s3_client, settings.model_bucket, rate=settings.capture_rate,
                               flush_rows=settings.capture_flush_rows, on_error=self._count_capture_failure)
        # CORS for the form's origin only (the preflight is answered by API Gateway: template.yaml's Cors)
        self.cors = {
            "Access-Control-Allow-Origin": [settings.allowed_origin],
            "Access-Control-Allow-Headers": ["Authorization,Content-Type,X-Amz-Date,X-Amz-Security-Token,"
                                             "X-Api-Key"],
            "Access-Control-Max-Age": ["600"],
        } if settings.allowed_origin else None
        self.routes = [
            openapi.Route("GET", "/health", "Whether the default model is served; every model loaded here",
                          self.health),
            openapi.Route("GET", "/model", "The default model: feature schema, classes, metrics, lineage",
                          self.model),
            openapi.Route("POST", "/predict", "Predictions of the default model for one or many rows",
                          self.predict, api_key=True),
            openapi.Route("GET", "/models", "Every model with a champion: version, task, classes, metrics",
                          self.models),
            openapi.Route("GET", "/models/{name}", "One model: feature schema, classes, metrics, lineage",
                          self.describe),
            openapi.Route("POST", "/models/{name}/predict", "Predictions of one model for one or many rows",
                          self.predict_with, api_key=True),
            openapi.Route("POST", "/explain",
                          "The default model's predictions and each feature's SHAP contribution",
                          self.explain, api_key=True),
            openapi.Route("POST", "/models/{name}/explain",
                          "One model's predictions and each feature's SHAP contribution", self.explain_with,
                          api_key=True),
            openapi.Route("GET", "/models/{name}/versions",
                          "One model's versions (newest first, with their metrics and data) and promotions",
                          self.versions),
            openapi.Route("GET", "/models/{name}/drift",
                          "One model's latest drift report: PSI per feature and of the answers, pictures",
                          self.drift_report),
            openapi.Route("GET", "/openapi.json", "This document", self.openapi_document),
        ]
        # (method, resource) → (the route's function, whether it takes the {name} path parameter)
        self._dispatch = {(r.method, r.path): (r.function, "{name}" in r.path) for r in self.routes}
        # In Lambda the default model is fetched while the rest of the code is imported: its S3 reads
        # wait on the network while the imports use the CPU. Elsewhere nothing is read here.
        self._preload = threading.Thread(target=self._preload_default_model, name="preload-default-model",
                                         daemon=True)
        if settings.in_lambda:
            self._preload.start()

    def _preload_default_model(self) -> None:
        # not published, a bad name, S3 unreachable: the first request tries again and answers why
        with contextlib.suppress(Exception):
            self.registry.champion(self.settings.default_model).current()

    def instrument(self, logger, metrics) -> None:
        self.logger, self.metrics = logger, metrics
        self._instrumented.set()

    def finish_init(self) -> None:
        """The init phase ends with the default model loaded (or found missing)."""
        if self._preload.is_alive():
            self._preload.join()

    def _count_load_failure(self, failure: LoadFailure) -> None:
        self._instrumented.wait()  # (a failure of the preload can come before the metrics exist)
        # a champion check S3 failed (no version read), or a version refused
        name = "ChampionCheckFailures" if failure.version is None else "ModelLoadFailures"
        self.metrics.add_metric(name=name, unit=COUNT, value=1)

    def _count_capture_failure(self, model: str, rows: int, error: Exception) -> None:
        self.logger.warning("captured rows not written",
                            extra={"model": model, "rows": rows, "error": str(error)})
        self.metrics.add_metric(name="CaptureWriteFailures", unit=COUNT, value=1)

    # ---- the routes

    def serving_model(self, name: str) -> Predictor:
        """The model answering for ``name`` now; a RequestError when there is none, saying why."""
        try:
            champion = self.registry.champion(name)
        except ValueError as error:  # a name that must not become an S3 key
            raise RequestError(400, str(error)) from None
        except UnknownModel as error:
            # the default model not published yet is a service without its model; another name is unknown
            raise RequestError(503 if name == self.settings.default_model else 404, str(error)) from None
        except StoreUnavailable as error:  # S3 down or slow, and this model not loaded here
            raise RequestError(503, str(error)) from None
        predictor = champion.current()
        if predictor is None:
            raise RequestError(503, champion.status()["reason"])
        return predictor

    def health(self, event: dict) -> Response:
        try:
            default = self.registry.champion(self.settings.default_model).status()
        except (UnknownModel, StoreUnavailable) as error:
            default = {"status": "no_model", "reason": str(error)}
        loaded = {name: cache.status() for name, cache in self.registry.loaded().items()}
        return _json(200 if default["status"] == "ok" else 503,
                     {**default, "default_model": self.settings.default_model, "models": loaded})

    def model(self, event: dict) -> Response:
        return self.describe(event, self.settings.default_model)

    def describe(self, event: dict, name: str) -> Response:
        return _json(200, self.serving_model(name).describe())

    def versions(self, event: dict, name: str) -> Response:
        return _json(200, self._from_registry(self.registry.history, name))

    def drift_report(self, event: dict, name: str) -> Response:
        report = self._from_registry(self.registry.drift, name)
        if report is None:
            return _json(200, {"model": name, "report": None,
                               "reason": "no drift check has run for this model yet (DriftFunction runs on "
                                         "its schedule; `make drift` runs one now)"})
        return _json(200, {"model": name, "report": report})

    def _from_registry(self, read: Callable[[str], Any], name: str) -> Any:
        """What the registry reads for ``name``; its errors as answers (400, 404, 503)."""
        try:
            return read(name)
        except UnknownModel as error:
            raise RequestError(404, str(error)) from None
        except StoreUnavailable as error:
            raise RequestError(503, str(error)) from None
        except ValueError as error:  # a name that must not become an S3 key
            raise RequestError(400, str(error)) from None

    def models(self, event: dict) -> Response:
        try:
            listing = self.registry.listing()
        except StoreUnavailable as error:
            raise RequestError(503, str(error)) from None
        return _json(200, {"default_model": self.settings.default_model, "models": listing})

    def request_body(self, event: dict) -> bytes:
        """The JSON body of a request, as bytes (``serving.model.features`` parses it), or a
        RequestError saying what is wrong with it."""
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
        if len(raw) > self.settings.max_body_bytes:
            raise RequestError(413, f"the body is over {self.settings.max_body_bytes} bytes")
        return raw

    def predict(self, event: dict) -> Response:
        return self.predict_with(event, self.settings.default_model)

    def predict_with(self, event: dict, name: str) -> Response:
        body = self.request_body(event)
        predictor = self.serving_model(name)
        started = time.perf_counter()
        X, output = predictor.predict_rows(body, max_rows=self.settings.max_rows)
        answer = predictor.answer(output)
        if self.capture.rate > 0:  # (the values it keeps are not worked out when nothing is kept)
            self.capture.add(predictor.name, predictor.version, X,
                             drift.prediction_values(output, predictor.task))
        return self._answered(predictor, answer, started, "PredictLatency", "Predictions")

    def explain(self, event: dict) -> Response:
        return self.explain_with(event, self.settings.default_model)

    def explain_with(self, event: dict, name: str) -> Response:
        body = self.request_body(event)
        predictor = self.serving_model(name)
        started = time.perf_counter()
        answer = predictor.explain(body, max_rows=self.settings.max_explain_rows)
        return self._answered(predictor, answer, started, "ExplainLatency", "Explanations")

    def _answered(self, predictor: Predictor, answer: dict, started: float, latency: str, count: str
                  ) -> Response:
        """The answer, with its latency, its rows and the model's name and version as metrics."""
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.metrics.add_metric(name=latency, unit=MILLISECONDS, value=elapsed_ms)
        self.metrics.add_metric(name=count, unit=COUNT, value=len(answer["predictions"]))
        self.metrics.add_dimension(name="Model", value=predictor.name)
        self.metrics.add_dimension(name="ModelVersion", value=str(predictor.version))
        return _json(200, answer)

    def openapi_document(self, event: dict) -> Response:
        try:
            described = self.serving_model(self.settings.default_model).describe()
        except RequestError:  # the document is served even when the default model is not
            described = None
        names = [entry["name"] for entry in self.registry.listing()]
        routes = [*self.routes, *openapi.SIGNED_IN_ROUTES]
        return _json(200, openapi.document(routes, described, self.settings.max_rows, names,
                                           max_explain_rows=self.settings.max_explain_rows))

    # ---- one request

    def request_error(self, error: RequestError) -> Response:
        self.metrics.add_metric(name="RequestErrors", unit=COUNT, value=1)
        return _json(error.status, error.body())

    def unexpected(self, context) -> Response:
        self.logger.exception("unexpected error")
        self.metrics.add_metric(name="Errors", unit=COUNT, value=1)
        return _json(500, {"error": "internal error", "request_id": context.aws_request_id})

    def respond(self, event: dict, context) -> Response:
        """The response to one API Gateway (REST) proxy event."""
        try:
            found = self._dispatch.get((event.get("httpMethod"), event.get("resource")))
            if found is None:
                response = _json(404, {"error": f"no route {event.get('httpMethod')} {event.get('path')}"})
            elif found[1]:
                response = found[0](event, (event.get("pathParameters") or {}).get("name") or "")
            else:
                response = found[0](event)
        except RequestError as error:
            response = self.request_error(error)
        except Exception:  # noqa: BLE001  # the client gets a request id, the log the trace
            response = self.unexpected(context)
        try:
            if self.cors is not None and header(event, "origin", "Origin") == self.settings.allowed_origin:
                response["multiValueHeaders"].update(self.cors)
        except (AttributeError, TypeError):  # headers that are not an object: no CORS for them
            pass
        return response

    def correlate(self, event) -> None:
        """API Gateway's request id as the log's correlation id, read directly (Powertools' JMESPath
        query cost ~8 µs per request) and set before the logger's decorator runs."""
        request_context = event.get("requestContext") if isinstance(event, dict) else None
        self.logger.set_correlation_id(request_context.get("requestId") if isinstance(request_context, dict)
                                       else None)

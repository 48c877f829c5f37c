"""The API's OpenAPI 3.1 document, from the registered routes and the champion's schema.

Why not Powertools' generator: it needs pydantic (about 7 MB in the package and
0.4 s of import) and describes request bodies from type annotations, so it
cannot say what a client most needs: the model's features, their types,
categories and ranges, and its classes. Those come from the bundle here.

Every answer the API can give is documented, API Gateway's own included: a
403 without a valid key and a 429 when throttled carry ``{"message": ...}``,
not the function's ``{"error": ...}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from serving.model import bundle


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # OpenAPI's form: /models/{name}
    summary: str
    function: Callable[..., Any] | None  # None: served by another function
    api_key: bool = False
    signed_in: bool = False  # a console user's ID token (serving/api/auth.py), not the API key
    created: bool = False  # a success is 201 Created, not 200


# A file the console uploads for a batch: a plain name (no folders) with a batch format's extension,
# in any case (serving/api/batches.py checks names with it).
UPLOAD_NAME_PATTERN = (r"^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,190}\.([cC][sS][vV]|[jJ][sS][oO][nN][lL]|"
                       r"[nN][dD][jJ][sS][oO][nN]|[pP][aA][rR][qQ][uU][eE][tT])$")

# The console's routes (serving/api/console.py), served by their own function: described here with
# the rest of the API.
SIGNED_IN_ROUTES = [
    Route("POST", "/models/{name}/batches",
          "An upload form for one file to score with that model; the uploaded file starts the batch", None,
          signed_in=True, created=True),
    Route("GET", "/models/{name}/batches/{id}",
          "Where a batch is: waiting for its file, running (parts, rows), or done with its downloads", None,
          signed_in=True),
]


def _feature_schema(feature: dict[str, Any]) -> dict[str, Any]:
    kind = feature["type"]
    if kind == "categorical":
        schema: dict[str, Any] = {"type": "string", "enum": list(feature.get("categories") or [])}
    elif kind == "boolean":
        schema = {"type": "boolean"}
    elif kind == "datetime":
        schema = {"type": "string", "format": "date-time",
                  "description": "ISO 8601 date or timestamp; the model reads " + ", ".join(feature["parts"])}
    else:
        schema = {"type": "number"}
        if feature.get("min") is not None:
            schema["description"] = f"seen in training: {feature['min']} to {feature['max']}"
    if feature.get("nullable"):
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def _response(description: str, schema: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


_MODEL_ERRORS = (("400", "a model name that is not valid"), ("404", "no model of that name"),
                 ("503", "the model has no champion, or it could not be loaded, or S3 did not answer: why"))
_STORE_ERRORS = (("400", "a model name that is not valid"), ("404", "no model of that name"),
                 ("503", "the model store (S3) did not answer"))
_INPUT_ERRORS = (("400", "malformed JSON or request shape"),
                 ("413", "more rows than the limit, or a body too large"),
                 ("415", "not application/json"), ("422", "values the model cannot use, per row and field"))
# What the function answers with, per route, beyond 200.
_FUNCTION_ERRORS = {
    "/predict": _INPUT_ERRORS + (("503", "no model is being served"),),
    "/model": (("503", "no model is being served"),),
    "/models": (("503", "the model store (S3) did not answer, and no listing was read before"),),
    "/models/{name}/versions": _STORE_ERRORS,
    "/models/{name}/drift": _STORE_ERRORS,
    "/models/{name}": _MODEL_ERRORS,
    "/models/{name}/predict": _INPUT_ERRORS + _MODEL_ERRORS,
    "/explain": _INPUT_ERRORS + (("503", "no model is being served"),),
    "/models/{name}/explain": _INPUT_ERRORS + _MODEL_ERRORS,
    "/models/{name}/batches": (("400", "a model name, filename or size that is not valid: which"),
                               ("404", "no model of that name has a champion"),
                               ("413", "a file too big for a browser upload, and how to upload it instead"),
                               ("415", "not application/json")),
    "/models/{name}/batches/{id}": (("400", "a model name or batch id that is not valid"),
                                    ("404", "no model of that name has a champion")),
}
_OK_SCHEMA = {"/health": "Health", "/model": "Model", "/predict": "PredictResponse", "/models": "Models",
              "/models/{name}": "Model", "/models/{name}/predict": "AnyPredictResponse",
              "/openapi.json": "Document", "/explain": "ExplainResponse",
              "/models/{name}/explain": "AnyExplainResponse", "/models/{name}/versions": "Versions",
              "/models/{name}/drift": "DriftReport", "/models/{name}/batches": "Batch",
              "/models/{name}/batches/{id}": "BatchStatus"}
_REQUEST_SCHEMA = {"/predict": "PredictRequest", "/models/{name}/predict": "AnyPredictRequest",
                   "/explain": "ExplainRequest", "/models/{name}/explain": "AnyExplainRequest",
                   "/models/{name}/batches": "BatchRequest"}


def _value_item() -> dict[str, Any]:
    return {"type": "object", "required": ["prediction"], "additionalProperties": False,
            "properties": {"prediction": {"type": "number"}}}


def _class_item(classes: list[str]) -> dict[str, Any]:
    return {"type": "object", "required": ["label", "probabilities"], "additionalProperties": False,
            "properties": {
                "label": {"type": "string", **({"enum": classes} if classes else {})},
                "probabilities": {"type": "object",
                                  "properties": {c: {"type": "number"} for c in classes},
                                  "additionalProperties": {"type": "number"}}}}


def _item(model: dict[str, Any] | None) -> dict[str, Any]:
    """One row's answer from the model described (any model's when None)."""
    classes = [str(c) for c in (model or {}).get("classes") or []]
    return _value_item() if (model or {}).get("task") == "regression" else _class_item(classes)


_NUMBERS = {"type": "object", "additionalProperties": {"type": "number"}}
_EXPLANATION = {
    "type": "object", "required": ["expected_value", "contributions"],
    "description": "SHAP values in the model's raw score space (see `explains`): the expected value plus "
                   "the contributions equal the score. A date contributes through its parts (name.part). "
                   "Multiclass: one number per class, keyed by class.",
    "properties": {
        "expected_value": {"anyOf": [{"type": "number"}, _NUMBERS]},
        "contributions": {"anyOf": [_NUMBERS, {"type": "object", "additionalProperties": _NUMBERS}]},
    },
}


def _explained(item: dict[str, Any]) -> dict[str, Any]:
    """A prediction item with its explanation."""
    return {**item, "required": [*item["required"], "explanation"],
            "properties": {**item["properties"], "explanation": _EXPLANATION}}


def _explanations(item: dict[str, Any]) -> dict[str, Any]:
    schema = _predictions(item)
    schema["required"] = [*schema["required"], "explains"]
    schema["properties"]["explains"] = {"type": "string", "description": "what the contributions add up to"}
    return schema


def _predictions(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["model", "predictions"],
        "properties": {
            "model": {"type": "object", "required": ["name", "version"],
                      "properties": {"name": {"type": "string"}, "version": {"type": "integer"}}},
            "predictions": {"type": "array", "items": item},
        },
    }


def _request_schema(features: list[dict[str, Any]], max_rows: int) -> dict[str, Any]:
    positional: dict[str, Any] = {"type": "array", "minItems": len(features), "maxItems": len(features)}
    if features:
        positional.update(items=False, prefixItems=[_feature_schema(f) for f in features])
    return {
        "oneOf": [
            {"type": "object", "required": ["instances"], "additionalProperties": False,
             "properties": {"instances": {"type": "array", "minItems": 1, "maxItems": max_rows,
                                          "items": {"$ref": "#/components/schemas/Instance"}}}},
            {"type": "object", "required": ["features"], "additionalProperties": False,
             "properties": {"features": {"type": "array", "minItems": 1, "maxItems": max_rows,
                                         "items": positional}},
             "description": "values in schema order: " + ", ".join(f["name"] for f in features)},
        ]
    }


def _any_request_schema(max_rows: int) -> dict[str, Any]:
    return {
        "description": "the features of the model named in the path: GET /models/{name} lists them",
        "oneOf": [
            {"type": "object", "required": ["instances"], "additionalProperties": False,
             "properties": {"instances": {"type": "array", "minItems": 1, "maxItems": max_rows,
                                          "items": {"type": "object"}}}},
            {"type": "object", "required": ["features"], "additionalProperties": False,
             "properties": {"features": {"type": "array", "minItems": 1, "maxItems": max_rows,
                                         "items": {"type": "array"}}}},
        ]}


NAME_PATTERN = f"^{bundle.NAME_PATTERN.pattern}$"

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
        "errors": {"type": "array", "items": {"type": "object", "required": ["row", "field", "message"],
                                              "properties": {"row": {"type": "integer"},
                                                             "field": {"type": ["string", "null"]},
                                                             "message": {"type": "string"}}}}}},
    "GatewayError": {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}},
                     "description": "API Gateway's own answer (no or a wrong key, throttled)"},
    "Health": {"type": "object", "required": ["status", "default_model", "models"], "properties": {
        "status": {"type": "string", "enum": ["ok", "no_model"]},
        "default_model": {"type": "string"},
        "models": {"type": "object", "additionalProperties": {"type": "object", "required": ["status"]}},
        "model": {"type": "object",
                  "properties": {"name": {"type": "string"}, "version": {"type": "integer"}}},
        "reason": {"type": "string"},
        "last_load_failure": {"type": "object"},
        "failed_checks": {"type": "integer", "description": "champion checks S3 failed, since the start"}}},
    "Model": {"type": "object", "required": ["name", "version", "task", "feature_schema"], "properties": {
        "name": {"type": "string"}, "version": {"type": "integer"},
        "task": {"type": "string", "enum": ["binary", "multiclass", "regression"]},
        "feature_schema": {"type": "array", "items": {"type": "object", "required": ["name", "type"]}},
        "classes": {"type": "array"},
        "ignored_columns": {"type": "array", "items": {"type": "string"},
                            "description": "columns a row may carry that the model does not read"},
        "id_column": {"type": ["string", "null"],
                      "description": "the column that names a row in a batch file"},
        "decision_threshold": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                               "description": "a binary model's label is its second class when that "
                                              "class's probability is above this (else the likelier class)"},
        "ensemble": {"type": "object", "description": "an ensemble's members (family, trial, weight) and the "
                                                      "selection's out-of-fold scores"}}},
    "Document": {"type": "object", "required": ["openapi", "paths"]},
    "Versions": {"type": "object", "required": ["name", "versions", "promotions"], "properties": {
        "name": {"type": "string"},
        "versions": {"type": "array", "description": "newest first, at most 20", "items": {
            "type": "object", "required": ["version"], "properties": {
                "version": {"type": "integer"}, "created_at": {"type": ["string", "null"]},
                "unreadable": {"type": "string", "description": "why this version's manifest could not "
                                                                "be read (it has no other field then)"},
                "task": {"type": "string"}, "classes": {"type": "array"},
                "target": {"type": ["string", "null"]},
                "metrics": {"type": "object", "description": "held-out metrics"},
                "rows": {"type": ["integer", "null"]}, "rows_train": {"type": ["integer", "null"]},
                "data_sha256": {"type": ["string", "null"]}, "dataset": {"type": ["string", "null"]},
                "ignored_columns": {"type": "array", "items": {"type": "string"}},
                "framework": {"type": ["object", "null"],
                              "description": "the library that trained it (family, version)"}}}},
        "promotions": {"type": "array", "description": "newest first, at most 20", "items": {
            "type": "object", "required": ["version"], "properties": {
                "version": {"type": "integer"}, "promoted_at": {"type": ["string", "null"]},
                "reason": {"type": ["string", "null"]},
                "previous_version": {"type": ["integer", "null"]}}}}}},
    "DriftReport": {"type": "object", "required": ["model", "report"], "properties": {
        "model": {"type": "string"},
        "report": {"type": ["object", "null"], "description": "the latest check: the window, the rows, PSI "
                                                             "per feature and of the answers, the drifted "
                                                             "features, their pictures (SVG text)"},
        "reason": {"type": "string", "description": "why there is no report"}}},
    "Models": {"type": "object", "required": ["default_model", "models"], "properties": {
        "default_model": {"type": "string"},
        "models": {"type": "array", "items": {"type": "object", "required": ["name", "version", "task"],
                                              "properties": {"name": {"type": "string"},
                                                             "version": {"type": "integer"},
                                                             "task": {"type": "string"},
                                                             "classes": {"type": "array"},
                                                             "metrics": {"type": "object"}}}}}},
    "BatchRequest": {"type": "object", "required": ["filename", "bytes"], "properties": {
        "filename": {"type": "string", "pattern": UPLOAD_NAME_PATTERN,
                     "description": "the file's name, ending .csv, .jsonl, .ndjson or .parquet"},
        "bytes": {"type": "integer", "minimum": 1, "description": "the file's size"}}},
    "Batch": {"type": "object", "required": ["id", "model", "input", "upload", "status"], "properties": {
        "id": {"type": "string"}, "model": {"type": "string"}, "filename": {"type": "string"},
        "input": {"type": "string", "description": "where the file goes in the data bucket"},
        "user": {"type": "string"}, "status": {"type": "string", "description": "the batch's status route"},
        "upload": {"type": "object", "required": ["method", "url", "fields"], "description":
                   "an HTML form upload (S3's POST): the fields, then the file as `file`, to the URL",
                   "properties": {"method": {"const": "POST"}, "url": {"type": "string"},
                                  "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                                  "max_bytes": {"type": "integer"}, "expires_in": {"type": "integer"}}}}},
    "BatchStatus": {"type": "object", "required": ["id", "model", "state"], "properties": {
        "id": {"type": "string"}, "model": {"type": "string"}, "user": {"type": "string"},
        "state": {"enum": ["waiting_for_upload", "queued", "running", "succeeded", "refused", "failed"]},
        "input": {"type": "string"}, "bytes": {"type": "integer"}, "started": {"type": "string"},
        "parts": {"type": ["object", "null"], "description": "the latest map run's parts: done, total"},
        "rows_scored": {"type": "integer", "description": "rows of the parts scored so far"},
        "rows": {"type": "integer"}, "predicted": {"type": "integer"}, "invalid": {"type": "integer"},
        "model_version": {"type": "integer"}, "seconds": {"type": ["number", "null"]},
        "evaluation": {"type": ["object", "null"]},
        "downloads": {"type": "object", "additionalProperties": {"type": "string"},
                      "description": "short-lived URLs of the outputs: predictions, errors, manifest"},
        "reason": {"type": "string"}, "error": {"type": "string"}, "cause": {"type": "string"}}},
}


IGNORED = "accepted and ignored: the model does not read it (the target, or a column left out at training)"


def document(routes: list[Route], model: dict[str, Any] | None, max_rows: int,
             names: list[str] | None = None, max_explain_rows: int = 10) -> dict[str, Any]:
    """The document: ``model`` (the default model's description) gives the exact request and answer
    of /predict; ``names`` (the published models) are the values of ``{name}``."""
    features = (model or {}).get("feature_schema") or []
    paths: dict[str, Any] = {}
    for route in routes:
        responses = {"201" if route.created else "200": _response("Created" if route.created else "OK",
                                                                   _OK_SCHEMA[route.path]),
                     "403": _response("no or a wrong API key, or a path API Gateway does not have",
                                      "GatewayError"),
                     "429": _response("throttled by the usage plan", "GatewayError")}
        if route.path == "/health":
            responses["503"] = _response("no model is being served, and why", "Health")
        for status, text in _FUNCTION_ERRORS.get(route.path, ()):
            responses[status] = _response(text, "Error")
        operation: dict[str, Any] = {"summary": route.summary, "responses": responses}
        if route.api_key:
            operation["security"] = [{"ApiKey": []}]
        if route.signed_in:
            operation["security"] = [{"SignedIn": []}]
            responses["401"] = _response("no ID token, or one that is expired or not for this console: why",
                                         "Error")
        if "{name}" in route.path:
            name = {"type": "string", **({"enum": names} if names else {"pattern": NAME_PATTERN})}
            operation["parameters"] = [{"name": "name", "in": "path", "required": True, "schema": name,
                                        "description": "a model with a champion (GET /models lists them)"}]
        if "{id}" in route.path:
            operation["parameters"].append({"name": "id", "in": "path", "required": True,
                                            "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                                            "description": "as POST /models/{name}/batches answered"})
        if route.path in _REQUEST_SCHEMA:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{_REQUEST_SCHEMA[route.path]}"}}}}
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    title = f"Predictions: {model['name']} v{model['version']}" if model else "Predictions"
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": str((model or {}).get("version", "0"))},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "SignedIn": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                             "description": "the ID token of a console user, from the user pool's sign-in"},
            },
            "schemas": {
                **_SCHEMAS,
                "Instance": {
                    "type": "object",
                    "properties": {**{f["name"]: _feature_schema(f) for f in features},
                                   **{name: {"description": IGNORED}
                                      for name in (model or {}).get("ignored_columns") or []}},
                    "required": [f["name"] for f in features],
                    "additionalProperties": False,
                },
                "PredictRequest": _request_schema(features, max_rows),
                "PredictResponse": _predictions(_item(model)),
                "AnyPredictRequest": _any_request_schema(max_rows),
                "AnyPredictResponse": _predictions({"oneOf": [_class_item([]), _value_item()]}),
                "ExplainRequest": _request_schema(features, max_explain_rows),
                "ExplainResponse": _explanations(_explained(_item(model))),
                "AnyExplainRequest": _any_request_schema(max_explain_rows),
                "AnyExplainResponse": _explanations({"oneOf": [_explained(_class_item([])),
                                                               _explained(_value_item())]}),
            },
        },
    }

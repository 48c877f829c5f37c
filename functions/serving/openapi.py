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


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    summary: str
    function: Callable[[], Any]
    api_key: bool = False


def _feature_schema(feature: dict[str, Any]) -> dict[str, Any]:
    kind = feature["type"]
    if kind == "categorical":
        schema: dict[str, Any] = {"type": "string", "enum": list(feature.get("categories") or [])}
    elif kind == "boolean":
        schema = {"type": "boolean"}
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


# What the function answers with, per route path, beyond 200.
_FUNCTION_ERRORS = {
    "/predict": (("400", "malformed JSON or request shape"),
                 ("413", "more rows than the limit, or a body too large"),
                 ("415", "not application/json"),
                 ("422", "values the model cannot use, per row and field"),
                 ("503", "no model is being served")),
    "/model": (("503", "no model is being served"),),
}


def _prediction_schema(model: dict[str, Any] | None) -> dict[str, Any]:
    classes = [str(c) for c in (model or {}).get("classes") or []]
    if (model or {}).get("task") == "regression":
        item = {"type": "object", "required": ["prediction"], "additionalProperties": False,
                "properties": {"prediction": {"type": "number"}}}
    else:
        item = {"type": "object", "required": ["label", "probabilities"], "additionalProperties": False,
                "properties": {
                    "label": {"type": "string", **({"enum": classes} if classes else {})},
                    "probabilities": {"type": "object",
                                      "properties": {c: {"type": "number"} for c in classes},
                                      "additionalProperties": {"type": "number"}}}}
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
    "Health": {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "enum": ["ok", "no_model"]},
        "model": {"type": "object",
                  "properties": {"name": {"type": "string"}, "version": {"type": "integer"}}},
        "reason": {"type": "string"},
        "last_load_failure": {"type": "object"}}},
    "Model": {"type": "object", "required": ["name", "version", "task", "feature_schema"], "properties": {
        "name": {"type": "string"}, "version": {"type": "integer"},
        "task": {"type": "string", "enum": ["binary", "multiclass", "regression"]},
        "feature_schema": {"type": "array", "items": {"type": "object", "required": ["name", "type"]}},
        "classes": {"type": "array"}}},
    "Document": {"type": "object", "required": ["openapi", "paths"]},
}

_OK_SCHEMA = {"/health": "Health", "/model": "Model", "/predict": "PredictResponse",
              "/openapi.json": "Document"}


def document(routes: list[Route], model: dict[str, Any] | None, max_rows: int) -> dict[str, Any]:
    features = (model or {}).get("feature_schema") or []
    paths: dict[str, Any] = {}
    for route in routes:
        responses = {"200": _response("OK", _OK_SCHEMA[route.path]),
                     "429": _response("throttled by the usage plan", "GatewayError")}
        if route.path == "/health":
            responses["503"] = _response("no model is being served, and why", "Health")
        for status, text in _FUNCTION_ERRORS.get(route.path, ()):
            responses[status] = _response(text, "Error")
        operation: dict[str, Any] = {"summary": route.summary, "responses": responses}
        if route.api_key:
            operation["security"] = [{"ApiKey": []}]
            responses["403"] = _response("no or a wrong API key", "GatewayError")
        if route.path == "/predict":
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/PredictRequest"}}}}
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    title = f"Predictions: {model['name']} v{model['version']}" if model else "Predictions"
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": str((model or {}).get("version", "0"))},
        "paths": paths,
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "schemas": {
                **_SCHEMAS,
                "Instance": {
                    "type": "object",
                    "properties": {f["name"]: _feature_schema(f) for f in features},
                    "required": [f["name"] for f in features],
                    "additionalProperties": False,
                },
                "PredictRequest": _request_schema(features, max_rows),
                "PredictResponse": _prediction_schema(model),
            },
        },
    }

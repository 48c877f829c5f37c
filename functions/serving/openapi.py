"""The API's OpenAPI 3.1 document, from the registered routes and the champion's schema.

Why not Powertools' generator: it needs pydantic (about 7 MB in the package and
0.4 s of import) and describes request bodies from type annotations, so it
cannot say what a client most needs: the model's features, their types,
categories and ranges, and its classes. Those come from the bundle here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    summary: str
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


def _error(status: str, text: str) -> dict[str, Any]:
    return {status: {"description": text, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}}


def document(routes: list[Route], model: dict[str, Any] | None, max_rows: int) -> dict[str, Any]:
    features = (model or {}).get("feature_schema") or []
    classes = [str(c) for c in (model or {}).get("classes") or []]
    instance = {
        "type": "object",
        "properties": {f["name"]: _feature_schema(f) for f in features},
        "required": [f["name"] for f in features],
        "additionalProperties": False,
    }
    request = {
        "oneOf": [
            {"type": "object", "required": ["instances"], "additionalProperties": False,
             "properties": {"instances": {"type": "array", "minItems": 1, "maxItems": max_rows,
                                          "items": {"$ref": "#/components/schemas/Instance"}}}},
            {"type": "object", "required": ["features"], "additionalProperties": False,
             "properties": {"features": {"type": "array", "minItems": 1, "maxItems": max_rows,
                                         "items": {"type": "array", "minItems": len(features),
                                                   "maxItems": len(features)}}},
             "description": "values in schema order: " + ", ".join(f["name"] for f in features)},
        ]
    }
    prediction = {
        "type": "object",
        "required": ["model", "predictions"],
        "properties": {
            "model": {"type": "object", "properties": {"name": {"type": "string"},
                                                       "version": {"type": "integer"}}},
            "predictions": {"type": "array", "items": {
                "type": "object", "required": ["label", "probabilities"],
                "properties": {
                    "label": {"type": "string", **({"enum": classes} if classes else {})},
                    "probabilities": {"type": "object",
                                      "properties": {c: {"type": "number"} for c in classes},
                                      "additionalProperties": {"type": "number"}},
                }}},
        },
    }
    paths: dict[str, Any] = {}
    for route in routes:
        operation: dict[str, Any] = {"summary": route.summary, "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {}}}}}}
        if route.api_key:
            operation["security"] = [{"ApiKey": []}]
            operation["responses"].update(_error("403", "no or wrong API key"))
        if route.path == "/predict":
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/PredictRequest"}}}}
            operation["responses"]["200"]["content"]["application/json"]["schema"] = {
                "$ref": "#/components/schemas/PredictResponse"}
            for status, text in (("400", "malformed JSON or request shape"),
                                 ("413", f"more than {max_rows} rows, or a body too large"),
                                 ("415", "not application/json"),
                                 ("422", "values the model cannot use, per row and field"),
                                 ("429", "throttled by the usage plan"),
                                 ("503", "no model is being served")):
                operation["responses"].update(_error(status, text))
        elif route.path in ("/health", "/model"):
            operation["responses"].update(_error("503", "no model is being served"))
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    title = f"Predictions: {model['name']} v{model['version']}" if model else "Predictions"
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": str((model or {}).get("version", "0"))},
        "paths": paths,
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "schemas": {
                "Instance": instance,
                "PredictRequest": request,
                "PredictResponse": prediction,
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"},
                    "errors": {"type": "array", "items": {"type": "object", "properties": {
                        "row": {"type": "integer"}, "field": {"type": ["string", "null"]},
                        "message": {"type": "string"}}}}}},
            },
        },
    }

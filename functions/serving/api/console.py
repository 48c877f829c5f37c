"""The routes for a signed-in user of the console: batch scoring from the browser.

Served by their own function (handlers/console.py): it may write to the data bucket
and read executions, which the prediction function may not. Every request carries
the user's ID token, checked here (serving/api/auth.py) whether or not an authorizer
checked it before. serving/api/openapi.py describes them (``SIGNED_IN_ROUTES``) with the
prediction routes.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from serving.api.auth import TokenVerifier, Unauthorized, user_of
from serving.api.batches import BatchConsole
from serving.api.responses import Response, json_response
from serving.model.features import RequestError
from serving.settings import ConsoleSettings

MAX_BODY_BYTES = 4096  # a filename and a size


class ConsoleApi:
    def __init__(self, settings: ConsoleSettings, verifier: TokenVerifier, batches: BatchConsole) -> None:
        self.settings, self.verifier, self.batches = settings, verifier, batches
        self.cors = {"Access-Control-Allow-Origin": [settings.allowed_origin],
                     "Access-Control-Allow-Headers": ["Authorization,Content-Type"],
                     "Access-Control-Max-Age": ["600"]} if settings.allowed_origin else None

    def respond(self, event: dict, logger) -> Response:
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        try:
            claims = self.verifier.claims(headers.get("authorization"))
            response = self._route(event, headers, claims, logger)
        except Unauthorized as refused:
            response = json_response(401, {"error": str(refused)})
        except RequestError as error:
            response = json_response(error.status, error.body())
        if self.cors is not None and headers.get("origin") == self.settings.allowed_origin:
            response["multiValueHeaders"].update(self.cors)
        return response

    def _route(self, event: dict, headers: dict[str, str], claims: dict[str, Any], logger) -> Response:
        route, user = (event.get("httpMethod"), event.get("resource")), user_of(claims)
        if route == ("POST", "/models/{name}/batches"):
            name = event["pathParameters"]["name"]  # (API Gateway gives what the route's path names)
            created = self.batches.create(name, self._body(event, headers))
            logger.info("batch upload granted", extra={"user": user, "model": name, "batch": created["id"],
                                                        "file": created["filename"]})
            return json_response(201, {**created, "user": user})
        if route == ("GET", "/models/{name}/batches/{id}"):
            parameters = event["pathParameters"]
            status = self.batches.status(parameters["name"], parameters["id"])
            return json_response(200, {**status, "user": user})
        return json_response(404, {"error": f"no route {event.get('httpMethod')} {event.get('path')}"})

    def _body(self, event: dict, headers: dict[str, str]) -> dict[str, Any]:
        if str(headers.get("content-type")).split(";")[0].strip().lower() != "application/json":
            raise RequestError(415, "send the request as Content-Type: application/json")
        text = event.get("body") or "{}"  # no body: what is missing is then named
        if event.get("isBase64Encoded"):
            try:
                text = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise RequestError(400, "the body is not valid base64") from None
        if len(text) > MAX_BODY_BYTES:
            raise RequestError(413, f"the body is over {MAX_BODY_BYTES} bytes: send the file's name and size")
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise RequestError(400, f"the body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise RequestError(400, 'the body must be an object: {"filename": "rides.csv", "bytes": 1234}')
        return body

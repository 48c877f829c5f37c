"""The console's routes: the token first, then the route; answers as JSON with CORS for the form."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from aws_lambda_powertools import Logger
from serving.api.auth import Unauthorized
from serving.api.console import MAX_BODY_BYTES, ConsoleApi
from serving.model.features import RequestError
from serving.settings import ConsoleSettings

ORIGIN = "http://127.0.0.1:8765"
BATCH = "0123456789abcdef0123456789abcdef"


class Verifier:
    def __init__(self):
        self.headers = []

    def claims(self, authorization):
        self.headers.append(authorization)
        if authorization != "Bearer good":
            raise Unauthorized("the token has expired: sign in again")
        return {"sub": "s-1", "cognito:username": "ada"}


class Batches:
    def __init__(self):
        self.calls = []

    def create(self, name, request):
        self.calls.append(("create", name, request))
        if name == "missing":
            raise RequestError(404, "no model named 'missing' has a champion")
        return {"id": BATCH, "model": name, "filename": request.get("filename")}

    def status(self, name, batch):
        self.calls.append(("status", name, batch))
        return {"id": batch, "model": name, "state": "queued"}


@pytest.fixture
def api():
    settings = ConsoleSettings(model_bucket="m", data_bucket="d", state_machine_arn="arn", auth_issuer="https://i",
                               auth_audience="c", auth_jwks_url="https://i/jwks", allowed_origin=ORIGIN)
    return ConsoleApi(settings, Verifier(), Batches())


def request(method="POST", resource="/models/{name}/batches", name="fares", batch=None, body=None,
            token="good", origin=ORIGIN, content_type="application/json", encode=False) -> dict:
    headers = {"Origin": origin, "Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    if encode and text is not None:
        text = base64.b64encode(text.encode()).decode()
    return {"httpMethod": method, "resource": resource, "path": resource.replace("{name}", name or ""),
            "pathParameters": {"name": name, **({"id": batch} if batch else {})}, "headers": headers,
            "body": text, "isBase64Encoded": encode}


@pytest.fixture
def logged(caplog):
    """Powertools' logger (it refuses extra keys that a log record has already, as "filename")."""
    caplog.set_level(logging.INFO)

    def records():
        return [r for r in caplog.records if r.name == "console"]

    return Logger(service="console"), records


def answer(api, event, logged) -> tuple[int, dict, dict]:
    response = api.respond(event, logged[0])
    return response["statusCode"], json.loads(response["body"]), response["multiValueHeaders"]


def test_a_signed_in_user_gets_an_upload_form_and_it_is_logged(api, logged):
    status, body, headers = answer(api, request(body={"filename": "rides.csv", "bytes": 9}), logged)
    assert status == 201 and body == {"id": BATCH, "model": "fares", "filename": "rides.csv", "user": "ada"}
    assert api.batches.calls == [("create", "fares", {"filename": "rides.csv", "bytes": 9})]
    assert headers["Access-Control-Allow-Origin"] == [ORIGIN]
    assert headers["Access-Control-Allow-Headers"] == ["Authorization,Content-Type"]
    assert headers["Access-Control-Max-Age"] == ["600"]
    assert headers["Content-Type"] == ["application/json"]
    [line] = logged[1]()
    assert line.getMessage() == "batch upload granted"
    assert (line.user, line.model, line.batch, line.file) == ("ada", "fares", BATCH, "rides.csv")


def test_a_base64_body_is_read_as_api_gateway_may_send_it(api, logged):
    status, _, _ = answer(api, request(body={"filename": "a.csv", "bytes": 1}, encode=True), logged)
    assert status == 201
    bad = request(body="{}")
    bad.update(body="%%%", isBase64Encoded=True)
    assert answer(api, bad, logged)[:2] == (400, {"error": "the body is not valid base64"})


def test_a_signed_in_user_reads_a_batch(api, logged):
    status, body, _ = answer(api, request("GET", "/models/{name}/batches/{id}", batch=BATCH), logged)
    assert status == 200 and body == {"id": BATCH, "model": "fares", "state": "queued", "user": "ada"}
    assert api.batches.calls == [("status", "fares", BATCH)]


@pytest.mark.parametrize("token", [None, "expired"])
def test_without_a_valid_token_nothing_runs_and_the_answer_is_401(api, logged, token):
    for event in (request(body={"filename": "a.csv", "bytes": 1}, token=token),
                  request("GET", "/models/{name}/batches/{id}", batch=BATCH, token=token)):
        status, body, headers = answer(api, event, logged)
        assert status == 401 and body == {"error": "the token has expired: sign in again"}
        assert headers["Access-Control-Allow-Origin"] == [ORIGIN]  # the page can read why
    assert api.batches.calls == []
    assert api.verifier.headers[0] == (None if token is None else f"Bearer {token}")


@pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
def test_the_headers_are_found_in_any_case(api, logged, case):
    event = request(body={"filename": "a.csv", "bytes": 1}, token="good", content_type="application/json; charset=utf-8")
    event["headers"] = {case(k): v for k, v in event["headers"].items()}
    status, _, headers = answer(api, event, logged)
    assert status == 201 and headers["Access-Control-Allow-Origin"] == [ORIGIN]
    assert api.verifier.headers == ["Bearer good"]


def test_no_cors_headers_where_no_origin_is_allowed(logged):
    settings = ConsoleSettings(model_bucket="m", data_bucket="d", state_machine_arn="arn", auth_issuer="https://i",
                               auth_audience="c", auth_jwks_url="https://i/jwks", allowed_origin="")
    api = ConsoleApi(settings, Verifier(), Batches())
    assert api.cors is None
    event = request(body={"filename": "a.csv", "bytes": 1}, origin="")
    assert "Access-Control-Allow-Origin" not in answer(api, event, logged)[2]


def test_no_cors_for_another_origin_or_none(api, logged):
    assert "Access-Control-Allow-Origin" not in answer(api, request(body={}, origin="https://evil.example"),
                                                       logged)[2]
    api.cors = None
    assert "Access-Control-Allow-Origin" not in answer(api, request(body={}), logged)[2]


@pytest.mark.parametrize("event_changes, status, message", [
    ({"headers": {"Content-Type": "text/plain", "Authorization": "Bearer good"}}, 415,
     "send the request as Content-Type: application/json"),
    ({"body": "{"}, 400, "the body is not JSON"),
    ({"body": "[1, 2]"}, 400, 'the body must be an object: {"filename": "rides.csv", "bytes": 1234}'),
    ({"body": None}, 201, None),  # no body: the route names what is missing (here the fake takes it)
    ({"body": "{" + " " * MAX_BODY_BYTES + "}"}, 413, f"the body is over {MAX_BODY_BYTES} bytes"),
    ({"pathParameters": {"name": "missing"}}, 404, "no model named 'missing' has a champion"),
])
def test_a_bad_request_is_a_4xx_saying_why(api, logged, event_changes, status, message):
    event = {**request(body={"filename": "a.csv", "bytes": 1}), **event_changes}
    got, body, _ = answer(api, event, logged)
    assert got == status and (message is None or body["error"].startswith(message))


def test_a_body_at_the_limit_is_read(api, logged):
    body = json.dumps({"filename": "a.csv", "bytes": 1})
    event = request(body=body + " " * (MAX_BODY_BYTES - len(body)))
    assert answer(api, event, logged)[0] == 201


def test_an_unknown_route_is_404(api, logged):
    status, body, _ = answer(api, request("DELETE", "/models/{name}/batches"), logged)
    assert status == 404 and body == {"error": "no route DELETE /models/fares/batches"}

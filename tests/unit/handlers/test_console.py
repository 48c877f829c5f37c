"""The console's two functions' wiring: their settings checked at init, a refused token as API
Gateway wants it, an unexpected error as a 500 with the request id."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from serving.api.auth import Unauthorized

from tests.unit.fakes import ROOT, Context
from tests.unit.handlers.test_api import FUNCTIONS

ENV = {"MODEL_BUCKET": "models", "DATA_BUCKET": "data", "AUTH_ISSUER": "https://cognito-idp.example/pool",
       "AUTH_AUDIENCE": "client", "BATCH_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:0:stateMachine:s",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
METHOD = "arn:aws:execute-api:us-east-1:000000000000:abc123/v1/POST/models/fares/batches"


@pytest.fixture
def handlers(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    from handlers import authorizer, console

    return authorizer, console


class Verifier:
    def claims(self, token):
        if token != "Bearer good":
            raise Unauthorized("the token has expired: sign in again")
        return {"sub": "s-1", "cognito:username": "ada"}


@pytest.mark.parametrize("module", ["handlers.console", "handlers.authorizer"])
def test_a_missing_setting_fails_the_container_at_init_naming_it(module):
    env = {k: v for k, v in ENV.items() if k != "AUTH_AUDIENCE"}
    code = f"import sys; sys.path.insert(0, {str(FUNCTIONS)!r}); import {module}"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={**env, "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "AUTH_AUDIENCE is not set: the console's batch routes need it" in result.stderr


def test_the_authorizer_allows_a_valid_token_on_the_console_routes_of_its_stage(handlers, monkeypatch):
    authorizer, _ = handlers
    monkeypatch.setattr(authorizer, "verifier", Verifier())
    answer = authorizer.handler({"type": "TOKEN", "authorizationToken": "Bearer good", "methodArn": METHOD},
                                Context(function_name="AuthorizerFunction"))
    assert answer["principalId"] == "ada" and answer["context"] == {"user": "ada"}
    stage = "arn:aws:execute-api:us-east-1:000000000000:abc123/v1"
    assert answer["policyDocument"] == {"Version": "2012-10-17", "Statement": [{
        "Action": "execute-api:Invoke", "Effect": "Allow",
        "Resource": [f"{stage}/POST/models/*/batches", f"{stage}/GET/models/*/batches/*"]}]}


@pytest.mark.parametrize("token", [None, "Bearer expired"])
def test_the_authorizer_answers_unauthorized_to_anything_else(handlers, monkeypatch, token):
    authorizer, _ = handlers
    monkeypatch.setattr(authorizer, "verifier", Verifier())
    with pytest.raises(Exception, match="^Unauthorized$"):  # API Gateway's word for a 401
        authorizer.handler({"type": "TOKEN", "authorizationToken": token, "methodArn": METHOD},
                           Context(function_name="AuthorizerFunction"))


def test_the_authorizer_checks_tokens_of_the_configured_pool(handlers):
    from serving.settings import ConsoleSettings

    authorizer, _ = handlers
    verifier = authorizer.init(ConsoleSettings.from_env({**ENV, "AUTH_JWKS_URL": "https://keys.example/jwks"}))
    assert (verifier.issuer, verifier.audience) == ("https://cognito-idp.example/pool", "client")
    assert verifier.keys.uri == "https://keys.example/jwks"


def test_the_console_function_is_wired_to_its_settings(handlers):
    from serving.settings import ConsoleSettings

    _, console = handlers
    settings = ConsoleSettings.from_env({**ENV, "AUTH_JWKS_URL": "https://keys.example/jwks", "DATA_BUCKET": "d2"})
    app = console.init(settings)
    assert (app.verifier.issuer, app.verifier.audience) == ("https://cognito-idp.example/pool", "client")
    assert app.verifier.keys.uri == "https://keys.example/jwks"
    assert app.settings is settings and app.batches.settings is settings
    # upload forms and links signed with SigV4, as every region takes them
    assert app.batches.s3.generate_presigned_post("b", "k")["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in app.batches.s3.generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "k"})
    assert app.batches.sfn.meta.service_model.service_name == "stepfunctions"
    given = object()
    assert console.init(settings, s3=given, stepfunctions=given).batches.s3 is given


def test_an_unexpected_error_is_a_500_with_the_request_id(handlers, monkeypatch):
    _, console = handlers

    def broken(event, logger):
        raise RuntimeError("boom")

    monkeypatch.setattr(console.app, "respond", broken)
    response = console.handler({"requestContext": {"requestId": "r-9"}}, Context(aws_request_id="req-7"))
    assert response["statusCode"] == 500
    assert json.loads(response["body"]) == {"error": "internal error", "request_id": "req-7"}


def test_the_console_function_refuses_a_request_without_a_token(handlers):
    _, console = handlers
    response = console.handler({"httpMethod": "GET", "resource": "/models/{name}/batches/{id}", "headers": {},
                                "requestContext": {"requestId": "r-1"}}, Context())
    assert response["statusCode"] == 401
    assert console.app.verifier.audience == "client"
    assert console.app.batches.settings.data_bucket == "data"

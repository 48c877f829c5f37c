"""The console's batch routes on the deployed stack: refused without a valid token from the local
issuer (moto's Cognito), and with one, a file uploaded with the form S3 checks, scored, downloaded."""

from __future__ import annotations

import io
import json
import time

import jwt
import pandas as pd
import pytest
import requests
from sklearn.datasets import load_breast_cancer

PASSWORD = "Test-console-pass-1"  # nosec B105 - the local issuer's test user


@pytest.fixture(scope="module")
def signed_in(stack, issuer):
    pool = issuer.pool()
    issuer.add_user(pool, "tester", PASSWORD)
    return {"pool": pool, "tokens": issuer.sign_in(pool, "tester", PASSWORD)}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def issuers_key():
    """The private key moto's Cognito signs with (public in moto's package): a token it could have issued."""
    from moto.utilities.utils import load_resource

    return jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(load_resource("cognitoidp/resources/jwks-private.json")))


def forged(pool, **claims) -> str:
    now = int(time.time())
    payload = {"iss": pool.issuer, "aud": pool.client_id, "sub": "s", "token_use": "id", "iat": now,
               "exp": now + 600, "cognito:username": "tester", **claims}
    return jwt.encode(payload, issuers_key(), algorithm="RS256", headers={"kid": "dummy"})


def test_the_batch_routes_refuse_a_request_without_a_valid_token(stack, trained, signed_in, issuer):
    pool, api = signed_in["pool"], stack["api_url"]
    other_client = issuer.client().create_user_pool_client(
        UserPoolId=pool.pool_id, ClientName="another-app", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"],
    )["UserPoolClient"]["ClientId"]
    other_app = issuer.client().initiate_auth(
        ClientId=other_client, AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "tester", "PASSWORD": PASSWORD})["AuthenticationResult"]["IdToken"]
    old = int(time.time()) - 7200
    refused = {
        "no token": ({}, "sign in: this route needs an Authorization: Bearer <ID token> header"),
        "expired": (bearer(forged(pool, iat=old, exp=old + 3600)), "the token has expired: sign in again"),
        "another application": (bearer(other_app), "the token was issued to another application"),
        "the access token": (bearer(signed_in["tokens"]["AccessToken"]),
                             "the token has no 'aud' claim: send the ID token, not the access token"),
        "the API key": ({"x-api-key": stack["api_key"]},
                        "sign in: this route needs an Authorization: Bearer <ID token> header"),
    }
    batch = "0" * 32
    for case, (headers, reason) in refused.items():
        for response in (requests.post(f"{api}/models/breast-cancer/batches", json={"filename": "a.csv", "bytes": 5},
                                       headers=headers, timeout=30),
                         requests.get(f"{api}/models/breast-cancer/batches/{batch}", headers=headers, timeout=30)):
            assert response.status_code == 401, (case, response.text)
            assert response.json() == {"error": reason}, case
    assert requests.get(f"{api}/models/breast-cancer/batches/{batch}", timeout=30,
                        headers=bearer(forged(pool))).json()["state"] == "waiting_for_upload"  # the same key, valid


def test_the_preflight_lets_the_form_send_its_token(stack):
    response = requests.options(f"{stack['api_url']}/models/breast-cancer/batches", timeout=30, headers={
        "Origin": stack["allowed_origin"], "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == stack["allowed_origin"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"].split(",")


def upload(batch: dict, body: bytes, **field_changes) -> requests.Response:
    form = batch["upload"]
    return requests.post(form["url"], data={**form["fields"], **field_changes}, files={"file": ("f.csv", body)},
                         timeout=60)


def test_a_signed_in_user_scores_a_file_uploaded_with_the_form(stack, trained, signed_in):
    api, headers = stack["api_url"], bearer(signed_in["tokens"]["IdToken"])
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(250)
    body = rows.to_csv(index=False).encode()
    created = requests.post(f"{api}/models/breast-cancer/batches", json={"filename": "cells May.csv",
                                                                          "bytes": len(body)},
                            headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    batch = created.json()
    assert batch["user"] == "tester" and batch["input"] == f"batch/input/breast-cancer/{batch['id']}.csv"

    # S3 (LocalStack) holds the form to its policy: its one key, its name, its size
    assert upload(batch, body, key="batch/input/breast-cancer/other.csv").status_code == 403
    assert upload(batch, body, **{"x-amz-meta-filename": "other.csv"}).status_code == 403
    assert upload(batch, b"x" * (batch["upload"]["max_bytes"] + 1)).status_code == 400
    assert upload(batch, body).status_code == 204

    states, deadline = [], time.monotonic() + 180
    while time.monotonic() < deadline:
        status = requests.get(f"{api}{batch['status']}", headers=headers, timeout=30).json()
        states.append(status["state"])
        if status["state"] in ("succeeded", "refused", "failed"):
            break
        time.sleep(0.5)
    assert status["state"] == "succeeded", status
    assert (status["rows"], status["predicted"], status["invalid"]) == (250, 250, 0)
    assert status["filename"] == "cells May.csv" and status["bytes"] == len(body)
    assert set(states) <= {"queued", "running", "succeeded"}

    predictions = requests.get(status["downloads"]["predictions"], timeout=30)
    assert predictions.headers["Content-Disposition"] == 'attachment; filename="cells May.predictions.csv"'
    scored = pd.read_csv(io.BytesIO(predictions.content))
    served = requests.post(f"{api}/predict", headers={"x-api-key": stack["api_key"]}, timeout=60,
                           json={"instances": json.loads(rows.to_json(orient="records"))}).json()["predictions"]
    assert scored["label"].tolist() == [p["label"] for p in served]
    manifest = requests.get(status["downloads"]["manifest"], timeout=30).json()
    assert manifest["input"] == batch["input"] and manifest["rows"] == 250
    assert "errors" not in status["downloads"]

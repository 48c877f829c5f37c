"""API Gateway's authorizer of the console's routes (in an account): the same token check as the
routes' own function (serving/api/auth.py), before the request reaches it.

A TOKEN authorizer: ``authorizationToken`` is the Authorization header. A valid ID token is
allowed to call the console's routes (the policy covers the stage's batch routes, so that API
Gateway may cache it per token); anything else is refused with 401 by raising "Unauthorized".
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from serving.api.auth import TokenVerifier, Unauthorized, user_of
from serving.settings import ConsoleSettings

logger = Logger(service="authorizer")


def init(settings: ConsoleSettings) -> TokenVerifier:
    """What the module runs once; tests call it for a fresh container."""
    return TokenVerifier(settings.auth_issuer, settings.auth_audience, settings.auth_jwks_url)


verifier = init(ConsoleSettings.from_env())


def policy(method_arn: str, user: str) -> dict:
    """Allows the console's routes of the stage the request came to: arn:...:api/stage/METHOD/path."""
    api_stage = "/".join(method_arn.split("/")[:2])
    return {
        "principalId": user,
        "policyDocument": {"Version": "2012-10-17", "Statement": [{
            "Action": "execute-api:Invoke", "Effect": "Allow",
            "Resource": [f"{api_stage}/POST/models/*/batches", f"{api_stage}/GET/models/*/batches/*"]}]},
        "context": {"user": user},
    }


@logger.inject_lambda_context
def handler(event, context):
    try:
        claims = verifier.claims(event.get("authorizationToken"))
    except Unauthorized as refused:
        logger.info("token refused", extra={"reason": str(refused)})
        raise Exception("Unauthorized") from None  # noqa: TRY002  # API Gateway's word for a 401
    return policy(event["methodArn"], user_of(claims))

"""The console's batch routes as one Lambda function: wiring only (serving/api/console.py).

``init`` is what the module runs once, and what tests call for a fresh container.
"""

from __future__ import annotations

import boto3
from aws_lambda_powertools import Logger
from serving.api.auth import TokenVerifier
from serving.api.batches import BatchConsole
from serving.api.console import ConsoleApi
from serving.api.responses import json_response
from serving.settings import ConsoleSettings

logger = Logger(service="console")


def init(settings: ConsoleSettings, s3=None, stepfunctions=None) -> ConsoleApi:
    # SigV4 upload forms: botocore's default for a presigned POST in us-east-1 is still the old signature
    from botocore.config import Config

    s3 = s3 or boto3.client("s3", config=Config(signature_version="s3v4"))
    verifier = TokenVerifier(settings.auth_issuer, settings.auth_audience, settings.auth_jwks_url)
    batches = BatchConsole(settings, s3, stepfunctions or boto3.client("stepfunctions"))
    return ConsoleApi(settings, verifier, batches)


app = init(ConsoleSettings.from_env())


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def handler(event, context):
    try:
        return app.respond(event, logger)
    except Exception:  # noqa: BLE001  # the client gets a request id, the log the trace
        logger.exception("unexpected error")
        return json_response(500, {"error": "internal error", "request_id": context.aws_request_id})

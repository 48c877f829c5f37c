"""The prediction API's Lambda function: wiring only (the routes are serving/api/app.py's).

The default model is fetched during init (in Lambda) while Powertools imports;
``init`` is what the module runs once, and what tests call for a fresh container.
"""

from __future__ import annotations

from serving.api.app import PredictionApi
from serving.settings import Settings
from serving.store.s3 import S3Reader


def init(settings: Settings) -> PredictionApi:
    # serving.store.s3, not boto3: the function only reads objects, and boto3's import costs a
    # quarter of a second of every cold start
    api = PredictionApi(settings, S3Reader.from_env)
    from aws_lambda_powertools import Logger, Metrics

    api.instrument(Logger(service="predict"), Metrics(namespace="TabularServerless", service="predict"))

    @api.logger.inject_lambda_context
    @api.metrics.log_metrics(capture_cold_start_metric=True)
    def logged(event, context):
        return api.respond(event, context)

    def handle(event, context):
        api.correlate(event)
        return logged(event, context)

    api.handler = handle
    if settings.tracing:  # imported only when X-Ray is on: aws_xray_sdk pulls in botocore (~0.4 s)
        from aws_lambda_powertools import Tracer

        api.handler = Tracer(service="predict").capture_lambda_handler(handle)
    api.finish_init()
    return api


app = init(Settings.from_env())


def handler(event, context):
    return app.handler(event, context)

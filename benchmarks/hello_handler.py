"""The floor of a cold start: a handler that imports nothing and answers at once.

Timed by benchmarks/coldstart.py exactly as the project's handler is, with the same
interpreter: what is left above it is the project's own import, fetch and first answer.
"""


def handler(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}

"""A Lambda function for the process executor's tests: it does what the event says."""

import os
import time

print(f"init pid={os.getpid()} greeting={os.environ.get('GREETING')}")
_ballast = []


def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError(event["fail"])
    if event.get("allocate_mb"):
        for _ in range(event["allocate_mb"]):
            _ballast.append(bytearray(1024 * 1024))
            time.sleep(0.002)
    if event.get("exit"):
        os._exit(3)
    print(f"handled {event.get('say', '')}")
    return {
        "pid": os.getpid(),
        "greeting": os.environ.get("GREETING"),
        "task_root": os.environ.get("LAMBDA_TASK_ROOT"),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
    }

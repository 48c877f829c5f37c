"""What the benchmark's function processes share: a Lambda context, a quiet call, their memory."""

import sys


class Context:
    function_name = "bench"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench"
    aws_request_id = "bench"


class _Sink:
    def write(self, _text):
        return 0

    def flush(self):
        pass


_SINK = _Sink()


def quiet_call(handler, event, context=None):
    # Lambda sends stdout (the logs and metrics) to CloudWatch; here it would only flood the pipe
    real, sys.stdout = sys.stdout, _SINK
    try:
        return handler(event, context or Context())
    finally:
        sys.stdout = real


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across fork+exec, so a child
    # would report its parent's peak
    return _status_mb("VmHWM:")


def rss_mb() -> float:
    """The process's resident memory now."""
    return _status_mb("VmRSS:")

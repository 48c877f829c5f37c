"""Run LocalStack Lambda functions as local processes instead of Docker containers.

LocalStack's core ships only a Docker executor. This package registers a
``process`` executor (``LAMBDA_RUNTIME_EXECUTOR=process``) that starts each
execution environment as a child process running AWS's own runtime client
(``awslambdaric``) against a Lambda Runtime API served by this package.
"""

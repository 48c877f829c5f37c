"""The batch-scoring state machine's steps as one Lambda function: wiring only.

Each state of the state machine (template.yaml) invokes this function with ``step``
naming what to do; serving/batch/steps.py says what each step does.
"""

from __future__ import annotations

from typing import Any

from serving.batch import steps
from serving.settings import Settings

steps.configure(Settings.from_env())


@steps.logger.inject_lambda_context
@steps.metrics.log_metrics
def handler(event: dict[str, Any], context) -> Any:
    step = event.get("step")
    if step not in steps.STEPS:
        raise ValueError(f"unknown step {step!r}: one of {', '.join(steps.STEPS)}")
    return steps.STEPS[step](event)

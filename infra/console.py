"""How the local tools speak: one line per step, prefixed with the tool's name."""

from __future__ import annotations

import sys
from collections.abc import Callable


def logger(name: str, stream: str = "stderr") -> Callable[[str], None]:
    """``log(message)`` printing ``[name] message`` to sys.stderr (or sys.stdout), flushed at once."""

    def log(message: str) -> None:
        print(f"[{name}] {message}", file=getattr(sys, stream), flush=True)

    return log

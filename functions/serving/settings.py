"""The functions' configuration, read from the environment once per container."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    model_bucket: str
    model_name: str
    max_rows: int = 1000
    max_body_bytes: int = 6 * 1024 * 1024  # Lambda's synchronous payload limit
    refresh_seconds: float = 60.0
    unknown_category: str = "reject"
    allowed_origin: str = ""
    tracing: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        policy = env.get("UNKNOWN_CATEGORY", "reject")
        if policy not in ("reject", "missing"):
            raise ValueError(f"UNKNOWN_CATEGORY must be reject or missing, not {policy!r}")
        return cls(
            model_bucket=env.get("MODEL_BUCKET", ""),
            model_name=env.get("MODEL_NAME", "breast-cancer"),
            max_rows=int(env.get("MAX_ROWS", "1000")),
            max_body_bytes=int(env.get("MAX_BODY_BYTES", str(6 * 1024 * 1024))),
            refresh_seconds=float(env.get("CHAMPION_REFRESH_SECONDS", "60")),
            unknown_category=policy,
            allowed_origin=env.get("ALLOWED_ORIGIN", ""),
            tracing=env.get("POWERTOOLS_TRACE_DISABLED", "true").lower() == "false",
        )

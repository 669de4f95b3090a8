"""One Settings object built from defaults < TINYTRACK_* environment variables < CLI flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from tinytrack.errors import InvalidParameter

ENV_PREFIX = "TINYTRACK_"


@dataclass(frozen=True, slots=True)
class Settings:
    db: str = "tinytrack.db"
    host: str = "127.0.0.1"
    port: int = 8000
    # Authenticated API requests per key per hour (the seed's 1000); 0 disables the limit.
    rate_limit: int = 1000
    # Browser requests (collector, per client address) per minute; 0 disables the limit.
    collector_rate_limit: int = 25
    # Hits allowed to wait for the writer before new writes get 503 + Retry-After.
    max_pending_rows: int = 20_000
    # Days a raw user-agent string is kept before the retention task removes it.
    ua_retention_days: int = 7
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``TINYTRACK_<NAME>`` variables, then non-None ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, f.type, raw)
        settings = cls(**values)
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(settings, **given).checked()

    def checked(self) -> Settings:
        if not 0 <= self.port <= 65535:
            raise InvalidParameter("port must be between 0 and 65535")
        if (
            self.rate_limit < 0
            or self.collector_rate_limit < 0
            or self.max_pending_rows < 1
            or self.ua_retention_days < 1
        ):
            raise InvalidParameter(
                "rate_limit and collector_rate_limit must be >= 0, "
                "max_pending_rows and ua_retention_days >= 1"
            )
        return self


def _coerce(name: str, kind: Any, raw: str) -> Any:
    if kind in (int, "int"):
        try:
            return int(raw)
        except ValueError:
            raise InvalidParameter(f"{ENV_PREFIX}{name.upper()} must be a number") from None
    return raw

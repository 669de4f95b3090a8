"""One Settings object built from, lowest first: defaults < an optional TOML config file
(``--config FILE`` or ``TINYTRACK_CONFIG``) < ``TINYTRACK_*`` environment variables < CLI
flags."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from tinytrack.errors import InvalidParameter

ENV_PREFIX = "TINYTRACK_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# Settings whose values `tinytrack config` never prints (none today; the names say what counts).
SECRET_WORDS = ("password", "secret", "token")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Settings:
    db: str = "tinytrack.db"
    host: str = "127.0.0.1"
    port: int = 8000
    # Authenticated API requests per key per hour (the seed's 1000); 0 disables the limit.
    rate_limit: int = 1000
    # Browser requests (collector, per client address) per minute; 0 disables the limit.
    collector_rate_limit: int = 25
    # Server-side tracking requests in Web Analyzer's format per key per minute (its documented
    # 60); 0 disables the limit.
    track_rate_limit: int = 60
    # Hits allowed to wait for the writer before new writes get 503 + Retry-After.
    max_pending_rows: int = 20_000
    # Days a raw user-agent string is kept before the retention task removes it.
    ua_retention_days: int = 7
    log_level: str = "info"
    # Reverse proxies whose X-Forwarded-For / Forwarded headers are believed: addresses or CIDR
    # ranges, comma-separated (e.g. "127.0.0.1,::1"). Default: none, headers are ignored.
    trusted_proxies: str = ""

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        config_file: str | None = None,
        **overrides: Any,
    ) -> Settings:
        """Defaults, then the config file, then ``TINYTRACK_<NAME>`` variables, then
        non-None ``overrides`` (the CLI flags)."""
        return cls.resolve(env, config_file=config_file, **overrides)[0]

    @classmethod
    def resolve(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        config_file: str | None = None,
        **overrides: Any,
    ) -> tuple[Settings, dict[str, str]]:
        """The settings and, for each field, where its value came from."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        sources = {f.name: "default" for f in fields(cls)}
        path = config_file or env.get(CONFIG_ENV) or None
        if path:
            for name, value in _read_file(path).items():
                values[name] = value
                sources[name] = f"config file {path}"
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, f.type, raw)
                sources[f.name] = f"environment {ENV_PREFIX}{f.name.upper()}"
        for name, value in overrides.items():
            if value is not None:
                values[name] = value
                sources[name] = "command line"
        return cls(**values).checked(), sources

    def masked(self) -> dict[str, Any]:
        """The settings as a dict, with secret values replaced by ``"***"``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            secret = any(word in f.name for word in SECRET_WORDS)
            out[f.name] = "***" if secret and value else value
        return out

    def checked(self) -> Settings:
        if not 0 <= self.port <= 65535:
            raise InvalidParameter("port must be between 0 and 65535")
        if (
            self.rate_limit < 0
            or self.collector_rate_limit < 0
            or self.track_rate_limit < 0
            or self.max_pending_rows < 1
            or self.ua_retention_days < 1
        ):
            raise InvalidParameter(
                "rate_limit, collector_rate_limit and track_rate_limit must be >= 0, "
                "max_pending_rows and ua_retention_days >= 1"
            )
        if self.log_level not in LOG_LEVELS:
            raise InvalidParameter(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        parse_networks(self.trusted_proxies)
        return self


def _read_file(path: str) -> dict[str, Any]:
    """A TOML file of ``name = value`` lines with the settings' names (``trusted_proxies`` may
    also be a list). Unknown names and wrong types are errors naming the file and the key."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise InvalidParameter(f"config file {path} does not exist") from None
    except OSError as exc:
        raise InvalidParameter(f"config file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidParameter(f"config file {path} is not valid TOML: {exc}") from None
    kinds = {f.name: f.type for f in fields(Settings)}
    values: dict[str, Any] = {}
    for name, value in data.items():
        kind = kinds.get(name)
        if kind is None:
            known = ", ".join(kinds)
            raise InvalidParameter(f"config file {path}: unknown setting {name!r} (known: {known})")
        if name == "trusted_proxies" and isinstance(value, list):
            if not all(isinstance(item, str) for item in value):
                raise InvalidParameter(f"config file {path}: trusted_proxies must list strings")
            value = ",".join(value)
        wanted = int if kind in (int, "int") else str
        if type(value) is not wanted:
            raise InvalidParameter(
                f"config file {path}: {name} must be a {'number' if wanted is int else 'string'}"
            )
        values[name] = value
    return values


def _coerce(name: str, kind: Any, raw: str) -> Any:
    if kind in (int, "int"):
        try:
            return int(raw)
        except ValueError:
            raise InvalidParameter(f"{ENV_PREFIX}{name.upper()} must be a number") from None
    return raw


def parse_networks(spec: str | Iterable[str]) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8, ::1"`` -> networks; ``InvalidParameter`` naming a bad entry."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    networks: list[Network] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise InvalidParameter(
                f"trusted_proxies: {item!r} is not an IP address or CIDR range"
            ) from None
    return tuple(networks)

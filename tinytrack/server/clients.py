"""Who is the client? The direct peer, unless that peer is a trusted reverse proxy: only then are
``X-Forwarded-For`` / ``Forwarded`` (and ``X-Forwarded-Proto`` / ``-Host``) believed.

Why it matters: behind Caddy or nginx every request arrives from 127.0.0.1, so without this every
visitor would share one country, one unique hash and one rate-limit bucket. Why not always believe
the headers: any direct client can send them, and would then choose its own address.

The address taken is the right-most one not belonging to a trusted proxy: each proxy appends the
address it received the request from, so entries left of the first untrusted one were written by
the client and prove nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from litestar.types import Scope

from tinytrack.config import parse_networks

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_FORWARDED_FOR = re.compile(r'for\s*=\s*("?)([^;,"]*)\1', re.IGNORECASE)
_FORWARDED_PARAM = re.compile(r'(proto|host)\s*=\s*("?)([^;,"]*)\2', re.IGNORECASE)
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:\d{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?")
MAX_HOPS = 30  # a longer chain is not a real proxy chain; stop reading it


def parse_address(text: str) -> Address | None:
    """An address as proxies write it: ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``,
    ``[2001:db8::1]:4711``; None for anything else (``unknown``, obfuscated ids, garbage)."""
    value = text.strip()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:  # IPv4 with a port
        value = value.partition(":")[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


class Proxies:
    """The trusted-proxy setting, applied to ASGI scopes."""

    def __init__(self, spec: str | Iterable[str] = "") -> None:
        self.networks = parse_networks(spec)

    def trusts(self, address: Address | None) -> bool:
        return address is not None and any(address in net for net in self.networks)

    def _peer(self, scope: Scope) -> str | None:
        client = scope.get("client")
        return str(client[0]) if client else None

    def _trusted_peer(self, scope: Scope) -> bool:
        if not self.networks:
            return False
        peer = self._peer(scope)
        return peer is not None and self.trusts(parse_address(peer))

    def client(self, scope: Scope) -> str | None:
        """The client's address (see the module docstring)."""
        peer = self._peer(scope)
        if not self._trusted_peer(scope):
            return peer
        hops = _forwarded_for(scope)
        current = parse_address(peer or "")
        for entry in reversed(hops[-MAX_HOPS:]):
            if not self.trusts(current):
                break
            hop = parse_address(entry)
            if hop is None:  # malformed or obfuscated: the chain ends at the last good hop
                break
            current = hop
        return str(current) if current is not None else peer

    def scheme_and_host(self, scope: Scope) -> tuple[str | None, str | None]:
        """``(scheme, host)`` the client used, from the forwarding headers of a trusted proxy;
        ``(None, None)`` when the request came straight in (use the request's own)."""
        if not self._trusted_peer(scope):
            return None, None
        headers = _headers(scope)
        scheme = headers.get(b"x-forwarded-proto")
        host = headers.get(b"x-forwarded-host")
        forwarded = headers.get(b"forwarded")
        if forwarded and (scheme is None or host is None):
            first = forwarded.split(b",")[0].decode("latin-1")
            for name, _q, value in _FORWARDED_PARAM.findall(first):
                if name.lower() == "proto" and scheme is None:
                    scheme = value.encode("latin-1")
                elif name.lower() == "host" and host is None:
                    host = value.encode("latin-1")
        return _scheme(scheme), _host(host)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    joined: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        joined[name] = joined[name] + b"," + value if name in joined else value
    return joined


def _forwarded_for(scope: Scope) -> list[str]:
    headers = _headers(scope)
    xff = headers.get(b"x-forwarded-for")
    if xff is not None:
        return [part for part in xff.decode("latin-1").split(",")]
    forwarded = headers.get(b"forwarded")
    if forwarded is not None:
        return [m[1] for m in _FORWARDED_FOR.findall(forwarded.decode("latin-1"))]
    return []


def _scheme(value: bytes | None) -> str | None:
    if value is None:
        return None
    scheme = value.split(b",")[0].strip().lower()
    return scheme.decode() if scheme in (b"http", b"https") else None


def _host(value: bytes | None) -> str | None:
    if value is None:
        return None
    host = value.split(b",")[0].strip().decode("latin-1")
    return host if _HOST.fullmatch(host) else None


def base_url(scope: Scope, proxies: Any, default: str) -> str:
    """The public base URL (``scheme://host``) for links the server builds."""
    scheme, host = proxies.scheme_and_host(scope)
    if scheme is None and host is None:
        return default
    fallback_scheme, _, fallback_host = default.partition("://")
    return f"{scheme or fallback_scheme}://{host or fallback_host.rstrip('/')}"

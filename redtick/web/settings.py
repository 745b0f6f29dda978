"""The HTTP face's own settings (``REDTICK_*`` limits, rate limits, trusted proxies) read from the environment.

They live here, next to the only code that uses them, until :mod:`redtick.config` takes them
over; the parsing follows its style: a bad value raises :class:`~redtick.errors.ConfigurationError`
naming the variable and what was expected.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping

from redtick.config import env_int, parse_duration
from redtick.errors import ConfigurationError

__all__ = ["RateLimitPolicy", "WebSettings"]

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\S+)\s*$")
_SECONDS = re.compile(r"^\s*\d+(\.\d+)?\s*$")
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$|^\*$|^\[[0-9a-f:.]+\]$")
_OFF = ("off", "none", "0")


@dataclasses.dataclass(frozen=True)
class RateLimitPolicy:
    """At most ``limit`` hits in any ``window`` seconds; ``"20/1m"`` in a setting.

    Examples
    --------
    >>> RateLimitPolicy.parse("20/1m", name="REDTICK_AUTH_FAILURE_RATE_LIMIT")
    RateLimitPolicy(limit=20, window=60.0)
    """

    limit: int
    window: float

    @classmethod
    def parse(cls, text: str, *, name: str) -> RateLimitPolicy:
        match = _RATE.match(text)
        if match is None or not 1 <= int(match.group(1)) <= 1_000_000:
            raise ConfigurationError(
                f"{name}={text!r}: expected <hits>/<window> with 1 to 1000000 hits and a duration, "
                f"such as 20/1m or 5/10s, or off"
            )
        return cls(int(match.group(1)), parse_duration(match.group(2), name=name) / 1000)


def _seconds(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A number of seconds (``10``, ``2.5``) or a duration with a unit (``10s``, ``500ms``)."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = float(raw) if _SECONDS.match(raw) else parse_duration(raw, name=name) / 1000
    if not low <= value <= high:
        raise ConfigurationError(f"{name}={raw!r}: expected seconds from {low} to {high}, such as 10 or 10s")
    return value


def _rate(env: Mapping[str, str], name: str, default: str) -> RateLimitPolicy | None:
    raw = env.get(name)
    raw = default if raw is None or raw.strip() == "" else raw
    if raw.strip().lower() in _OFF:
        return None
    return RateLimitPolicy.parse(raw, name=name)


def _networks(env: Mapping[str, str], name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    raw = env.get(name) or ""
    networks = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigurationError(
                f"{name}: {item!r} is not an IP address or network; expected a comma-separated list "
                f"such as 10.0.0.1,10.1.0.0/16,fd00::/8"
            ) from None
    return tuple(networks)


def _hosts(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    raw = env.get(name) or ""
    hosts = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    for host in hosts:
        if not _HOST.match(host):
            raise ConfigurationError(
                f"{name}: {host!r} is not a host name; expected a comma-separated list such as "
                f"api.example.com,*.example.com (no port, no scheme)"
            )
    return None if not hosts or "*" in hosts else hosts


@dataclasses.dataclass(frozen=True)
class WebSettings:
    """Limits and trust of the HTTP API; build it with :meth:`from_env`.

    Attributes
    ----------
    max_body_bytes : int
        ``REDTICK_MAX_BODY_BYTES``: largest request body; a larger one gets 413 before it is read
        to the end, parsed or authenticated (default 1 MiB).
    request_timeout : float
        ``REDTICK_REQUEST_TIMEOUT``: seconds a request may take before the client gets 503
        (408 while the client is still sending its body); default 10.
    max_query_bytes : int
        ``REDTICK_MAX_QUERY_BYTES``: longest query string; a longer one gets 414 (default 2048).
    write_rate_limit : RateLimitPolicy or None
        ``REDTICK_WRITE_RATE_LIMIT``: alert creations and deletions per user (default ``60/1m``).
    auth_failure_rate_limit : RateLimitPolicy or None
        ``REDTICK_AUTH_FAILURE_RATE_LIMIT``: failed authentications per client address before
        every authentication from it gets 429 (default ``20/1m``).
    max_alerts_per_user : int
        ``REDTICK_MAX_ALERTS_PER_USER``: live alerts one user may hold (default 1000).
    trusted_proxies : tuple of networks
        ``REDTICK_TRUSTED_PROXIES``: peers whose ``X-Forwarded-For`` names the client (default: none).
    allowed_hosts : tuple of str or None
        ``REDTICK_ALLOWED_HOSTS``: ``Host`` values served; others get 400 (default: any).

    Examples
    --------
    >>> WebSettings.from_env({"REDTICK_MAX_BODY_BYTES": "65536"}).max_body_bytes
    65536
    >>> WebSettings.from_env({"REDTICK_REQUEST_TIMEOUT": "soon"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redtick.errors.ConfigurationError: REDTICK_REQUEST_TIMEOUT='soon' is not a duration; expected a positive whole number ...
    """

    max_body_bytes: int = 1_048_576
    request_timeout: float = 10.0
    max_query_bytes: int = 2048
    write_rate_limit: RateLimitPolicy | None = RateLimitPolicy(60, 60.0)
    auth_failure_rate_limit: RateLimitPolicy | None = RateLimitPolicy(20, 60.0)
    max_alerts_per_user: int = 1000
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    allowed_hosts: tuple[str, ...] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        """Read the settings from ``env`` (default ``os.environ``); ConfigurationError on a bad value."""
        env = os.environ if env is None else env
        return cls(
            max_body_bytes=env_int(env, "REDTICK_MAX_BODY_BYTES", 1_048_576, 0, 1 << 30),
            request_timeout=_seconds(env, "REDTICK_REQUEST_TIMEOUT", 10.0, 0.05, 3600.0),
            max_query_bytes=env_int(env, "REDTICK_MAX_QUERY_BYTES", 2048, 0, 65_536),
            write_rate_limit=_rate(env, "REDTICK_WRITE_RATE_LIMIT", "60/1m"),
            auth_failure_rate_limit=_rate(env, "REDTICK_AUTH_FAILURE_RATE_LIMIT", "20/1m"),
            max_alerts_per_user=env_int(env, "REDTICK_MAX_ALERTS_PER_USER", 1000, 1, 1_000_000),
            trusted_proxies=_networks(env, "REDTICK_TRUSTED_PROXIES"),
            allowed_hosts=_hosts(env, "REDTICK_ALLOWED_HOSTS"),
        )

"""Settings read from the environment: where Redis is, and redtick's own knobs."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import platformdirs
from cryptography.fernet import Fernet

from redtick.errors import ConfigurationError

__all__ = ["Settings", "checked_url", "default_home", "env_int", "get_settings", "parse_duration", "parse_nodes_url"]

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$")
_URL_SCHEMES = ("redis", "rediss", "unix", "memory", "redis+cluster", "rediss+cluster", "redis+sentinel")
# Any of these set without REDIS_HOST means a server on localhost, as the platform's own settings did.
_SERVER_VARIABLES = ("REDIS_PORT", "REDIS_DB", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_SSL")
_NODES_SCHEMES = {"redis+cluster": 6379, "rediss+cluster": 6379, "redis+sentinel": 26379}
DEFAULT_INTERVALS = ("1m", "5m", "15m", "1h", "4h", "1d")
NAMESPACE_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")
NAMESPACE_RULE = "a namespace is 1-32 of a-z 0-9 _ - starting with a letter"


def _check_fernet_key(key: str) -> None:
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise ConfigurationError(
            "REDTICK_ENCRYPTION_KEY is not a Fernet key; expected 32 url-safe base64-encoded bytes "
            "(make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        ) from None


def parse_duration(text: str, *, name: str = "duration") -> int:
    """Milliseconds in a duration such as ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"7d"``.

    Examples
    --------
    >>> parse_duration("15m")
    900000
    """
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) <= 0:
        raise ConfigurationError(
            f"{name}={text!r} is not a duration; expected a positive whole number and a unit "
            f"(ms, s, m, h, d, w), such as 30s, 5m or 7d"
        )
    return int(match.group(1)) * _UNITS_MS[match.group(2)]


def env_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """The whole number in ``env[name]`` (``default`` when unset or empty); ConfigurationError naming it if
    it is not one from ``low`` to ``high``."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigurationError(f"{name}={raw!r}: expected a whole number from {low} to {high}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigurationError(f"{name}={raw!r}: expected a number from {low} to {high}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name}={raw!r}: expected true or false")


def _path(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not os.path.isfile(raw):
        raise ConfigurationError(f"{name}={raw!r}: expected the path of an existing file")
    return raw


def _retention(env: Mapping[str, str], name: str, default: str | None) -> int | None:
    raw = env.get(name, default)
    if raw is None or raw.strip().lower() in ("", "none", "off", "0"):
        return None
    return parse_duration(raw, name=name)


def _url(env: Mapping[str, str]) -> str | None:
    raw = env.get("REDIS_URL") or None
    return None if raw is None else checked_url(raw)


def checked_url(url: str) -> str:
    """``url`` once it is a Redis URL redtick can use (as ``REDIS_URL``), else ConfigurationError.

    Examples
    --------
    >>> checked_url("redis://localhost:6379/0")
    'redis://localhost:6379/0'
    >>> checked_url("http://localhost:6379")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redtick.errors.ConfigurationError: REDIS_URL has scheme 'http'; expected one of redis://, rediss://, ...
    """
    parts = urlsplit(url)
    if parts.scheme not in _URL_SCHEMES:
        raise ConfigurationError(
            f"REDIS_URL has scheme {parts.scheme!r}; expected one of "
            + ", ".join(f"{s}://" for s in _URL_SCHEMES)
        )
    if parts.scheme in _NODES_SCHEMES:
        parse_nodes_url(url)  # raises on a malformed node list or a sentinel URL without a service
    elif parts.scheme in ("redis", "rediss"):
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise ConfigurationError("REDIS_URL has a malformed port; expected redis://host:port/db") from None
        if not parts.hostname:
            raise ConfigurationError("REDIS_URL has no host; expected redis://host:port/db")
    return url


def default_home(env: Mapping[str, str]) -> str:
    """``REDTICK_HOME``, else the user data directory (``~/.local/share/redtick`` on Linux)."""
    raw = env.get("REDTICK_HOME") or platformdirs.user_data_dir("redtick", appauthor=False)
    return os.path.abspath(os.path.expanduser(raw))


def parse_nodes_url(url: str) -> tuple[list[tuple[str, int]], str | None, int]:
    """(nodes, sentinel service or None, db) of a ``redis+cluster://`` or ``redis+sentinel://`` URL.

    ``redis+cluster://[user:password@]host:port,host:port`` lists startup nodes of a Redis
    Cluster (any few masters; the client discovers the rest). ``redis+sentinel://[user:password@]
    host:port,host:port/<service>[/<db>]`` lists sentinels and names the monitored master. A
    missing port is 6379 for cluster nodes and 26379 for sentinels. Credentials in the URL are
    the data nodes' (as ``REDIS_USERNAME``/``REDIS_PASSWORD``), never the sentinels'.

    Examples
    --------
    >>> parse_nodes_url("redis+sentinel://10.0.0.1,10.0.0.2:26380/mymaster/2")
    ([('10.0.0.1', 26379), ('10.0.0.2', 26380)], 'mymaster', 2)
    """
    scheme, _, rest = url.partition("://")
    default_port = _NODES_SCHEMES[scheme]
    netloc, _, path = rest.partition("/")
    hosts = netloc.rpartition("@")[2]
    expected = "host:port,host:port" + ("/<service>[/<db>]" if scheme == "redis+sentinel" else "")
    nodes = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon:
            host, port = port, str(default_port)
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigurationError(f"REDIS_URL node {item.strip()!r} is malformed; expected {scheme}://{expected}")
        nodes.append((host.strip("[]"), int(port)))
    if scheme != "redis+sentinel":
        if path.strip("/"):
            raise ConfigurationError(f"REDIS_URL: a cluster has only db 0 and no path; expected {scheme}://{expected}")
        return nodes, None, 0
    service, _, db = path.strip("/").partition("/")
    if not service or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", service) or (db and not db.isdigit()):
        raise ConfigurationError(f"REDIS_URL names no valid master; expected {scheme}://{expected}")
    return nodes, service, int(db or 0)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where Redis is and how redtick behaves; build it with :meth:`from_env`.

    Secrets (password, encryption key, admin token) never appear in ``repr``.
    """

    url: str | None = dataclasses.field(default=None, repr=False)
    host: str | None = None
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    max_connections: int = 20
    ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    connect_timeout: float = 5.0
    socket_timeout: float = 5.0
    pool_timeout: float = 5.0
    health_check_interval: int = 30
    retries: int = 3
    namespace: str = "redtick"
    encryption_key: str | None = dataclasses.field(default=None, repr=False)
    admin_token: str | None = dataclasses.field(default=None, repr=False)
    intervals: tuple[str, ...] = DEFAULT_INTERVALS
    tick_chunk_ms: int = 3_600_000
    tick_compression: bool = True
    """Store every tick chunk but a series' head sealed (compressed, :func:`redtick.codec.seal_ticks`),
    and every candle chunk but each interval's newest (:func:`redtick.codec.seal_candles`)
    (``REDTICK_TICK_COMPRESSION``, ``on`` or ``off``).

    On: a chunk that stops being the head, and every chunk a write rewrites whole, is sealed, about a
    fifth of its raw size; the head stays raw and appendable. Off: writes store raw chunks only. Either
    way, sealed and raw chunks are both read, so a store can switch back and forth.
    """
    tick_retention_ms: int | None = None
    candle_retention_ms: int | None = None
    maintenance_interval_ms: int = 300_000
    memory_warn_percent: float = 80.0
    metrics_public: bool = False
    home: str = dataclasses.field(default_factory=lambda: default_home(os.environ))
    store_linger_ms: int = 10_000
    session_max_lifetime: int = 86_400
    """Seconds after its start past which activity no longer extends a session (``REDTICK_SESSION_MAX_LIFETIME``).

    A day: a session kept alive by use still ends within 24 hours of its login, so a stolen
    session id cannot be kept alive indefinitely and a trader signs in once a day.
    """
    alert_stream_retention_ms: int = 7 * 86_400_000
    alert_handoff_ms: int = 60_000

    @property
    def in_memory(self) -> bool:
        """True for ``memory://``: the in-process fakeredis, whose data lives as long as the process."""
        return self.url is not None and self.url.startswith("memory:")

    @property
    def local(self) -> bool:
        """True when no server is configured: the persistent local store in ``home``."""
        return self.url is None and self.host is None

    @property
    def topology(self) -> str:
        """``"local"`` (the store in ``REDTICK_HOME``), ``"memory"``, ``"single"``, ``"cluster"`` or ``"sentinel"``."""
        if self.local:
            return "local"
        if self.in_memory:
            return "memory"
        scheme = (self.url or "").partition("://")[0]
        return {"redis+cluster": "cluster", "rediss+cluster": "cluster", "redis+sentinel": "sentinel"}.get(
            scheme, "single"
        )

    @property
    def safe_url(self) -> str:
        """Where the data is, with any password removed, fit for a log line."""
        if self.local:
            return f"local store {self.home}"
        if self.in_memory:
            return "memory:// (in-process fakeredis; the data lives as long as this process)"
        if self.url is not None and self.topology in ("cluster", "sentinel"):
            nodes, service, db = parse_nodes_url(self.url)
            tail = f"/{service}/{db}" if service else ""
            return self.url.partition("://")[0] + "://" + ",".join(f"{h}:{p}" for h, p in nodes) + tail
        if self.url is not None:
            parts = urlsplit(self.url)
            host = parts.hostname or parts.path
            port = f":{parts.port}" if parts.port else ""
            return f"{parts.scheme}://{host}{port}{parts.path if parts.hostname else ''}"
        scheme = "rediss" if self.ssl else "redis"
        return f"{scheme}://{self.host}:{self.port}/{self.db}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (default ``os.environ``); raise ConfigurationError on a bad value."""
        env = os.environ if env is None else env
        namespace = env.get("REDTICK_NAMESPACE") or "redtick"
        if not NAMESPACE_PATTERN.fullmatch(namespace):
            raise ConfigurationError(f"REDTICK_NAMESPACE={namespace!r}: {NAMESPACE_RULE}")
        key = env.get("REDTICK_ENCRYPTION_KEY") or None
        if key is not None:
            _check_fernet_key(key)
        raw_intervals = env.get("REDTICK_INTERVALS") or ",".join(DEFAULT_INTERVALS)
        intervals = tuple(part.strip() for part in raw_intervals.split(",") if part.strip())
        if not intervals:
            raise ConfigurationError("REDTICK_INTERVALS is empty; expected names such as 1m,5m,1h")
        for interval in intervals:
            parse_duration(interval, name="REDTICK_INTERVALS")
        host = env.get("REDIS_HOST") or None
        if host is None and any(env.get(name) for name in _SERVER_VARIABLES):
            host = "localhost"
        return cls(
            url=_url(env),
            host=host,
            port=env_int(env, "REDIS_PORT", 6379, 1, 65535),
            db=env_int(env, "REDIS_DB", 0, 0, 65535),
            username=env.get("REDIS_USERNAME") or None,
            password=env.get("REDIS_PASSWORD") or None,
            max_connections=env_int(env, "REDIS_MAX_CONNECTIONS", 20, 1, 100_000),
            ssl=_bool(env, "REDIS_SSL", False),
            ssl_ca_certs=_path(env, "REDIS_SSL_CA_CERTS"),
            ssl_certfile=_path(env, "REDIS_SSL_CERTFILE"),
            ssl_keyfile=_path(env, "REDIS_SSL_KEYFILE"),
            connect_timeout=_float(env, "REDIS_CONNECT_TIMEOUT", 5.0, 0.01, 600),
            socket_timeout=_float(env, "REDIS_SOCKET_TIMEOUT", 5.0, 0.01, 600),
            pool_timeout=_float(env, "REDIS_POOL_TIMEOUT", 5.0, 0.01, 600),
            health_check_interval=env_int(env, "REDIS_HEALTH_CHECK_INTERVAL", 30, 0, 86_400),
            retries=env_int(env, "REDIS_RETRIES", 3, 0, 100),
            namespace=namespace,
            encryption_key=key,
            admin_token=env.get("REDTICK_ADMIN_TOKEN") or None,
            intervals=intervals,
            tick_chunk_ms=parse_duration(env.get("REDTICK_TICK_CHUNK") or "1h", name="REDTICK_TICK_CHUNK"),
            tick_compression=_bool(env, "REDTICK_TICK_COMPRESSION", True),
            tick_retention_ms=_retention(env, "REDTICK_TICK_RETENTION", None),
            candle_retention_ms=_retention(env, "REDTICK_CANDLE_RETENTION", None),
            maintenance_interval_ms=parse_duration(
                env.get("REDTICK_MAINTENANCE_INTERVAL") or "5m", name="REDTICK_MAINTENANCE_INTERVAL"
            ),
            memory_warn_percent=_float(env, "REDTICK_MEMORY_WARN_PERCENT", 80.0, 1.0, 100.0),
            metrics_public=_bool(env, "REDTICK_METRICS_PUBLIC", False),
            home=default_home(env),
            store_linger_ms=parse_duration(env.get("REDTICK_STORE_LINGER") or "10s", name="REDTICK_STORE_LINGER"),
            session_max_lifetime=env_int(env, "REDTICK_SESSION_MAX_LIFETIME", 86_400, 1, 31_622_400),
            alert_stream_retention_ms=parse_duration(
                env.get("REDTICK_ALERT_STREAM_RETENTION") or "7d", name="REDTICK_ALERT_STREAM_RETENTION"
            ),
            alert_handoff_ms=parse_duration(env.get("REDTICK_ALERT_HANDOFF") or "1m", name="REDTICK_ALERT_HANDOFF"),
        )


_settings: Settings | None = None


def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings

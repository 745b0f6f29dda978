"""Every error redtick raises; Redis's own exceptions are translated into these in one place.

The tree::

    RedtickError
    ├── ConfigurationError      a setting is missing or malformed (names the variable)
    ├── InvalidKey              a key part (symbol, user id, ...) is outside its character set or length
    ├── InvalidData             a value cannot be stored or decoded (NaN price, bad tick, bad JSON)
    │   └── UpgradeNeeded       a symbol's candles are in an older layout (run ``redtick upgrade``)
    ├── NotFound                the thing asked for does not exist
    │   └── SymbolNotFound      no series is stored for a symbol (names close matches)
    ├── AuthError               a bearer session or admin token is missing or wrong
    │   ├── Forbidden           authenticated, but the thing belongs to someone else
    │   └── CredentialsRefused  Redis refused redtick's own username/password (also Unavailable)
    ├── RateLimited             a rate limit was exceeded (carries ``retry_after``)
    ├── ConflictError           an optimistic write kept losing to concurrent writers
    └── RedisError              the server answered with an error
        └── Unavailable         the server cannot be reached (refused, timed out, went away)
            └── RedisTimeout    a command took longer than the socket timeout
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigurationError",
    "ConflictError",
    "CredentialsRefused",
    "Forbidden",
    "InvalidData",
    "InvalidKey",
    "NotFound",
    "RateLimited",
    "RedisError",
    "RedisTimeout",
    "RedtickError",
    "SymbolNotFound",
    "Unavailable",
    "UpgradeNeeded",
]


class RedtickError(Exception):
    """Base of every error redtick raises."""


class ConfigurationError(RedtickError, ValueError):
    """A setting is missing or malformed; the message names the variable and what was expected."""


class InvalidKey(RedtickError, ValueError):
    """A key part is outside its allowed character set or length."""


class InvalidData(RedtickError, ValueError):
    """A value cannot be stored or decoded."""


class UpgradeNeeded(InvalidData):
    """A symbol's candles are stored in an older layout; ``redtick upgrade`` rebuilds them from its ticks."""

    def __init__(self, symbol: str):
        super().__init__(
            f"candles of {symbol!r} are in an older layout; run `redtick upgrade` (or `redtick upgrade --symbol "
            f"{symbol}`, or redtick.upgrade()) to rebuild them from the stored ticks"
        )
        self.symbol = symbol


class NotFound(RedtickError, LookupError):
    """The thing asked for does not exist."""


class SymbolNotFound(NotFound):
    """No series is stored for a symbol; ``close_matches`` lists stored symbols that look like it."""

    def __init__(self, message: str, *, symbol: str = "", close_matches: list[str] | None = None):
        super().__init__(message)
        self.symbol = symbol
        self.close_matches = close_matches or []


class AuthError(RedtickError):
    """A bearer session or admin token is missing or wrong."""


class Forbidden(AuthError):
    """The caller is authenticated but the thing belongs to someone else."""


class RateLimited(RedtickError):
    """A rate limit was exceeded; ``retry_after`` is seconds until a hit is allowed again."""

    def __init__(self, message: str, retry_after: float = 0.0):
        super().__init__(message)
        self.retry_after = retry_after


class ConflictError(RedtickError):
    """An optimistic (WATCH/MULTI) write kept losing to concurrent writers of the same keys."""


class RedisError(RedtickError):
    """The Redis server answered with an error."""


class Unavailable(RedisError, ConnectionError):
    """The Redis server cannot be reached: refused, timed out or went away."""


class CredentialsRefused(AuthError, Unavailable):
    """Redis refused the configured username or password: an authentication error, and no server to use."""


class RedisTimeout(Unavailable, TimeoutError):
    """A command took longer than the socket timeout."""

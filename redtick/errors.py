"""Every error redtick raises; Redis's own exceptions are translated into these in one place.

The tree::

    RedtickError
    ├── ConfigurationError      a setting is missing or malformed (names the variable)
    ├── MissingExtra            an optional dependency is not installed (names the extra to install)
    ├── InvalidKey              a key part (symbol, user id, ...) is outside its character set or length
    ├── InvalidData             a value cannot be stored or decoded (NaN price, bad tick, bad JSON)
    │   ├── UpgradeNeeded       a symbol's candles are in an older layout (run ``redtick upgrade``)
    │   └── BackupCorrupt       a backup file is damaged, edited or not a redtick backup
    ├── NotFound                the thing asked for does not exist
    │   └── SymbolNotFound      no series is stored for a symbol (names close matches)
    ├── AuthError               a bearer session or admin token is missing or wrong
    │   ├── Forbidden           authenticated, but the thing belongs to someone else
    │   └── CredentialsRefused  Redis refused redtick's own username/password (also Unavailable)
    ├── RateLimited             a rate limit was exceeded (carries ``retry_after``)
    ├── ConflictError           an optimistic write kept losing to concurrent writers
    ├── RestoreConflict         a restore would overwrite stored symbols (names them; ``--force`` allows it)
    ├── RestoreIncomplete       what a restore wrote does not read back as the backup holds it
    └── RedisError              the server answered with an error
        └── Unavailable         the server cannot be reached (refused, timed out, went away)
            └── RedisTimeout    a command took longer than the socket timeout
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BackupCorrupt",
    "ConfigurationError",
    "ConflictError",
    "CredentialsRefused",
    "Forbidden",
    "InvalidData",
    "InvalidKey",
    "MissingExtra",
    "NotFound",
    "RateLimited",
    "RedisError",
    "RedisTimeout",
    "RedtickError",
    "RestoreConflict",
    "RestoreIncomplete",
    "SymbolNotFound",
    "Unavailable",
    "UpgradeNeeded",
]


class RedtickError(Exception):
    """Base of every error redtick raises."""


class ConfigurationError(RedtickError, ValueError):
    """A setting is missing or malformed; the message names the variable and what was expected."""


class MissingExtra(RedtickError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it.

    ``extra`` is the name in ``pip install 'redtick[extra]'``; ``name`` (as on ``ImportError``) is
    the module that could not be imported.
    """

    def __init__(self, message: str, *, name: str, extra: str):
        super().__init__(message, name=name)
        self.extra = extra


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


class BackupCorrupt(InvalidData):
    """A backup file is damaged (a flipped byte, a truncated copy), edited, or not a redtick backup.

    Found before a restore writes anything: every part's bytes and rows are checked against the manifest.
    """


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


class RestoreConflict(RedtickError):
    """A restore would overwrite symbols the store holds; ``symbols`` names them. Nothing was written.

    ``redtick restore FILE --force`` (``restore(..., force=True)``) replaces them, and only them.
    """

    def __init__(self, message: str, *, symbols: list[str]):
        super().__init__(message)
        self.symbols = symbols


class RestoreIncomplete(RedtickError):
    """What a restore wrote does not read back as the backup holds it, or an earlier restore stopped halfway.

    ``parts`` names what differs or is unfinished; the store keeps them listed as pending
    (``redtick info`` shows them) until a restore with ``--force`` completes them.
    """

    def __init__(self, message: str, *, parts: list[str]):
        super().__init__(message)
        self.parts = parts


class RedisError(RedtickError):
    """The Redis server answered with an error."""


class Unavailable(RedisError, ConnectionError):
    """The Redis server cannot be reached: refused, timed out or went away."""


class CredentialsRefused(AuthError, Unavailable):
    """Redis refused the configured username or password: an authentication error, and no server to use."""


class RedisTimeout(Unavailable, TimeoutError):
    """A command took longer than the socket timeout."""

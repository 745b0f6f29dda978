"""The one place a Redis key is built: namespace, families, hash tags and key-part validation.

Every key lives under ``<namespace>:``. Keys scoped to one symbol carry it as a Redis Cluster
hash tag (``redtick:ticks:{BTCUSDT}:index``) so all keys of a symbol sit in one slot and one
transaction or script may touch them together. Every part is validated before a key exists,
so a bad part raises :class:`~redtick.errors.InvalidKey` before anything is sent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import numbers
import re
import unicodedata

from redtick.config import NAMESPACE_PATTERN, NAMESPACE_RULE, parse_duration
from redtick.errors import ConfigurationError, InvalidKey

__all__ = [
    "KEY_FAMILIES",
    "SYMBOL_MAX_LENGTH",
    "SYMBOL_RESERVED",
    "SYMBOL_RULE",
    "USER_ID_RULE",
    "KeyInfo",
    "KeySchema",
    "glob_escape",
    "validate_id",
    "validate_identity",
    "validate_interval",
    "validate_name",
    "validate_symbol",
    "validate_user_id",
]

SYMBOL_MAX_LENGTH = 64
SYMBOL_RESERVED = "{}*?[]\\"
"""Characters no symbol may hold: ``{`` and ``}`` would move or end the Redis Cluster hash tag a
symbol sits in, and ``* ? [ ] \\`` are Redis glob syntax, which would let one symbol's key
pattern match another's."""
SYMBOL_RULE = "symbols are up to 64 printable characters except whitespace and { } * ? [ ] \\"
USER_ID_RULE = "user ids are 1-64 of A-Z a-z 0-9 . _ - @ :, or an int"

# Anything but whitespace and the reserved characters; printability and Unicode normal form are
# checked apart because a regex cannot say "printable" portably.
_SYMBOL = re.compile(rf"[^\s{{}}*?\[\]\\]{{1,{SYMBOL_MAX_LENGTH}}}")
# "." and ".." alone are URL dot-segments: clients and proxies remove them from a path, encoded
# or not, so such a symbol could be stored but never read back through the HTTP API.
_DOT_SEGMENTS = frozenset({".", ".."})
_USER_ID = re.compile(r"[A-Za-z0-9._@:-]{1,64}")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NAME = re.compile(r"[A-Za-z0-9._:/@=+-]{1,200}")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
_TAIL_SPECIAL = re.compile(r"([\[\]\\])")
CANDLE_LAYOUT = "v2"  # candle slots as codec.CANDLE_DTYPE packs them (88 bytes, with notional); bump with it
ALERT_CONDITIONS = ("above", "below", "crosses")
KEY_FAMILIES = ("series ticks", "candles", "market", "sessions", "alerts", "rate limits", "HTTP cache",
                "repository cache", "snapshots", "other")
"""The families :meth:`KeySchema.describe` sorts keys into, in report order."""
# What a key is, by its head (the first part after the namespace): (family in KEY_FAMILIES, the
# cache that owns it, the family label its metrics count under). A label of None is the key's
# next part: the market data kind, the rate limit's name, the response or repository prefix.
_KIND_OF_HEAD: dict[str, tuple[str, str, str | None]] = {
    "ticks": ("series ticks", "price", "ticks"),
    "price": ("series ticks", "price", "quote"),
    "series": ("series ticks", "price", "symbols"),
    "candles": ("candles", "price", "candles"),
    "market": ("market", "market_data", None),
    "session": ("sessions", "user_session", "session"),
    "sessions": ("sessions", "user_session", "session"),
    "alerts": ("alerts", "alerts", "alert"),
    "ratelimit": ("rate limits", "rate_limit", None),
    "http": ("HTTP cache", "http_response", None),
    "repo": ("repository cache", "repository", None),
    "repogen": ("repository cache", "repository", None),
    "snapshot": ("snapshots", "snapshot", "snapshot"),
}
_SYMBOL_HEADS = frozenset({"ticks", "price", "candles", "market", "alerts"})
# Heads whose hash tag is a secret (a session id is a bearer token): redacted in log lines.
_SECRET_TAG_HEADS = ("session",)


def _describe(value: object, max_length: int = 200) -> str:
    if not isinstance(value, str):
        name = type(value).__name__
        return f"is {'an' if name[:1] in 'aeiou' else 'a'} {name}, not a string"
    if value == "":
        return "is empty"
    for ch in value:
        if ch.isspace():
            return "has a space" if ch == " " else f"has whitespace {ch!r}"
        if not ch.isprintable():
            return f"has a control character {ch!r}"
    if len(value) > max_length:
        return f"is {len(value)} characters long"
    return "has a character outside the allowed set"


def _shown(value: object) -> str:
    return repr(value) if not isinstance(value, str) or len(value) <= 60 else repr(value[:60] + "...")


def _check(kind: str, value: object, pattern: re.Pattern[str], rule: str, max_length: int = 200) -> str:
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    raise InvalidKey(f"{kind} {_shown(value)} {_describe(value, max_length)}; {rule}")


def _integer_as_text(value: object) -> object:
    # An int id (a database's primary key) is stored as its decimal string, so 123 and "123" are
    # one user. bool is an int to Python but never an id: True would silently become user "True".
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    return value


def glob_escape(text: str) -> str:
    """``text`` with Redis glob characters (``* ? [ ] \\``) escaped, so a pattern matches it literally.

    Examples
    --------
    >>> glob_escape("a*b?[c]")
    'a\\\\*b\\\\?\\\\[c\\\\]'
    """
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def _is_nfc(text: str) -> bool:
    # Two spellings of one visible text (e + combining accent, or the precomposed é) would be
    # two keys; one normal form makes the key follow what a reader sees.
    return text.isascii() or unicodedata.is_normalized("NFC", text)


def _symbol_problem(symbol: object) -> str:
    """What is wrong with a symbol that failed :func:`validate_symbol`, for its message."""
    if not isinstance(symbol, str) or symbol == "" or any(ch.isspace() or not ch.isprintable() for ch in symbol):
        return _describe(symbol, SYMBOL_MAX_LENGTH)
    reserved = next((ch for ch in symbol if ch in SYMBOL_RESERVED), None)
    if reserved is not None:
        return f"has {reserved!r}"
    if len(symbol) > SYMBOL_MAX_LENGTH:
        return f"is {len(symbol)} characters long"
    if symbol in _DOT_SEGMENTS:
        return "is a path dot-segment, which URLs cannot carry (clients resolve it away, even percent-encoded)"
    return "is not in Unicode NFC form (normalise it with unicodedata.normalize('NFC', symbol))"


def validate_symbol(symbol: object) -> str:
    """Return ``symbol`` unchanged if it is a valid symbol, else raise InvalidKey saying why.

    A symbol keeps its case and is 1-64 printable characters (Unicode, in NFC form) except
    whitespace and ``{ } * ? [ ] \\``: braces would break the hash tag the symbol sits in, the
    rest are Redis glob syntax. ``.`` and ``..`` alone are refused: a URL path cannot carry them.
    Exchange spellings such as ``btcusdt``, ``BRK.B``, ``ES=F``, ``^GSPC``, ``EUR/USD``,
    ``BINANCE:BTCUSDT`` and ``ES1!`` are all valid, and all distinct.

    Examples
    --------
    >>> [validate_symbol(s) for s in ("BTCUSDT", "btcusdt", "BINANCE:BTCUSDT", "^GSPC")]
    ['BTCUSDT', 'btcusdt', 'BINANCE:BTCUSDT', '^GSPC']
    >>> validate_symbol("BTC USDT")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redtick.errors.InvalidKey: symbol 'BTC USDT' has a space; symbols are up to 64 printable characters except whitespace ...
    >>> validate_symbol("BTC*")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redtick.errors.InvalidKey: symbol 'BTC*' has '*'; symbols are up to 64 printable characters except whitespace and ...
    """
    if (isinstance(symbol, str) and _SYMBOL.fullmatch(symbol) and symbol.isprintable() and _is_nfc(symbol)
            and symbol not in _DOT_SEGMENTS):
        return symbol
    raise InvalidKey(f"symbol {_shown(symbol)} {_symbol_problem(symbol)}; {SYMBOL_RULE}")


def validate_user_id(user_id: object) -> str:
    """The user id as stored: a string of 1-64 of ``A-Z a-z 0-9 . _ - @ :``, or an int as its decimal string.

    ``bool`` is refused although Python counts it as an int.

    Examples
    --------
    >>> validate_user_id(123), validate_user_id("user:123")
    ('123', 'user:123')
    """
    return _check("user id", _integer_as_text(user_id), _USER_ID, USER_ID_RULE, 64)


def validate_id(value: object, kind: str = "id") -> str:
    """Return an opaque id (session, alert, ...) if it is 1-64 of ``A-Z a-z 0-9 _ -``."""
    return _check(kind, value, _ID, f"{kind}s are 1-64 of A-Z a-z 0-9 _ -", 64)


def validate_name(value: object, kind: str = "key part") -> str:
    """Return a free-form key part if it is 1-200 of ``A-Z a-z 0-9 . _ : / @ = + -``."""
    return _check(kind, value, _NAME, f"{kind}s are 1-200 of A-Z a-z 0-9 . _ : / @ = + -")


def validate_identity(value: object, kind: str = "identity") -> str:
    """Who a rate limit counts: a free-form name (:func:`validate_name`), or an int as its decimal string.

    Examples
    --------
    >>> validate_identity(42), validate_identity("user:42"), validate_identity("2001:db8::/64")
    ('42', 'user:42', '2001:db8::/64')
    """
    return _check(kind, _integer_as_text(value), _NAME, f"{kind}s are 1-200 of A-Z a-z 0-9 . _ : / @ = + -, or an int")


def validate_interval(interval: object) -> int:
    """Milliseconds in a candle interval such as ``"1m"`` or ``"4h"``; raise InvalidKey if malformed."""
    try:
        return parse_duration(interval, name="interval")  # type: ignore[arg-type]
    except ConfigurationError as exc:
        raise InvalidKey(str(exc)) from None


@dataclasses.dataclass(frozen=True, slots=True)
class KeyInfo:
    """What a key is, as :meth:`KeySchema.describe` tells it.

    Attributes
    ----------
    head : str
        The key's first part after the namespace (``"ticks"``, ``"market"``, ``"user"``...);
        ``""`` for a key outside the namespace.
    family : str
        One of :data:`KEY_FAMILIES`: what the memory report groups the key under.
    cache : str
        The cache that owns the key, as the cache service and :mod:`redtick.metrics` name it
        (``market_data``, ``user_session``, ``price``, ``alerts``, ``rate_limit``,
        ``http_response``, ``repository``, ``snapshot``, a ``BaseCache``'s prefix, or ``other``).
    metric_family : str
        The ``family`` label the cache's counters use for the key (``price``, ``orderbook``,
        ``session``, ``quote``, the rate limit's name...).
    symbol : str or None
        The symbol of a symbol-scoped key (ticks, candles, current price, market data, alerts).
    tag : str or None
        The key's hash tag (a symbol, a user id, a session id, a snapshot name...), if it has one.

    Examples
    --------
    >>> KeySchema("redtick").describe("redtick:market:price:{BTCUSDT}").metric_labels
    ('market_data', 'price')
    """

    head: str
    family: str
    cache: str
    metric_family: str
    symbol: str | None
    tag: str | None

    @property
    def metric_labels(self) -> tuple[str, str]:
        """``(cache, metric_family)``: the labels :mod:`redtick.metrics` counts the key's events under."""
        return self.cache, self.metric_family


_OUTSIDE = KeyInfo("", "other", "other", "other", None, None)


class KeySchema:
    """Builds every key of the layout under one namespace.

    Examples
    --------
    >>> keys = KeySchema("redtick")
    >>> keys.tick_index("BTCUSDT")
    'redtick:ticks:{BTCUSDT}:index'
    >>> keys.pattern("market", "price")
    'redtick:market:price:*'
    """

    def __init__(self, namespace: str = "redtick"):
        if not isinstance(namespace, str) or not NAMESPACE_PATTERN.fullmatch(namespace):
            raise InvalidKey(f"namespace {namespace!r}: {NAMESPACE_RULE}")
        self.namespace = namespace
        self.prefix = namespace + ":"

    def __repr__(self) -> str:
        return f"KeySchema({self.namespace!r})"

    # -- generic ---------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        """``<namespace>:part:part...`` with every part validated as a free-form name."""
        if not parts:
            raise InvalidKey("a key needs at least one part after the namespace")
        return self.prefix + ":".join(validate_name(p) for p in parts)

    def pattern(self, *parts: str, tail: str = "*") -> str:
        """A SCAN/KEYS pattern for keys under ``<namespace>:parts:``, ending with ``tail``.

        ``tail`` may use ``*`` and ``?`` as wildcards; ``[``, ``]`` and ``\\`` are escaped, and
        the namespace and parts are literal, so the pattern never matches outside them.
        """
        # The head must match only itself: a part holding a glob character would widen the scan
        # to keys outside it. Validated names hold none today; escaping keeps that true if the
        # rule for names ever widens, as the one for symbols did.
        head = self.prefix + "".join(glob_escape(validate_name(p)) + ":" for p in parts)
        if not isinstance(tail, str) or len(tail) > 200 or any(not c.isprintable() or c.isspace() for c in tail):
            raise InvalidKey(f"pattern tail {tail!r} must be up to 200 printable characters without spaces")
        return head + _TAIL_SPECIAL.sub(r"\\\1", tail)

    def everything(self) -> str:
        """The pattern of every key redtick wrote under this namespace."""
        return self.prefix + "*"

    def describe(self, key: str | bytes) -> KeyInfo:
        """What ``key`` is: its family, the cache that owns it, its metric labels and its symbol.

        The one classification of keys: the memory report groups by ``family``, the cache
        service counts keys by ``cache`` and ``head``, and :mod:`redtick.metrics` counts a failing
        command under ``metric_labels``. Per-user keys belong to the alerts when they hold alerts,
        else to the sessions; rate-limit logs to the rate limiter. A head no redtick cache uses is
        a :class:`~redtick.caches.base.BaseCache`'s prefix: family ``other``, owned by the cache of
        that name. Keys outside the namespace are ``other`` throughout, with ``head`` ``""``.

        Examples
        --------
        >>> keys = KeySchema("redtick")
        >>> keys.describe(keys.tick_chunk("BTCUSDT", 0))
        KeyInfo(head='ticks', family='series ticks', cache='price', metric_family='ticks', symbol='BTCUSDT', tag='BTCUSDT')
        >>> keys.describe(keys.user_alerts("u1"))
        KeyInfo(head='user', family='alerts', cache='alerts', metric_family='alert', symbol=None, tag='u1')
        >>> keys.describe(keys.rate_limit("api_call", 7)).metric_labels
        ('rate_limit', 'api_call')
        >>> keys.describe(b"elsewhere:ticks:{BTCUSDT}:index")
        KeyInfo(head='', family='other', cache='other', metric_family='other', symbol=None, tag=None)
        """
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        if not key.startswith(self.prefix):
            return _OUTSIDE
        head, _, tail = key[len(self.prefix):].partition(":")
        opened = tail.find("{")
        closed = tail.find("}", opened + 1)
        tag = tail[opened + 1 : closed] if 0 <= opened < closed else None
        if head == "user":
            kind = tail.partition("}:")[2].partition(":")[0]
            if kind == "alerts":
                return KeyInfo(head, "alerts", "alerts", "alert", None, tag)
            return KeyInfo(head, "sessions", "user_session", "session" if kind == "sessions" else kind or "other",
                           None, tag)
        family, cache, label = _KIND_OF_HEAD.get(head, ("other", head, head))
        if label is None:
            label = tail.partition(":")[0] or "other"
        return KeyInfo(head, family, cache or "other", label or "other", tag if head in _SYMBOL_HEADS else None, tag)

    def family_of(self, key: str | bytes) -> tuple[str, str | None]:
        """(family, symbol or None) of a key: the first and the symbol of :meth:`describe`.

        Examples
        --------
        >>> keys = KeySchema("redtick")
        >>> keys.family_of(keys.tick_chunk("BTCUSDT", 0))
        ('series ticks', 'BTCUSDT')
        """
        info = self.describe(key)
        return info.family, info.symbol

    def metric_labels(self, key: str | bytes) -> tuple[str, str]:
        """(cache, family) under which :mod:`redtick.metrics` counts an event on ``key``: :meth:`describe`'s.

        Examples
        --------
        >>> keys = KeySchema("redtick")
        >>> keys.metric_labels(keys.market("orderbook", "BTCUSDT"))
        ('market_data', 'orderbook')
        >>> keys.metric_labels(keys.user_preferences("u1"))
        ('user_session', 'preferences')
        """
        return self.describe(key).metric_labels

    def redact(self, key: str | bytes) -> str:
        """``key`` fit for a log line: key parts that are secrets (session ids) replaced by a digest.

        The digest (8 hex digits of SHA-256) lets a reader match the commands of one session
        without learning its id.

        Examples
        --------
        >>> keys = KeySchema("redtick")
        >>> keys.redact(keys.session("s3cr3t-session-id"))
        'redtick:session:{#b2a9af2d}'
        >>> keys.redact(keys.tick_index("BTCUSDT"))
        'redtick:ticks:{BTCUSDT}:index'
        """
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        for head in _SECRET_TAG_HEADS:
            start = self.prefix + head + ":{"
            if key.startswith(start):
                closed = key.find("}", len(start))
                secret = key[len(start) : closed if closed >= 0 else len(key)]
                digest = hashlib.sha256(secret.encode()).hexdigest()[:8]
                return f"{start}#{digest}" + (key[closed:] if closed >= 0 else "}")
        return key

    def owns(self, key: str | bytes) -> bool:
        """True if ``key`` is inside this namespace."""
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        return key.startswith(self.prefix)

    def _symbol(self, family: str, symbol: str, *rest: str) -> str:
        tail = "".join(":" + r for r in rest)
        return f"{self.prefix}{family}:{{{validate_symbol(symbol)}}}{tail}"

    # -- price series and candles ----------------------------------------------------------------
    def tick_index(self, symbol: str) -> str:
        """Sorted set: score = chunk start (ms), member = chunk start; the index of tick chunks."""
        return self._symbol("ticks", symbol, "index")

    def tick_chunk(self, symbol: str, start_ms: int) -> str:
        """String of packed tick records whose times fall in ``[start, start + chunk)``."""
        return self._symbol("ticks", symbol, "chunk", str(int(start_ms)))

    def candle_index(self, symbol: str, interval: str) -> str:
        """Sorted set indexing the candle chunks of one interval."""
        validate_interval(interval)
        return self._symbol("candles", symbol, CANDLE_LAYOUT, interval, "index")

    def candle_chunk(self, symbol: str, interval: str, start_ms: int) -> str:
        """String of fixed candle slots, one per interval bucket, from ``start``."""
        validate_interval(interval)
        return self._symbol("candles", symbol, CANDLE_LAYOUT, interval, "chunk", str(int(start_ms)))

    def legacy_candle_index(self, symbol: str, interval: str) -> str:
        """The candle index of the layout before :data:`CANDLE_LAYOUT` (80-byte slots, no layout part in the key).

        Never written; its presence means the symbol's candles wait for ``redtick upgrade``.
        """
        validate_interval(interval)
        return self._symbol("candles", symbol, interval, "index")

    def legacy_candle_chunk(self, symbol: str, interval: str, start_ms: int) -> str:
        """A candle chunk of the layout before :data:`CANDLE_LAYOUT`: 80-byte slots (``codec.CANDLE_DTYPE_V1``)."""
        validate_interval(interval)
        return self._symbol("candles", symbol, interval, "chunk", str(int(start_ms)))

    def tick_channel(self, symbol: str) -> str:
        """Pub/sub channel on which every tick write of a symbol publishes its notice (a channel, not a key).

        It carries the symbol's hash tag, so on Redis Cluster the writer publishes from the symbol's
        slot and a subscriber listens on the node that holds it.

        Examples
        --------
        >>> KeySchema("redtick").tick_channel("ES")
        'redtick:ticks:{ES}:written'
        """
        return self._symbol("ticks", symbol, "written")

    def current_price(self, symbol: str) -> str:
        """Hash with the newest price, volume and time of a symbol."""
        return self._symbol("price", symbol, "current")

    def series_symbols(self) -> str:
        """Set of the symbols that have a tick series or candles."""
        return self.prefix + "series:symbols"

    # -- market data -----------------------------------------------------------------------------
    def market(self, kind: str, symbol: str) -> str:
        """``market:<kind>:{SYMBOL}`` for price, orderbook, trades, stats24h, info."""
        return self._symbol("market:" + validate_name(kind, "market kind"), symbol)

    def market_symbols(self) -> str:
        """Sorted set: member = symbol, score = time of its last price update (ms)."""
        return self.prefix + "market:symbols"

    # -- user sessions, preferences, subscriptions ------------------------------------------------
    def _user(self, user_id: str, *rest: str) -> str:
        # The user id is a hash tag: every per-user key sits in one slot.
        return f"{self.prefix}user:{{{validate_user_id(user_id)}}}" + "".join(":" + r for r in rest)

    def session(self, session_id: str) -> str:
        """Hash of one session (user id, data, activity, times); its TTL is the session's."""
        return f"{self.prefix}session:{{{validate_id(session_id, 'session id')}}}"

    def user_sessions(self, user_id: str) -> str:
        """Sorted set: member = session id, score = the session's expiry time (ms)."""
        return self._user(user_id, "sessions")

    def session_expiry(self) -> str:
        """Sorted set: member = ``<user id>:<session id>``, score = expiry (ms); drives cleanup.

        User ids may hold ``:`` (``user:123``) and session ids never do: split a member at its
        last ``:``.
        """
        return self.prefix + "sessions:expiry"

    def user_preferences(self, user_id: str) -> str:
        """String: the user's preferences (JSON, encrypted when a key is set)."""
        return self._user(user_id, "preferences")

    def user_subscriptions(self, user_id: str) -> str:
        """Hash: field = subscription kind (``websocket``...), value = its data."""
        return self._user(user_id, "subscriptions")

    # -- rate limits -----------------------------------------------------------------------------
    def rate_limit(self, name: str, identity: str | int) -> str:
        """Sorted set of one identity's hits of a rate limit, any window: ``ratelimit:<name>:{<identity>}``.

        Score = hit time (µs). Calls with different windows share the log; each counts the hits
        in its own window (see :meth:`rate_limit_span`). ``identity`` may be an int (a user id).

        Examples
        --------
        >>> KeySchema("redtick").rate_limit("api_call", 123)
        'redtick:ratelimit:api_call:{123}'
        """
        return f"{self.prefix}ratelimit:{validate_name(name, 'rate limit name')}:{{{validate_identity(identity)}}}"

    def rate_limit_span(self, name: str, identity: str | int) -> str:
        """String: the longest window (µs) used on the log :meth:`rate_limit` names, so no call trims it shorter.

        It shares the log's hash tag (one slot, one script) and ends in ``:span`` where a log key
        ends in ``}``, so no log key is ever a span key.
        """
        return self.rate_limit(name, identity) + ":span"

    # -- price alerts ----------------------------------------------------------------------------
    def alert_index(self, symbol: str, condition: str) -> str:
        """Sorted set of one condition's live alerts on a symbol: member = alert id, score = target."""
        if condition not in ALERT_CONDITIONS:
            raise InvalidKey(f"alert condition {condition!r}; expected one of {', '.join(ALERT_CONDITIONS)}")
        return self._symbol("alerts", symbol, condition)

    def alert_expiry(self, symbol: str) -> str:
        """Sorted set: member = alert id, score = expiry time (ms)."""
        return self._symbol("alerts", symbol, "expiry")

    def alert_data(self, symbol: str) -> str:
        """Hash: field = alert id, value = the alert as JSON (user id, target, condition, times)."""
        return self._symbol("alerts", symbol, "data")

    def alert_last_price(self, symbol: str) -> str:
        """String: the price the last alert check ended at (exact ``repr`` of a float)."""
        return self._symbol("alerts", symbol, "last")

    def alert_log_prefix(self, symbol: str) -> str:
        """Head of the fired-alert logs of a symbol; the alert script appends the user id.

        The logs carry the symbol's hash tag so the script that fires an alert can append to
        its owner's log atomically in the symbol's slot.
        """
        return self._symbol("alerts", symbol, "fired") + ":"

    def alert_stream(self, symbol: str) -> str:
        """Stream of the symbol's fired alerts (field ``record``: the fired JSON), read by consumer groups."""
        return self._symbol("alerts", symbol, "stream")

    def alert_handoff(self, symbol: str, price: float) -> str:
        """List of the alerts the latest writes ending at ``price`` fired, until a check at that price takes them.

        ``price`` is part of the key as its exact ``repr``, the text the alert script gets.

        Examples
        --------
        >>> KeySchema("redtick").alert_handoff("BTCUSDT", 50_000)
        'redtick:alerts:{BTCUSDT}:handoff:50000.0'
        """
        return self._symbol("alerts", symbol, "handoff", repr(float(price)))

    def alert_stream_symbols(self) -> str:
        """Set of the symbols alerts were ever set on: the streams a consumer of fired alerts reads."""
        return self.prefix + "alerts:streams"

    def alert_log(self, symbol: str, user_id: str) -> str:
        """List, newest first: the user's fired alerts on one symbol (JSON with price and time)."""
        return self.alert_log_prefix(symbol) + validate_user_id(user_id)

    def user_alerts(self, user_id: str) -> str:
        """Hash: field = alert id, value = its symbol; the user's alerts, live or not yet cleaned."""
        return self._user(user_id, "alerts")

    def user_alert_symbols(self, user_id: str) -> str:
        """Set of the symbols the user ever set an alert on: where their fired logs are."""
        return self._user(user_id, "alerts", "symbols")

    def alert_channel(self) -> str:
        """Pub/sub channel on which every fired alert is published (JSON with ``user_id``).

        A websocket layer subscribes once and routes each message to its user's sockets.
        """
        return self.prefix + "alerts:fired"

    # -- backups ---------------------------------------------------------------------------------
    def restore_pending(self) -> str:
        """Hash: field = what a restore began and has not finished (``symbol:<S>``, ``alerts``, ``sessions``),
        value = the backup file's id; gone once every part is written and verified."""
        return self.prefix + "restore:pending"

    @staticmethod
    def restore_part(symbol: str) -> str:
        """The field of :meth:`restore_pending` that lists ``symbol`` while a restore has not verified it."""
        return f"symbol:{symbol}"

    # -- snapshots -------------------------------------------------------------------------------
    def snapshot(self, name: str, part: int | None = None) -> str:
        """Hash describing an Arrow snapshot, or the key of one of its byte parts.

        The name is the hash tag, so a snapshot and its parts share a slot and are replaced in
        one transaction.
        """
        base = f"{self.prefix}snapshot:{{{validate_name(name, 'snapshot name')}}}"
        return base if part is None else f"{base}:part:{int(part)}"

    def snapshot_pattern(self) -> str:
        """Pattern of every snapshot key (descriptions and parts)."""
        return self.prefix + "snapshot:*"

    # -- HTTP response cache ---------------------------------------------------------------------
    def response(self, key_prefix: str, digest: str) -> str:
        """String holding one cached HTTP response: ``http:<key_prefix>:<request digest>``."""
        prefix = validate_name(key_prefix, "response cache prefix")
        return self.key("http", prefix, validate_id(digest, "request digest"))

    # -- cached repositories ---------------------------------------------------------------------
    def repository(self, cache_prefix: str, method: str, generation: str, digest: str) -> str:
        """One cached repository read: ``repo:<prefix>:<method>:g<generation>:<call digest>``."""
        return self.key(
            "repo",
            validate_name(cache_prefix, "repository cache prefix"),
            validate_id(method, "method name"),
            "g" + validate_id(generation, "cache generation"),
            validate_id(digest, "call digest"),
        )

    def repository_generation(self, cache_prefix: str) -> str:
        """The current generation token of a repository cache, replaced by every write.

        It lives outside ``repo:`` so no invalidation pattern deletes it.
        """
        return self.key("repogen", validate_name(cache_prefix, "repository cache prefix"))

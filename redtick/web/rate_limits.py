"""The API's rate limits on redtick's own ``RateLimiter``: who the client is, and which limits a request met."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable

from starlette.requests import Request

from redtick.caches.ratelimit import RateLimiter, RateLimitState, rate_limit_headers
from redtick.connection import Connection
from redtick.errors import RateLimited
from redtick.web.guard import RATE_LIMIT_HEADERS
from redtick.web.settings import RateLimitPolicy, WebSettings

__all__ = ["ApiRateLimits", "client_address"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_IPV6_PREFIX = 64  # one host on IPv6 usually holds a whole /64: limit the network, not each address
_POLICIES = "redtick.rate_limit_policies"


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _identity(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> str:
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, _IPV6_PREFIX), strict=False))
    return str(address)


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: Iterable[_Network]) -> str:
    """The client a rate limit counts: the peer, or what trusted proxies say in ``X-Forwarded-For``.

    ``X-Forwarded-For`` is read only when the peer is a trusted proxy, and then from the right:
    the first address that is not a trusted proxy is the client (a client can write anything on
    the left, but each trusted proxy appends the address it saw). IPv6 clients count per /64.
    An address that cannot be parsed counts as ``"unknown"``, one bucket for all of them.

    Examples
    --------
    >>> proxies = [ipaddress.ip_network("10.0.0.0/8")]
    >>> client_address("10.0.0.5", ["6.6.6.6, 203.0.113.7"], proxies)
    '203.0.113.7'
    >>> client_address("198.51.100.1", ["6.6.6.6"], proxies)
    '198.51.100.1'
    >>> client_address("2001:db8::1", [], [])
    '2001:db8::/64'
    """
    trusted = tuple(trusted)
    hop = _parse(peer) if peer else None

    def is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return address is not None and any(address in network for network in trusted)

    if not is_trusted(hop):
        return _identity(hop)
    chain = [item for header in forwarded_for for item in header.split(",") if item.strip()]
    for item in reversed(chain):
        hop = _parse(item)
        if not is_trusted(hop):
            return _identity(hop)
    return _identity(hop)  # every hop is a trusted proxy: the leftmost one is the client


class ApiRateLimits:
    """The API's limiters: writes per user and failed authentications per client address.

    Each is a :class:`~redtick.caches.ratelimit.RateLimiter` (exact sliding window, one Lua
    script, the server's clock); a policy of None turns that limit off. Every check leaves the
    ``RateLimit-Policy`` and ``RateLimit`` headers in the request's state, where
    :class:`~redtick.web.guard.RequestGuard` adds them to whatever response goes out.

    Parameters
    ----------
    conn : Connection
    settings : WebSettings
    """

    WRITES = "writes"
    AUTH_FAILURES = "auth_failures"

    def __init__(self, conn: Connection, settings: WebSettings):
        self.settings = settings
        self.policies: dict[str, RateLimitPolicy] = {}
        self.limiters: dict[str, RateLimiter] = {}
        for name, policy in ((self.WRITES, settings.write_rate_limit),
                             (self.AUTH_FAILURES, settings.auth_failure_rate_limit)):
            if policy is not None:
                self.policies[name] = policy
                self.limiters[name] = RateLimiter(f"api_{name}", limit=policy.limit, window=policy.window, conn=conn)

    def client(self, request: Request) -> str:
        """The rate-limit identity of the request's client (see :func:`client_address`)."""
        peer = request.client.host if request.client else None
        return client_address(peer, request.headers.getlist("x-forwarded-for"), self.settings.trusted_proxies)

    # -- headers ---------------------------------------------------------------------------------
    def _record(self, request: Request, name: str, state: RateLimitState | None) -> None:
        """Note ``state`` (None: only name the policy) of one policy for the response's headers."""
        if name not in self.policies:
            return
        request_state = request.scope.setdefault("state", {})
        seen: dict[str, RateLimitState | None] = request_state.setdefault(_POLICIES, {})
        if state is not None or name not in seen:
            seen[name] = state
        decided = {n: s for n, s in sorted(seen.items()) if s is not None}
        headers = rate_limit_headers(decided) if decided else {}
        # A policy this request was not counted against yet is still announced, without a state.
        announced = {n: RateLimitState(True, self.policies[n].limit, 0, 0.0, 0.0, window=self.policies[n].window)
                     for n in sorted(seen)}
        headers["RateLimit-Policy"] = rate_limit_headers(announced)["RateLimit-Policy"]
        request_state[RATE_LIMIT_HEADERS] = headers

    def _refuse(self, name: str, state: RateLimitState, what: str) -> RateLimited:
        wait = state.retry_after if math.isfinite(state.retry_after) else self.policies[name].window
        return RateLimited(f"{what}; retry in {math.ceil(wait)} s", retry_after=wait)

    # -- the checks ------------------------------------------------------------------------------
    def announce(self, request: Request, name: str) -> None:
        """Name the policy on this route's response although no check ran (``RateLimit-Policy`` only)."""
        self._record(request, name, None)

    async def check_authentication_allowed(self, request: Request) -> None:
        """Raise RateLimited (429) if the client's address used up its failed authentications.

        Called before any credential is looked at: a locked-out address learns nothing about
        the credentials it sends, right or wrong, until its window frees a slot.
        """
        limiter = self.limiters.get(self.AUTH_FAILURES)
        if limiter is None:
            return
        state = await limiter.state(self.client(request))
        self._record(request, self.AUTH_FAILURES, state)
        if not state.allowed:
            raise self._refuse(self.AUTH_FAILURES, state, "too many failed authentications from your address")

    async def authentication_failed(self, request: Request) -> None:
        """Count one failed authentication of the client's address; RateLimited if that was one too many."""
        limiter = self.limiters.get(self.AUTH_FAILURES)
        if limiter is None:
            return
        state = await limiter.hit(self.client(request))
        self._record(request, self.AUTH_FAILURES, state)
        if not state.allowed:
            raise self._refuse(self.AUTH_FAILURES, state, "too many failed authentications from your address")

    async def count_write(self, request: Request, user_id: str) -> None:
        """Count one write by ``user_id``; RateLimited (429) when the user's window is full."""
        limiter = self.limiters.get(self.WRITES)
        if limiter is None:
            return
        state = await limiter.hit(user_id)
        self._record(request, self.WRITES, state)
        if not state.allowed:
            raise self._refuse(self.WRITES, state, f"too many writes: at most {limiter.limit} per {limiter.window:g} s")

"""Lua scripts shipped as package data: read once, bound to a client once, run with EVALSHA.

Each script is a ``<name>.lua`` file next to this module. :func:`load` reads its text with
``importlib.resources`` (so it works from a wheel or a zip); :func:`bound` gives redis-py's own
``Script`` (or ``AsyncScript`` for an asyncio client) registered on that client. Calling it sends
EVALSHA and, if the server answers NOSCRIPT (restart, failover, ``SCRIPT FLUSH``), loads the
script and retries: redis-py does that, not redtick. Scripts take keys through ``KEYS`` and
values through ``ARGV`` so they run on Redis Cluster when every key shares one hash tag.

Every script must run on real Redis 7 and on the in-memory fakeredis, whose Lua is 5.1 with only
``cjson`` (no ``struct``, ``cmsgpack`` or ``bit``), and must never turn a float into text with
``tostring`` (Lua 5.1 prints 14 significant digits): prices travel as exact strings.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import threading
import weakref
from typing import Any

__all__ = ["bound", "load"]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_bound: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@functools.cache
def load(name: str) -> str:
    """The source of the package script ``<name>.lua``.

    Parameters
    ----------
    name : str
        The file name without ``.lua``: lowercase letters, digits and ``_``.

    Raises
    ------
    FileNotFoundError
        When no such script ships with redtick.
    ValueError
        When ``name`` is not a plain script name (no paths).

    Examples
    --------
    >>> "redis.call" in load("rate_limit")
    True
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"script name {name!r}: expected lowercase letters, digits and _ (no path, no .lua)")
    return importlib.resources.files(__name__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


def bound(client: Any, name: str) -> Any:
    """redis-py's ``Script`` for ``<name>.lua`` registered on ``client``, made once per client.

    Works for sync, asyncio and cluster clients alike (``client.register_script``). Call the
    result as ``script(keys=[...], args=[...])``, or with ``client=pipe`` to queue it in a
    pipeline; await it for an asyncio client.

    Examples
    --------
    >>> from redtick.connection import Connection
    >>> from redtick.config import Settings
    >>> conn = Connection(Settings())
    >>> script = bound(conn.sync, "rate_limit")
    >>> script is bound(conn.sync, "rate_limit")
    True
    """
    with _lock:
        scripts = _bound.setdefault(client, {})
        script = scripts.get(name)
        if script is None:
            script = scripts[name] = client.register_script(load(name))
        return script

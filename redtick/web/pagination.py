"""Keyset pagination of the API's lists: a cursor is the position of the last item a page ended with."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from redtick.errors import InvalidData

__all__ = ["CURSOR_PATTERN", "DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "decode_cursor", "encode_cursor", "paginate"]

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 100
"""Items per page without ``limit``: a list this short comes back whole, in the spec's shape."""
MAX_PAGE_SIZE = 1000

CURSOR_PATTERN = r"^[0-9]{1,16}\.[A-Za-z0-9_-]{1,64}$"
"""A position: ``<epoch ms>.<id>`` of an item. Any such value is a valid cursor: the page starts
after that position, whether or not an item sits exactly there."""


def encode_cursor(position: tuple[int, str]) -> str:
    """The cursor of a position ``(epoch ms, id)`` in a list's order.

    Examples
    --------
    >>> encode_cursor((1700000000000, "abc"))
    '1700000000000.abc'
    >>> decode_cursor("1700000000000.abc")
    (1700000000000, 'abc')
    """
    number, text = position
    return f"{int(number)}.{text}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The position a cursor names; InvalidData (422) for anything outside :data:`CURSOR_PATTERN`."""
    if not isinstance(cursor, str) or not re.fullmatch(CURSOR_PATTERN, cursor):
        raise InvalidData(f"cursor {cursor!r}: expected <epoch ms>.<id>, the next_cursor of a previous page")
    number, text = cursor.split(".", 1)
    return int(number), text


def paginate(
    items: Sequence[T], position: Callable[[T], tuple[int, str]], limit: int, cursor: str | None
) -> tuple[list[T], str | None]:
    """One page of ``items`` in ``position`` order after ``cursor``, and the cursor of the next page (or None).

    Positions are unique per item, so an item added or removed between two requests neither
    repeats nor hides another.

    Examples
    --------
    >>> items = [(3, "c"), (1, "a"), (2, "b")]
    >>> page, after = paginate(items, lambda item: item, limit=2, cursor=None)
    >>> page, paginate(items, lambda item: item, limit=2, cursor=after)
    ([(1, 'a'), (2, 'b')], ([(3, 'c')], None))
    """
    ordered = sorted(items, key=position)
    if cursor is not None:
        after = decode_cursor(cursor)
        ordered = [item for item in ordered if position(item) > after]
    page = ordered[:limit]
    more = len(ordered) > limit
    return page, encode_cursor(position(page[-1])) if more and page else None

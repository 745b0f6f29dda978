"""Request bodies parsed as strict JSON (RFC 8259): no NaN, no Infinity, no number beyond float64."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["StrictJSONRequest", "StrictJSONRoute", "loads_strict"]

_MAX_INT_DIGITS = 308  # beyond this an integer is not a finite float64 either


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of range for a 64-bit float")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits is out of range for a 64-bit float")
    return int(text)


def loads_strict(body: bytes | str) -> Any:
    """Parse ``body`` as JSON, refusing what Python's ``json`` accepts beyond RFC 8259.

    ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON; ``1e309`` and longer integers would
    become ``inf``. Any problem, undecodable bytes and nesting too deep for the parser included,
    raises :class:`json.JSONDecodeError`, which FastAPI answers with 422. The error never
    carries the body, so no handler can echo it back.

    Examples
    --------
    >>> loads_strict(b'{"target_price": 1.5}')
    {'target_price': 1.5}
    >>> loads_strict(b'{"target_price": NaN}')
    Traceback (most recent call last):
    ...
    json.decoder.JSONDecodeError: NaN is not a JSON number; send a finite number: line 1 column 1 (char 0)
    """
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise json.JSONDecodeError(exc.msg, "", 0) from None
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        message = "nesting is too deep" if isinstance(exc, RecursionError) else str(exc).split("\n")[0][:200]
        raise json.JSONDecodeError(message, "", 0) from None


class StrictJSONRequest(Request):
    """A request whose :meth:`json` is :func:`loads_strict`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """An ``APIRoute`` that parses JSON bodies with :func:`loads_strict` (``APIRouter(route_class=...)``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler

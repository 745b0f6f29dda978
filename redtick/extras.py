"""The optional dependencies, imported through one function that names the extra to install.

redtick installs what research needs (pandas, pyarrow, plotly, ipywidgets, Redis clients); the
HTTP API (FastAPI, uvicorn), Polars output, the Jupyter server and the test tools are extras
(pyproject.toml). Code in redtick that needs one imports it with :func:`require`, so a missing one is a
:class:`~redtick.errors.MissingExtra` saying what to install, not a ``ModuleNotFoundError`` from
deep inside.
"""

from __future__ import annotations

import importlib
import types

from redtick.errors import MissingExtra

__all__ = ["EXTRAS", "require"]

EXTRAS: dict[str, tuple[str, str]] = {
    "fastapi": ("FastAPI", "api"),
    "uvicorn": ("uvicorn", "api"),
    "polars": ("Polars", "polars"),
    "nbformat": ("nbformat", "jupyter"),
    "nbconvert": ("nbconvert", "jupyter"),
}
"""Optional module redtick imports -> (what it is called, the extra of pyproject.toml that installs it)."""


def require(module: str, purpose: str) -> types.ModuleType:
    """Import the optional ``module`` for ``purpose``, or raise :class:`MissingExtra` naming its extra.

    Parameters
    ----------
    module : str
        A key of :data:`EXTRAS`, such as ``"fastapi"`` or ``"polars"``.
    purpose : str
        What needs it, as the user asked for it: ``"redtick serve"``, ``"output='polars'"``.

    Returns
    -------
    types.ModuleType
        The imported module.

    Raises
    ------
    MissingExtra
        The module is not installed (or fails to import): one line, ``<purpose> needs <Name>:
        pip install 'redtick[<extra>]'``.

    Examples
    --------
    >>> require("polars", "output='polars'").__name__
    'polars'
    >>> import sys, unittest.mock
    >>> with unittest.mock.patch.dict(sys.modules, {"uvicorn": None}):  # as if uvicorn were not installed
    ...     require("uvicorn", "redtick serve")
    Traceback (most recent call last):
    ...
    redtick.errors.MissingExtra: redtick serve needs uvicorn: pip install 'redtick[api]'
    """
    label, extra = EXTRAS[module]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(f"{purpose} needs {label}: pip install 'redtick[{extra}]'", name=module, extra=extra) from exc

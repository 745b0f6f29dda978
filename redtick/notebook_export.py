"""Run a notebook and write it as one HTML file that asks for nothing: ``redtick export NOTEBOOK``.

``jupyter nbconvert --execute --to html`` draws redtick's charts and each panel's static copy
offline (plotly.js is in the page once, from :func:`redtick.reports.setup_notebook`), but its page
template still asks cdnjs for require.js and MathJax and, with the widgets' state saved, unpkg.com
for the widgets' renderer; offline those requests fail. This is the same conversion with those
three settings off, so nothing in the page comes from the network.
"""

from __future__ import annotations

import pathlib
import types
from typing import Any

from redtick.extras import require

__all__ = ["OFFLINE_SETTINGS", "export_notebook"]

OFFLINE_SETTINGS: dict[str, dict[str, Any]] = {
    # An empty script in place of each: the notebooks need neither require.js nor MathJax. (The page's
    # mermaid loader imports from cdnjs only when the page holds a diagram; redtick's never do.)
    "HTMLExporter": {"require_js_url": "data:text/javascript,", "mathjax_url": "data:text/javascript,"},
    # No widget state in the page, so no renderer to fetch: each panel shows as the static copy displayed after it.
    "ExecutePreprocessor": {"store_widget_state": False},
}
"""The nbconvert settings of an offline export (``--HTMLExporter.require_js_url=...`` and so on)."""


def export_notebook(notebook: str | pathlib.Path, output: str | pathlib.Path | None = None, *,
                    timeout: int = 900) -> pathlib.Path:
    """Execute ``notebook`` in its own folder and write it as an HTML file that opens offline.

    Parameters
    ----------
    notebook : str or Path
        An ``.ipynb`` file.
    output : str or Path, optional
        Where to write the page; by default beside the notebook, with the ``.html`` suffix.
    timeout : int
        Seconds a cell may run.

    Returns
    -------
    Path
        The HTML file written.

    Raises
    ------
    FileNotFoundError
        ``notebook`` does not exist.
    MissingExtra
        nbconvert is not installed (``pip install 'redtick[jupyter]'``).

    Examples
    --------
    >>> export_notebook("no-such.ipynb")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no notebook at no-such.ipynb
    """
    source = pathlib.Path(notebook)
    if not source.is_file():
        raise FileNotFoundError(f"no notebook at {notebook}")
    nbformat = require("nbformat", "redtick export")
    nbconvert = require("nbconvert", "redtick export")
    target = pathlib.Path(output) if output is not None else source.with_suffix(".html")
    executed = _executed(nbformat, nbconvert, source, timeout)
    exporter = nbconvert.HTMLExporter()
    for name, value in OFFLINE_SETTINGS["HTMLExporter"].items():
        setattr(exporter, name, value)
    body, _ = exporter.from_notebook_node(executed)
    target.write_text(body, encoding="utf-8")
    return target


def _executed(nbformat: types.ModuleType, nbconvert: types.ModuleType, source: pathlib.Path, timeout: int) -> Any:
    """The notebook, run top to bottom in its own folder as ``jupyter nbconvert --execute`` runs it."""
    node = nbformat.read(source, as_version=4)
    settings = OFFLINE_SETTINGS["ExecutePreprocessor"]
    runner = nbconvert.preprocessors.ExecutePreprocessor(timeout=timeout, **settings)
    runner.preprocess(node, {"metadata": {"path": str(source.resolve().parent)}})
    return node

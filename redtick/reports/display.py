"""Plotly figures that survive being shared: interactive in JupyterLab, drawn in exported HTML offline, an image elsewhere.

A figure's output bundle carries two views of it, and each reader picks the one it can show:

- ``application/vnd.plotly.v1+json``: JupyterLab (and VS Code) draw it with their plotly renderer;
- ``text/html``: a PNG of the figure (made with kaleido in Debian's or Google's Chromium, offline)
  and a script that replaces it with the interactive chart, drawn with the plotly.js that
  :func:`setup_notebook` put in the notebook once. ``jupyter nbconvert --to html`` picks this view,
  so the exported page draws offline, and a page whose scripts never run shows the PNG;
- ``image/png``, the same PNG, only when no Jupyter server started the kernel (``jupyter nbconvert
  --execute``, papermill, nbclient: :func:`headless`). Static viewers that show a bundle's image
  (GitHub's, nbviewer's, whose sanitizers drop scripts and may drop images inside HTML) show it.

Under a Jupyter server (JupyterLab, Notebook, Voila set ``JPY_SESSION_NAME``) or VS Code the
``image/png`` entry is left out: JupyterLab's plotly renderer (jupyterlab-plotly) shows an output's ``image/png``,
when it has one, instead of the chart until the pointer enters it; without one it draws the chart
at once. That renderer adds an ``image/png`` of its own once it drew the chart, so a notebook saved
from JupyterLab carries one too, and every saved notebook has the same three views. Opened again in
JupyterLab, such a notebook shows the images until pointed at: that is the renderer's doing, and
clearing outputs before saving avoids it. Plotly's part holds only the figure (``data`` and ``layout``).

:func:`setup_notebook` makes this the notebook's plotly renderer, so a figure left as a cell's value
gets both views; :func:`figure_bundle` builds the bundle for other displays (the panels' copies).
"""

from __future__ import annotations

import atexit
import base64
import html
import json
import os
import uuid
import warnings
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from IPython import get_ipython
from IPython.display import display
from plotly.io.base_renderers import MimetypeRenderer
from plotly.offline import get_plotlyjs, get_plotlyjs_version

try:  # the static image needs kaleido (the jupyter extra) and a Chromium; the charts work without it
    import kaleido
except ImportError:  # pragma: no cover - kaleido is in the jupyter extra
    kaleido = None

__all__ = ["PLOTLY_MIME", "RENDERER", "FigureRenderer", "figure_bundle", "figure_html", "figure_image", "headless",
           "plotlyjs_html", "setup_notebook"]

PLOTLY_MIME = "application/vnd.plotly.v1+json"
RENDERER = "redtick"
"""The name :func:`setup_notebook` registers the renderer under in ``plotly.io.renderers``."""

_WIDTH, _HEIGHT = 900, 480  # pixels of the static image, and the chart's height when its layout sets none
_DRAW = """(function () {
  var id = %(id)s, height = %(height)d, figure = %(figure)s;
  function draw() {
    var gd = document.getElementById(id);
    if (!gd || !window.Plotly) return false;
    if (gd.getAttribute("data-drawn")) return true;
    gd.setAttribute("data-drawn", "1");
    var image = gd.parentNode.querySelector("img.redtick-chart-image");
    if (image) image.parentNode.removeChild(image);
    gd.style.height = height + "px";
    window.Plotly.newPlot(gd, figure.data, figure.layout, {responsive: true, displaylogo: false});
    return true;
  }
  if (!draw()) window.addEventListener("load", draw);
})();"""
_server: dict[str, bool] = {"started": False, "warned": False}


def _as_dict(figure: go.Figure | dict[str, Any]) -> dict[str, Any]:
    return figure.to_dict() if isinstance(figure, go.Figure) else figure


def _height(fig: dict[str, Any]) -> int:
    return int(fig.get("layout", {}).get("height") or _HEIGHT)


def _title(fig: dict[str, Any]) -> str:
    title = fig.get("layout", {}).get("title") or {}
    text = title.get("text") if isinstance(title, dict) else title
    return str(text or "plotly figure")


def _stop_image_server() -> None:
    if kaleido is not None and _server["started"]:
        kaleido.stop_sync_server(silence_warnings=True)


def figure_image(figure: go.Figure | dict[str, Any], *, width: int = _WIDTH) -> bytes | None:
    """The figure as PNG bytes (kaleido driving a headless Chromium), or None with a warning when it cannot be made.

    MathJax is left out, so nothing is fetched from the network. The first image of a process
    starts one Chromium that later images reuse.

    Examples
    --------
    >>> png = figure_image(go.Figure(go.Bar(y=[1, 2])))
    >>> png is None or png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    fig = _as_dict(figure)
    try:
        if kaleido is None:
            raise ImportError("kaleido is not installed: pip install 'redtick[jupyter]'")
        if not _server["started"]:
            kaleido.start_sync_server(mathjax=False, silence_warnings=True)
            _server["started"] = True
            atexit.register(_stop_image_server)
        image = kaleido.calc_fig_sync(fig, opts={"format": "png", "width": width, "height": _height(fig), "scale": 1})
    except Exception as exc:  # the image is a fallback: without one the interactive views still hold the figure
        if not _server["warned"]:
            _server["warned"] = True
            warnings.warn(f"no static image of plotly figures ({exc}); GitHub's viewer will show them empty. "
                          "Install kaleido (the jupyter extra) and Chromium to get one.", RuntimeWarning, stacklevel=2)
        return None
    return bytes(image)


def figure_html(figure: go.Figure | dict[str, Any], *, image: bytes | None = None) -> str:
    """A div and a script drawing the figure with the page's plotly.js; ``image`` (PNG) shows until it draws.

    The script draws at once when plotly.js is already on the page, else on the page's load event,
    so plotly.js may come anywhere in the document (:func:`plotlyjs_html`, once). Where scripts never
    run the image stays.

    Examples
    --------
    >>> page = figure_html(go.Figure(go.Bar(y=[1, 2]), layout_title_text="bars"), image=b"png")
    >>> 'class="plotly-graph-div"' in page, 'alt="bars"' in page, "<script src" in page
    (True, True, False)
    """
    fig = _as_dict(figure)
    chart_id = f"redtick-chart-{uuid.uuid4().hex}"
    fallback = "" if image is None else (
        f'<img class="redtick-chart-image" alt="{html.escape(_title(fig))}" style="display:block;max-width:100%" '
        f'src="data:image/png;base64,{base64.b64encode(image).decode()}">')
    # "</" inside the script's JSON would end the script element early.
    script = _DRAW % {"id": f'"{chart_id}"', "height": _height(fig),
                      "figure": pio.to_json(fig, validate=False).replace("</", "<\\/")}
    return (f'<div class="redtick-chart">{fallback}<div id="{chart_id}" class="plotly-graph-div" '
            f'style="width:100%;height:0"></div></div><script type="text/javascript">{script}</script>')


_FRONTENDS = ("JPY_SESSION_NAME", "VSCODE_PID")  # set in kernels a Jupyter server or VS Code started


def headless() -> bool:
    """Whether this process is a kernel no frontend started: neither a Jupyter server (``JPY_SESSION_NAME``)
    nor VS Code (``VSCODE_PID``, which plotly also reads to pick its renderer).

    A notebook run by ``jupyter nbconvert --execute``, papermill or nbclient is headless: no
    frontend draws its charts, so nothing else would put their image in the saved notebook.

    Examples
    --------
    >>> import os
    >>> headless() == all(name not in os.environ for name in ("JPY_SESSION_NAME", "VSCODE_PID"))
    True
    """
    return all(name not in os.environ for name in _FRONTENDS)


def figure_bundle(figure: go.Figure | dict[str, Any], *, image: bool = True) -> dict[str, Any]:
    """The figure's output bundle: plotly's JSON, the HTML of :func:`figure_html`, a title, and when headless a PNG.

    With ``image``, the HTML holds a PNG of the figure, and when :func:`headless` the bundle has
    an ``image/png`` entry too (under a Jupyter server JupyterLab's plotly renderer adds its own).

    Examples
    --------
    >>> bundle = figure_bundle(go.Figure(go.Bar(y=[1, 2]), layout_title_text="bars"), image=False)
    >>> sorted(bundle), bundle["text/plain"]
    (['application/vnd.plotly.v1+json', 'text/html', 'text/plain'], '<plotly figure: bars>')
    """
    fig = _as_dict(figure)
    png = figure_image(fig) if image else None
    bundle: dict[str, Any] = {PLOTLY_MIME: json.loads(pio.to_json(fig, validate=False)),
                              "text/html": figure_html(fig, image=png),
                              "text/plain": f"<plotly figure: {_title(fig)}>"}
    if png is not None and headless():
        bundle["image/png"] = base64.b64encode(png).decode()
    return bundle


def plotlyjs_html() -> str:
    """plotly.js as one inline script (about 4.8 MB), for a page or notebook to hold once.

    Examples
    --------
    >>> page = plotlyjs_html()
    >>> page.startswith("<script") and "<script src" not in page
    True
    """
    return (f'<script type="text/javascript" data-plotlyjs="{get_plotlyjs_version()}">'
            f"window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script>"
            f'<script type="text/javascript">{get_plotlyjs()}</script>')


class FigureRenderer(MimetypeRenderer):  # type: ignore[misc]  # plotly ships no types
    """plotly renderer giving each figure :func:`figure_bundle`'s views: plotly's JSON, and HTML holding a PNG."""

    def __init__(self, image: bool = True):
        self.image = image

    def to_mimebundle(self, fig_dict: dict[str, Any]) -> dict[str, Any]:
        return figure_bundle(fig_dict, image=self.image)


def setup_notebook(*, image: bool = True) -> None:
    """Make plotly figures in this notebook survive export; call once, near the top.

    Puts plotly.js in this cell's output (so HTML exported with nbconvert draws offline, with no
    CDN) and makes :class:`FigureRenderer` plotly's default renderer, so every figure shown after
    it carries plotly's JSON for JupyterLab and HTML for exported pages, holding (with ``image``) a
    PNG, which a headless run also puts in the bundle for static viewers (:func:`figure_bundle`).

    Parameters
    ----------
    image : bool
        Add a PNG of each figure (about half a second each, with kaleido and Chromium).

    Examples
    --------
    >>> before = pio.renderers.default
    >>> setup_notebook(image=False)  # outside IPython there is no output to hold plotly.js
    >>> pio.renderers.default
    'redtick'
    >>> pio.renderers.default = before
    """
    pio.renderers[RENDERER] = FigureRenderer(image=image)
    pio.renderers.default = RENDERER
    if get_ipython() is None:
        return
    display({"text/html": plotlyjs_html(),  # type: ignore[no-untyped-call]
             "text/plain": f"plotly.js {get_plotlyjs_version()} embedded for exported HTML"}, raw=True)

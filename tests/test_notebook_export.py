"""Every notebook, executed and exported to HTML with nbconvert, draws all its charts offline in Chromium.

Each notebook runs on a throwaway local store (``REDTICK_HOME`` in a temporary folder, no
``REDIS_URL``) in its light CI version, the way ``jupyter nbconvert --execute --to html`` runs it,
in two steps so the executed notebook can be checked too:

1. ``jupyter nbconvert --execute --to notebook``: every plotly figure's output carries plotly's JSON
   (JupyterLab) and HTML holding a PNG (what GitHub's viewer shows once it drops the script);
2. ``jupyter nbconvert --to html`` with the offline settings the README gives: no script comes from
   a CDN, plotly.js is in the page exactly once, panels show their static copy (tables and charts),
   never a widget's ``VBox(children=...`` text, and each chart has its image fallback.

Then headless Chromium, with the network off, opens the page: no script error, no request leaves
the machine, and every chart drew (an ``svg.main-svg`` holding a ``g.trace``). Outside CI the test
skips without Chromium or Playwright; under ``CI=true`` it fails instead.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from tests.conftest import IN_CI, chromium

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # the browser extra
    sync_playwright = None

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PLOTLY_MIME = "application/vnd.plotly.v1+json"
# nbconvert's page template loads require.js and MathJax from cdnjs; the notebooks need neither, so an
# empty script stands in for both. Widget state is not saved, so panels export as their static copy.
OFFLINE_HTML = ["--HTMLExporter.require_js_url=data:text/javascript,", "--HTMLExporter.mathjax_url=data:text/javascript,"]
NO_WIDGET_STATE = "--ExecutePreprocessor.store_widget_state=False"

CHARTS_DRAWN = """() => {
  const graphs = Array.from(document.querySelectorAll('.plotly-graph-div'));
  const drawn = graphs.filter(g => g.querySelector('svg.main-svg') && g.querySelectorAll('g.trace').length > 0);
  return {graphs: graphs.length, drawn: drawn.length};
}"""


@pytest.fixture(scope="module")
def store_env(tmp_path_factory):
    """The environment of the notebooks' kernels: a throwaway local store, the light (CI) version."""
    home = tmp_path_factory.mktemp("redtick-home")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB")}
    env.update(REDTICK_HOME=str(home), CI="true")
    yield env
    subprocess.run([sys.executable, "-c", "import sys, redtick.cli; sys.exit(redtick.cli.main(['stop']))"], env=env,
                   capture_output=True, timeout=60)


def nbconvert(args: list[str], env: dict[str, str], cwd: pathlib.Path) -> None:
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


def check_executed(notebook: dict) -> int:
    """Every plotly output carries HTML holding a PNG beside plotly's JSON; the number of figures."""
    figures = [o["data"] for cell in notebook["cells"] for o in cell.get("outputs", [])
               if PLOTLY_MIME in o.get("data", {})]
    for data in figures:
        # No image/png entry: JupyterLab's plotly renderer would show it instead of the chart.
        assert sorted(data) == [PLOTLY_MIME, "text/html", "text/plain"]
        # nor an image inside plotly's part: only the figure, which the renderer draws at once
        assert set(data[PLOTLY_MIME]) == {"data", "layout"} and "base64," not in json.dumps(data[PLOTLY_MIME])
        page = "".join(data["text/html"])  # a notebook file keeps text as a list of lines
        assert 'class="redtick-chart-image"' in page and "data:image/png;base64," in page
        assert "<script src" not in page
    return len(figures)


def check_page(page: str) -> int:
    """The exported page's static promises; the number of charts in it."""
    sources = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']([^\"']*)", page)
    assert [s for s in sources if not s.startswith("data:")] == [], "scripts fetched from the network"
    assert page.count("* plotly.js v") == 1, "plotly.js must be in the page exactly once"
    for widget_text in ("VBox(children", "HBox(children", "IntProgress(", "application/vnd.jupyter.widget-view+json"):
        assert widget_text not in page
    charts = page.count('class="plotly-graph-div"')
    images = re.findall(r'<img[^>]*class="redtick-chart-image"[^>]*src="data:image/png;base64,', page)
    assert len(images) == charts, "a chart without its image fallback"
    return charts


def open_offline(page: pathlib.Path, screenshot: pathlib.Path) -> tuple[dict[str, int], list[str]]:
    """Chromium (network off) opens ``page``: the charts found and drawn, and every error or outside request."""
    if sync_playwright is None:
        if IN_CI:
            pytest.fail("CI=true but playwright is not installed (pip install 'redtick[browser]')")
        pytest.skip("playwright is not installed")
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
            context.route(re.compile(r"^(?!file:|data:|blob:|about:)"),
                          lambda route: (problems.append(f"request to {route.request.url}"), route.abort()))
            tab = context.new_page()
            tab.on("pageerror", lambda error: problems.append(f"script error: {error}"))
            tab.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
            tab.goto(page.as_uri(), wait_until="load", timeout=120_000)
            tab.wait_for_function(f"({CHARTS_DRAWN})().drawn === ({CHARTS_DRAWN})().graphs", timeout=60_000)
            counts = tab.evaluate(CHARTS_DRAWN)
            tab.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return counts, problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_exported_notebook_draws_every_chart_offline(path, store_env, tmp_path):
    chromium()
    work = tmp_path / "work"
    work.mkdir()
    nbconvert(["--execute", "--to", "notebook", NO_WIDGET_STATE, f"--output-dir={work}", str(path)], store_env, ROOT)
    executed = work / path.name
    figures = check_executed(json.loads(executed.read_text(encoding="utf-8")))
    nbconvert(["--to", "html", *OFFLINE_HTML, f"--output-dir={work}", str(executed)], store_env, ROOT)
    page = (work / path.name).with_suffix(".html")
    charts = check_page(page.read_text(encoding="utf-8"))
    assert charts >= figures > 0  # panels' static copies add charts of their own
    counts, problems = open_offline(page, tmp_path / f"{path.stem}.png")
    assert problems == []
    assert counts == {"graphs": charts, "drawn": charts}

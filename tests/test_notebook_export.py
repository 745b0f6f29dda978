"""Every notebook, executed and exported to HTML with plain nbconvert, draws all its charts and panels offline.

Each notebook runs on a throwaway local store (``REDTICK_HOME`` in a temporary folder, no
``REDIS_URL``) in its light CI version, the way ``jupyter nbconvert --execute --to html`` runs it
with nbconvert's defaults (widget state saved), in two steps so the executed notebook can be
checked too:

1. ``jupyter nbconvert --execute --to notebook``: every plotly figure's output carries plotly's JSON
   (JupyterLab), HTML holding a PNG (exported pages) and, the run being headless, the PNG as an
   ``image/png`` entry (GitHub's and nbviewer's static views);
2. ``jupyter nbconvert --to html``: plotly.js is in the page exactly once, no script of ours comes
   from the network (the page template's own require.js and MathJax addresses are the only ones),
   every panel is followed by its static copy (tables and charts), and each chart has its image.

Then headless Chromium, with the network off, opens the page: no script error, no request but the
template's three (require.js, MathJax, the widgets' renderer from unpkg, all failing offline),
every chart drew (an ``svg.main-svg`` holding a ``g.trace``) and every panel's copy is on screen,
since the live widget cannot be drawn. Outside CI the test skips without Chromium or Playwright;
under ``CI=true`` it fails instead.
"""

from __future__ import annotations

import base64
import itertools
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
# nbconvert's page template asks for these; the notebooks need none of them (plotly.js is in the page, and each
# panel's copy stands where its widget cannot be drawn), so offline they fail and nothing else may be asked for.
TEMPLATE_FETCHES = re.compile(r"^https://(cdnjs\.cloudflare\.com/ajax/libs/(require\.js|mathjax)/"
                              r"|unpkg\.com/@jupyter-widgets/html-manager@)")

CHARTS_DRAWN = """() => {
  const graphs = Array.from(document.querySelectorAll('.plotly-graph-div'));
  const drawn = graphs.filter(g => g.querySelector('svg.main-svg') && g.querySelectorAll('g.trace').length > 0);
  return {graphs: graphs.length, drawn: drawn.length};
}"""
COPIES_SHOWN = """() => Array.from(document.querySelectorAll('.redtick-panel')).map(copy => copy.offsetHeight > 0)"""


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
    """Every plotly output carries HTML holding a PNG beside plotly's JSON, and the PNG itself; the number of figures."""
    figures = [o["data"] for cell in notebook["cells"] for o in cell.get("outputs", [])
               if PLOTLY_MIME in o.get("data", {})]
    for data in figures:
        assert sorted(data) == [PLOTLY_MIME, "image/png", "text/html", "text/plain"]
        assert base64.b64decode(data["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
        # only the figure in plotly's part, which JupyterLab's renderer draws
        assert set(data[PLOTLY_MIME]) == {"data", "layout"} and "base64," not in json.dumps(data[PLOTLY_MIME])
        page = "".join(data["text/html"])  # a notebook file keeps text as a list of lines
        assert 'class="redtick-chart-image"' in page and "data:image/png;base64," in page
        assert "<script src" not in page
    return len(figures)


def panels_of(notebook: dict) -> int:
    """How many panels the notebook displayed: outputs holding a live widget's view followed by its static copy."""
    panels = 0
    for cell in notebook["cells"]:
        outputs = cell.get("outputs", [])
        for live, copy in itertools.pairwise(outputs):
            if "application/vnd.jupyter.widget-view+json" in live.get("data", {}) and \
                    "redtick-panel" in "".join(copy.get("data", {}).get("text/html", "")):
                assert "VBox(children" not in "".join(live["data"]["text/plain"])
                panels += 1
    return panels


def check_page(page: str, panels: int) -> int:
    """The exported page's static promises; the number of charts in it."""
    sources = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']([^\"']*)", page)
    assert [s for s in sources if not s.startswith("data:") and not TEMPLATE_FETCHES.match(s)] == []
    assert page.count("* plotly.js v") == 1, "plotly.js must be in the page exactly once"
    for widget_text in ("VBox(children", "HBox(children", "IntProgress("):
        assert widget_text not in page
    assert len(re.findall(r"<div class=[\"']redtick-panel ", page)) == panels
    charts = page.count('class="plotly-graph-div"')
    images = re.findall(r'<img[^>]*class="redtick-chart-image"[^>]*src="data:image/png;base64,', page)
    assert len(images) == charts, "a chart without its image fallback"
    return charts


def open_offline(page: pathlib.Path, screenshot: pathlib.Path) -> tuple[dict[str, int], list[bool], list[str]]:
    """Chromium (network off) opens ``page``: the charts found and drawn, whether each panel copy shows, and every
    error or request other than the template's own."""
    if sync_playwright is None:
        if IN_CI:
            pytest.fail("CI=true but playwright is not installed (pip install 'redtick[browser]')")
        pytest.skip("playwright is not installed")
    problems: list[str] = []

    def outside(route) -> None:
        if not TEMPLATE_FETCHES.match(route.request.url):
            problems.append(f"request to {route.request.url}")
        route.abort()

    def console(message) -> None:
        if message.type == "error" and not TEMPLATE_FETCHES.match(message.location.get("url", "")):
            problems.append(f"console: {message.text}")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
            context.route(re.compile(r"^(?!file:|data:|blob:|about:)"), outside)
            tab = context.new_page()
            tab.on("pageerror", lambda error: problems.append(f"script error: {error}"))
            tab.on("console", console)
            tab.goto(page.as_uri(), wait_until="load", timeout=120_000)
            tab.wait_for_function(f"({CHARTS_DRAWN})().drawn === ({CHARTS_DRAWN})().graphs", timeout=60_000)
            counts = tab.evaluate(CHARTS_DRAWN)
            copies = tab.evaluate(COPIES_SHOWN)
            tab.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return counts, copies, problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_exported_notebook_draws_every_chart_and_panel_offline(path, store_env, tmp_path):
    chromium()
    work = tmp_path / "work"
    work.mkdir()
    nbconvert(["--execute", "--to", "notebook", f"--output-dir={work}", str(path)], store_env, ROOT)
    executed = json.loads((work / path.name).read_text(encoding="utf-8"))
    figures = check_executed(executed)
    panels = panels_of(executed)
    assert "application/vnd.jupyter.widget-state+json" in executed["metadata"].get("widgets", {}) or panels == 0
    nbconvert(["--to", "html", f"--output-dir={work}", str(work / path.name)], store_env, ROOT)
    page = (work / path.name).with_suffix(".html")
    charts = check_page(page.read_text(encoding="utf-8"), panels)
    assert charts >= figures > 0  # panels' static copies add charts of their own
    counts, copies, problems = open_offline(page, tmp_path / f"{path.stem}.png")
    assert problems == []
    assert counts == {"graphs": charts, "drawn": charts}
    assert copies == [True] * panels  # the widget cannot be drawn offline: its copy is on screen

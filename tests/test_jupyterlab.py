"""Every notebook in notebooks/ as a user meets it: run in a real JupyterLab in headless Chromium, and clicked through.

One JupyterLab server (a free port, a random token, a throwaway ``REDTICK_HOME``, no ``REDIS_URL``,
``CI=true`` for the notebooks' lighter run) serves a copy of notebooks/. Each notebook opens in its
own page, runs all its cells through JupyterLab's ``notebook:run-all-cells``, and must end with
every cell run and no kernel error, traceback, JavaScript console error, empty chart or widget that
failed to render; then every button its panels show is clicked, and each click must reach the
kernel, change what the panel shows and raise nothing. Screenshots of each notebook, whole, before
and after the clicks, and of each panel after each click, go to reports/jupyterlab/ (kept by CI).

Outside CI the tests skip when Playwright or Debian's ``chromium`` is missing; under ``CI=true``
that fails (``.ci/run`` installs ``chromium``, the ``browser`` extra Playwright).
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import time

import nbformat
import pytest

from tests.conftest import IN_CI
from tests.jupyterlab_driver import LabPage, LabServer, chromium_path

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
SHOTS = ROOT / "reports" / "jupyterlab"
RUN_TIMEOUT = 300.0  # seconds for one notebook's cells, on a loaded CI machine


def browser_path() -> str:
    found = chromium_path()
    missing = ("chromium is not installed" if found is None else
               None if importlib.util.find_spec("playwright") else "playwright is not installed (the browser extra)")
    if missing:
        if IN_CI:
            pytest.fail(f"CI=true but {missing} (.ci/run installs Debian's chromium; pip install -e '.[all]')")
        pytest.skip(missing)
    assert found is not None
    return found


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    browser_path()
    server = LabServer(ROOT / "notebooks", tmp_path_factory.mktemp("jupyterlab"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    executable = browser_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


@pytest.fixture()
def open_page(browser, lab_server):
    """A function opening a notebook of the server in a fresh browser context; its kernel is shut down after."""
    contexts = []

    def open_notebook(name: str, shots: pathlib.Path) -> LabPage:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        lab = LabPage(context.new_page(), lab_server, name, shots)
        lab.open()
        return lab

    yield open_notebook
    for context in contexts:
        context.close()
    lab_server.shutdown_kernels()


@pytest.fixture()
def shots(request):
    """reports/jupyterlab/ without the pictures an earlier run took of the notebook under test."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    stem = pathlib.Path(request.node.callspec.params["name"]).stem
    for pattern in (f"{stem}.png", f"{stem}-[0-9]*.png", f"{stem}-after-clicks*.png", f"{stem}-click-*.png"):
        for old in SHOTS.glob(pattern):
            old.unlink()
    return SHOTS


def test_there_are_notebooks_to_open():
    assert NOTEBOOKS, "notebooks/*.ipynb found nothing"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_in_jupyterlab(name, open_page, shots):
    started = time.monotonic()
    lab = open_page(name, shots)
    lab.run_all(RUN_TIMEOUT)
    lab.settle()
    lab.draw_static_charts()
    lab.settle()
    lab.screenshot(lab.stem)
    assert lab.problems() == [], f"{name} after running all cells; screenshots in {shots}"

    after_clicks = lab.click_buttons()
    lab.screenshot(f"{lab.stem}-after-clicks")
    assert after_clicks + lab.problems() == [], f"{name} after clicking {[c.label for c in lab.clicks]}"

    # Saved from JupyterLab, as a user shares it: every chart carries plotly's own PNG, which static viewers
    # (GitHub, nbviewer) show where they cannot run plotly.js.
    saved = [o["data"] for cell in lab.save()["cells"] for o in cell.get("outputs", []) if "data" in o]
    figures = [data for data in saved if "application/vnd.plotly.v1+json" in data]
    assert figures and all(figure.get("image/png") for figure in figures), f"{name}: a saved chart without its PNG"
    # Each panel's static copy (hidden here, beside the live widget) is saved as the clicks left it.
    copies = ["".join(data["text/html"]) for data in saved if "redtick-panel" in "".join(data.get("text/html", ""))]
    assert len(copies) == lab.screen()["copies"] == (ROOT / "notebooks" / name).read_text().count("Panel(")
    if name == "memory_report.ipynb":
        assert re.search(r"read #([2-9]|\d\d+) at", copies[-1]), "the Refresh clicks did not rewrite the saved copy"
    print(f"{name}: ran, checked and clicked ({len(lab.clicks)} buttons, disabled: {lab.disabled}) "
          f"in {time.monotonic() - started:.1f}s")


BROKEN_CELLS = [
    # a widget whose click raises: only the kernel's messages say so, and the click changes nothing
    "import ipywidgets as w\nbutton = w.Button(description='Break')\n"
    "button.on_click(lambda _: 1 / 0)\nbutton",
    # a chart with axes and no trace
    "import plotly.graph_objects as go\ngo.Figure(layout=dict(title='nothing drawn'))",
    # a widget view whose model does not exist
    "from IPython.display import display\ndisplay({'application/vnd.jupyter.widget-view+json': "
    "{'model_id': 'no-such-model', 'version_major': 2, 'version_minor': 0}}, raw=True)",
    # a script error in the page
    "from IPython.display import HTML\nHTML('<script>console.error(\"broken on purpose\")</script>')",
    "raise RuntimeError('a cell that fails')",
    "'never run: the cell above failed'",
]


def test_the_checks_catch_a_broken_notebook(open_page, lab_server, tmp_path):
    """The checks above can fail: a notebook with one of each fault is caught on each."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code) for code in BROKEN_CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, lab_server.root / "broken.ipynb")  # the server's copy, not notebooks/
    lab = open_page("broken.ipynb", tmp_path)
    lab.run_all(RUN_TIMEOUT)
    assert not lab.settle(timeout=5)  # the empty chart never draws
    found = lab.problems()
    expected = ["cell 5 was not run", "error output in cell 4", "kernel error: RuntimeError: a cell that fails",
                "traceback on screen in cell 4",
                "widget failed to render in cell 2", "empty chart in cell 1", "JavaScript console: broken on purpose"]
    for start in expected:
        assert any(problem.startswith(start) for problem in found), (start, found)
    lab.settle_timeout = lab.change_timeout = 2.0  # what never comes would take the whole default, each time
    clicked = lab.click_buttons()
    assert len(clicked) == 2 and clicked[0] == "clicking 'Break' in cell 0 changed nothing on screen", clicked
    assert clicked[1].startswith("clicking 'Break' in cell 0: kernel error: ZeroDivisionError: division by zero")

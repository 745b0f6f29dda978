"""A real JupyterLab in headless Chromium, for tests/test_jupyterlab.py: what a user sees when they run a notebook.

:class:`LabServer` starts ``jupyter lab`` on a free loopback port with a random token over a copy
of the notebooks, with every Jupyter and redtick folder (``REDTICK_HOME`` included) in a throwaway
directory and no ``REDIS_URL``, so the notebooks run on a local store of their own. :class:`LabPage`
drives one notebook in a Playwright page: it runs every cell through JupyterLab's own command,
watches the kernel's messages and the browser's console, checks what is on screen (tracebacks,
empty charts, widgets that did not render), clicks every button the outputs show, and saves
screenshots. Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from tests.servers import free_port

__all__ = ["CONSOLE_ALLOWED", "Click", "LabPage", "LabServer", "chromium_path"]

# Console errors that say nothing about the notebooks, as regular expressions, each with why it is
# harmless. JupyterLab 4.6 run as LabServer starts it logs none, so none is allowed.
CONSOLE_ALLOWED: tuple[str, ...] = ()

# A Chromium screenshot is one texture: taller notebooks are saved in parts of at most this height.
MAX_SHOT_HEIGHT = 12_000

# The page's view of the notebook, installed once the kernel is up (window.__redtick): how often the
# kernel went busy (every request it serves, a widget's click included, is one busy..idle pair), its
# last status, and every error it published, whichever request it answered (a button's callback
# raising shows nowhere in the notebook, only on the kernel's IOPub channel).
WATCH_KERNEL = """() => {
  const app = window.jupyterapp, panel = app.shell.currentWidget, ctx = panel.sessionContext;
  const rt = window.__redtick = {busy: 0, status: ctx.session.kernel.status, errors: [], runAll: null};
  const watch = kernel => {
    kernel.statusChanged.connect((_, status) => { rt.status = status; if (status === 'busy') rt.busy += 1; });
    kernel.iopubMessage.connect((_, msg) => {
      const c = msg.content;
      if (msg.header.msg_type === 'error') {
        rt.errors.push(c.ename + ': ' + c.evalue + '\\n' + (c.traceback || []).join('\\n').replace(/\\x1b\\[[0-9;]*m/g, ''));
      } else if (msg.header.msg_type === 'stream' && c.name === 'stderr'
                 && /Traceback \\(most recent call last\\)/.test(c.text)) {
        rt.errors.push(c.text);
      }
    });
  };
  watch(ctx.session.kernel);
  ctx.kernelChanged.connect((_, change) => { if (change.newValue) watch(change.newValue); });
}"""

NOTEBOOK_OPEN = """() => {
  const app = window.jupyterapp, panel = app && app.shell.currentWidget;
  const ctx = panel && panel.sessionContext, kernel = ctx && ctx.session && ctx.session.kernel;
  return !!(panel && panel.content && ctx.isReady && kernel && kernel.connectionStatus === 'connected'
            && kernel.status === 'idle' && panel.content.widgets.length > 0);
}"""

RUN_ALL = """() => {
  const rt = window.__redtick;
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    ok => { rt.runAll = {ok: ok}; }, error => { rt.runAll = {ok: false, error: String(error)}; });
}"""

RUN_DONE = "() => window.__redtick.runAll !== null && window.__redtick.status === 'idle'"

# Each cell as the notebook's model holds it: its execution count and the types of its outputs.
CELLS = """() => window.jupyterapp.shell.currentWidget.content.widgets.map((cell, index) => {
  const source = cell.model.sharedModel.getSource();
  // JupyterLab does not send an empty code cell to the kernel: it never gets a count
  const code = cell.model.type === 'code' && source.trim() !== '', outputs = code ? cell.model.outputs : null;
  return {index: index, code: code, count: code ? cell.model.executionCount : null, source: source.slice(0, 80),
          outputs: code ? Array.from({length: outputs.length}, (_, i) => outputs.get(i).type) : []};
})"""

# What is on screen now. A chart is drawn when plotly made its SVG with at least one trace holding a
# mark (a non-empty path, or a table's cells). JupyterLab's plotly renderer shows a figure whose output
# carries a PNG (image/png) as that image until the pointer enters it, and only then draws it: such a
# chart is static, and a problem, since the charts must be interactive without being pointed at.
# "Loading widget..." is a widget still loading, or one whose model never came.
SCREEN = """() => {
  const notebook = window.jupyterapp.shell.currentWidget.node;
  const cellOf = el => Array.prototype.indexOf.call(notebook.querySelectorAll('.jp-Cell'), el.closest('.jp-Cell'));
  // A panel's static copy is hidden while its live widget is on the page, and so are the charts inside it.
  const copies = Array.from(notebook.querySelectorAll('.redtick-panel'));
  const plots = new Set(Array.from(notebook.querySelectorAll('.jp-RenderedPlotly, .js-plotly-plot, .plotly-graph-div'))
    .filter(g => !copies.some(copy => copy.contains(g))));
  const charts = Array.from(plots).map(g => {
    const marks = Array.from(g.querySelectorAll('svg.main-svg g.trace path'))
      .filter(p => { const d = (p.getAttribute('d') || '').replace(/\\s/g, ''); return d !== '' && d !== 'M0,0Z'; });
    const image = g.querySelector(':scope > img.plot-img'), box = g.getBoundingClientRect();
    return {cell: cellOf(g), static: !!image && !!image.getAttribute('src') && !g.querySelector('.plot-container'),
            imageDrawn: !!image && image.complete && image.naturalWidth > 0,
            traces: g.querySelectorAll('svg.main-svg g.trace').length,
            marks: marks.length + g.querySelectorAll('svg.main-svg g.table .cell-rect').length,
            width: Math.round(box.width), height: Math.round(box.height)};
  });
  const texts = sel => Array.from(notebook.querySelectorAll(sel)).map(o => ({cell: cellOf(o), text: o.innerText}));
  return {
    charts: charts,
    tracebacks: texts('.jp-OutputArea-output').filter(o => /Traceback \\(most recent call last\\)/.test(o.text)),
    widgetErrors: texts('.jp-OutputArea-output').filter(o => /Error displaying widget/.test(o.text)),
    loading: texts('.jp-OutputArea-output').filter(o => /Loading widget\\.\\.\\./.test(o.text)).length,
    copies: copies.length,
    copiesShown: copies.filter(copy => copy.offsetHeight > 0).map(cellOf),
  };
}"""

SETTLED = ("() => { const s = (" + SCREEN + ")(); "
           "return s.loading === 0 && s.charts.every(c => c.static || c.marks > 0); }")

# A kernel's logged error (an exception in a widget's message handler is only logged) or the server's.
LOG_ERROR = re.compile(r"^\[E |\| ERROR \||^Traceback \(most recent call last\)")

# The notebook's scrolling area: the whole-notebook screenshots fit the window to what it holds.
SCROLLER = ".jp-NotebookPanel .jp-WindowedPanel-outer"

BUTTONS = ".jp-Cell-outputArea :is(.jupyter-widgets.jupyter-button, .widget-button)"


def chromium_path() -> str | None:
    """Debian's Chromium (Playwright's own browser download is not used)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class LabServer:
    """``jupyter lab`` on a free loopback port with a random token, serving a copy of ``notebooks``.

    Everything it writes goes under ``work``: the copy of the notebooks (the server's root, so the
    repository's files are never saved over), Jupyter's config, data, runtime and settings folders,
    and ``REDTICK_HOME``. The kernels get ``CI=true``, the notebooks' switch to their lighter run.
    """

    def __init__(self, notebooks: pathlib.Path, work: pathlib.Path):
        self.work = work
        self.root = work / "notebooks"
        shutil.copytree(notebooks, self.root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        self.port = free_port()
        self.token = secrets.token_urlsafe(24)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "jupyterlab.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
        self.env.update(
            CI="true", REDTICK_HOME=str(work / "redtick-home"),
            JUPYTER_CONFIG_DIR=str(work / "jupyter-config"), JUPYTER_DATA_DIR=str(work / "jupyter-data"),
            JUPYTER_RUNTIME_DIR=str(work / "jupyter-runtime"), IPYTHONDIR=str(work / "ipython"),
            JUPYTERLAB_SETTINGS_DIR=str(work / "lab-settings"), JUPYTERLAB_WORKSPACES_DIR=str(work / "lab-workspaces"),
        )
        # The news and update checks would fetch from the internet and pop a toast over the notebook.
        self._write_setting("@jupyterlab/apputils-extension", "notification", {"fetchNews": "false",
                                                                                "checkForUpdates": False})
        # No blank screen's height below the last cell in the whole-notebook screenshots.
        self._write_setting("@jupyterlab/notebook-extension", "tracker", {"scrollPastEnd": False})

    def _write_setting(self, extension: str, plugin: str, values: dict[str, Any]) -> None:
        folder = self.work / "lab-settings" / extension
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values), encoding="utf-8")

    def notebook_url(self, name: str) -> str:
        # ?reset: a fresh workspace, not whatever an earlier page left open
        return f"{self.base}/lab/tree/{name}?reset&token={self.token}"

    def start(self, timeout: float = 90.0) -> None:
        args = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}", "--ServerApp.terminals_enabled=False",
                "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run cells and read the model
                "--LabApp.news_url=", "--LabApp.extension_manager=readonly"]  # nothing fetched from the internet
        if os.geteuid() == 0:  # CI containers run as root; Jupyter refuses that unless told
            args.append("--allow-root")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(args, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)  # its own group: the kernels stop with it
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.api("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError):
                if self.process.poll() is not None:
                    raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n{self.log()}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"jupyter lab did not answer on {self.base} in {timeout}s:\n{self.log()}") from None
                time.sleep(0.1)  # polling a readiness condition

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(self.base + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-6000:]

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_errors(self, since: int) -> list[str]:
        """Errors the server and its kernels logged after byte ``since`` of the log, with the lines after each."""
        with open(self.log_path, "rb") as log:
            log.seek(since)
            lines = log.read().decode("utf-8", errors="replace").splitlines()
        return ["\n".join(lines[i:i + 20]) for i, line in enumerate(lines) if LOG_ERROR.search(line)]

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the kernels and the server down, then stop the notebooks' local store."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.shutdown_kernels()
                self.api("POST", "/api/shutdown")
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # the group this server was started in
                self.process.wait(timeout)
        subprocess.run([sys.executable, "-c", "import sys, redtick.cli; sys.exit(redtick.cli.main(sys.argv[1:]))",
                        "stop"], env=self.env, capture_output=True, timeout=timeout, check=False)


@dataclasses.dataclass
class Click:
    """A button clicked: its label, the cell it sits in, and the screenshot taken after."""

    cell: int
    label: str
    screenshot: pathlib.Path | None = None


class LabPage:
    """One notebook open in JupyterLab in a Playwright page (``page``), served by ``server``."""

    def __init__(self, page: Any, server: LabServer, name: str, shots: pathlib.Path):
        self.page = page
        self.server = server
        self.name = name
        self.stem = pathlib.Path(name).stem
        self.shots = shots
        self.console_errors: list[str] = []
        self.log_start = server.log_size()
        self.clicks: list[Click] = []
        self.disabled: list[str] = []  # buttons not clicked: disabled when their turn came
        self.chrome = 0  # measured by open()
        self.settle_timeout = 30.0  # seconds for outputs to finish drawing
        self.change_timeout = 10.0  # seconds for a click the kernel answered to show on screen
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))

    def _on_console(self, message: Any) -> None:
        if message.type != "error":
            return
        if not any(re.search(pattern, message.text) for pattern in CONSOLE_ALLOWED):
            self.console_errors.append(message.text)

    def wait(self, condition: str, timeout: float, what: str, arg: Any = None) -> None:
        """Wait until the page's ``condition`` holds, or fail naming ``what`` did not happen."""
        if not self.holds_within(condition, timeout, arg):
            raise AssertionError(f"{self.name}: {what} within {timeout:.0f}s; on screen: "
                                 f"{json.dumps(self.screen(), default=str)[:3000]}")

    def holds_within(self, condition: str, timeout: float, arg: Any = None) -> bool:
        """Whether the page's ``condition`` came to hold within ``timeout`` seconds."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(condition, arg=arg, timeout=timeout * 1000, polling=100)
        except PlaywrightTimeout:
            return False
        return True

    def open(self, timeout: float = 90.0) -> None:
        self.page.goto(self.server.notebook_url(self.name))
        self.wait(NOTEBOOK_OPEN, timeout, "the notebook did not open with an idle kernel")
        # the notebook, not the file browser, in the screenshots
        self.page.evaluate("() => { window.jupyterapp.shell.collapseLeft(); window.jupyterapp.shell.collapseRight(); }")
        self.page.evaluate(WATCH_KERNEL)
        # menus, toolbar and status bar: the window's height less the notebook's scrolling area
        self.chrome = self.page.viewport_size["height"] - int(self.page.evaluate(f"() => document.querySelector("
                                                                                 f"{SCROLLER!r}).clientHeight"))

    def run_all(self, timeout: float) -> None:
        self.page.evaluate(RUN_ALL)
        self.wait(RUN_DONE, timeout, "running all cells did not finish")

    def save(self, timeout: float = 60.0) -> dict[str, Any]:
        """Save the notebook as a user would (``docmanager:save``) and return the file the server wrote."""
        path = self.server.root / self.name
        before = path.stat().st_mtime_ns
        self.page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        deadline = time.monotonic() + timeout
        while path.stat().st_mtime_ns == before:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: saving did not write the file within {timeout:.0f}s")
            self.page.wait_for_timeout(100)  # the server writes the file; the page has nothing to wait on
        saved: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return saved

    def cells(self) -> list[dict[str, Any]]:
        return list(self.page.evaluate(CELLS))

    def screen(self) -> dict[str, Any]:
        return dict(self.page.evaluate(SCREEN))

    def kernel_errors(self) -> list[str]:
        return list(self.page.evaluate("() => window.__redtick.errors"))

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until no widget is loading and every chart drew; whether that happened (:meth:`problems` says
        what did not). ``timeout`` defaults to ``settle_timeout``."""
        return self.holds_within(SETTLED, self.settle_timeout if timeout is None else timeout)

    def problems(self) -> list[str]:
        """Everything wrong on screen, in the kernel's messages and in the browser's console so far."""
        screen = self.screen()
        cells = self.cells()
        found = [f"cell {c['index']} was not run: {c['source']!r}" for c in cells if c["code"] and c["count"] is None]
        found += [f"error output in cell {c['index']}: {c['source']!r}" for c in cells if "error" in c["outputs"]]
        found += [f"kernel error: {text[:2000]}" for text in self.kernel_errors()]
        found += [f"traceback on screen in cell {o['cell']}: {o['text'][:2000]}" for o in screen["tracebacks"]]
        found += [f"widget failed to render in cell {o['cell']}: {o['text'][:500]}" for o in screen["widgetErrors"]]
        found += [f"chart shown as its static image in cell {c['cell']}, drawn only once the pointer enters it: {c}"
                  for c in screen["charts"] if c["static"]]
        found += [f"empty chart in cell {c['cell']}: {c}" for c in screen["charts"] if not c["static"] and c["marks"] == 0]
        found += [f"{screen['loading']} widget(s) still loading"] if screen["loading"] else []
        found += [f"a panel's static copy shown beside its live widget in cell {cell}" for cell in screen["copiesShown"]]
        found += [f"JavaScript console: {text[:2000]}" for text in self.console_errors]
        found += [f"logged by the server or kernel: {text[:2000]}" for text in self.server.log_errors(self.log_start)]
        return found

    def click_buttons(self, timeout: float = 120.0) -> list[str]:
        """Click every enabled button the outputs show, in order; what went wrong with each click."""
        found: list[str] = []
        buttons = self.page.locator(BUTTONS)
        for index in range(buttons.count()):
            button = buttons.nth(index)
            label = button.evaluate("b => b.textContent.trim() || b.title") or f"button {index}"
            if button.is_disabled():
                self.disabled.append(label)
                continue
            cell = self.page.locator(".jp-Cell").filter(has=button)
            cell_index = int(button.evaluate("b => Array.prototype.indexOf.call("
                                             "document.querySelectorAll('.jp-NotebookPanel .jp-Cell'), b.closest('.jp-Cell'))"))
            self.settle()
            before = self.kernel_errors()
            busy = int(self.page.evaluate("() => window.__redtick.busy"))
            shown = cell.evaluate("c => c.querySelector('.jp-Cell-outputArea').innerHTML")
            button.scroll_into_view_if_needed()
            button.click()
            self.wait("busy => window.__redtick.busy > busy && window.__redtick.status === 'idle'", timeout,
                      f"the kernel did not answer the click on {label!r} in cell {cell_index}", arg=busy)
            if not self.holds_within("([cell, shown]) => cell.querySelector('.jp-Cell-outputArea').innerHTML !== shown",
                                     self.change_timeout, [cell.element_handle(), shown]):
                found.append(f"clicking {label!r} in cell {cell_index} changed nothing on screen")
            self.settle()
            found += [f"clicking {label!r} in cell {cell_index}: kernel error: {e[:2000]}"
                      for e in self.kernel_errors()[len(before):]]
            click = Click(cell_index, label)
            click.screenshot = self.screenshot_cell(cell, f"{self.stem}-click-{len(self.clicks) + 1:02d}-{slug(label)}")
            self.clicks.append(click)
        return found

    def draw_static_charts(self, timeout: float = 30.0) -> int:
        """How many charts drew by themselves, without the pointer entering them; fails on one left as its image."""
        if not self.holds_within("() => document.querySelectorAll('.jp-RenderedPlotly .plot-container').length > 0 || "
                                 "document.querySelectorAll('.jp-RenderedPlotly').length === 0", timeout):
            raise AssertionError(f"{self.name}: no chart drew within {timeout:.0f}s")
        charts = self.screen()["charts"]
        static = [c for c in charts if c["static"]]
        assert not static, f"{self.name}: charts shown as their static image until pointed at: {static}"
        return len(charts)

    def fit(self, height: int) -> None:
        """The window ``height`` pixels tall, once JupyterLab laid the notebook out at that size and it drew."""
        self.page.set_viewport_size({"width": self.page.viewport_size["width"], "height": height})
        # Lumino lays out on a later frame than the resize: measuring before then reads the old size.
        self.wait("([scroller, want]) => Math.abs(document.querySelector(scroller).clientHeight - want) <= 2", 30,
                  f"the notebook was not laid out at a window {height}px tall", arg=[SCROLLER, height - self.chrome])
        self.settle()

    @contextlib.contextmanager
    def tall(self, height: int) -> Iterator[None]:
        """The window at least ``height`` pixels tall for a while."""
        before = self.page.viewport_size["height"]
        self.fit(max(before, height))
        try:
            yield
        finally:
            self.fit(before)

    def screenshot_cell(self, cell: Any, stem: str) -> pathlib.Path:
        box = cell.bounding_box()
        with self.tall(min(int(box["height"]) + 200, MAX_SHOT_HEIGHT)):
            cell.scroll_into_view_if_needed()
            path = self.shots / f"{stem}.png"
            cell.screenshot(path=path)
        return path

    def screenshot(self, stem: str) -> list[pathlib.Path]:
        """The whole notebook, top to bottom, in one PNG (or a few, for a very long notebook)."""
        measure = f"() => {{ const s = document.querySelector({SCROLLER!r}); return [s.clientHeight, s.scrollHeight]; }}"
        outer, content = self.page.evaluate(measure)
        before = self.page.viewport_size["height"]
        try:
            # Cells never on screen count at an estimated height until drawn: fit the window to the
            # notebook's height until that height stops changing (a few rounds at most).
            for _ in range(5):
                self.fit(max(before, min(content, MAX_SHOT_HEIGHT - self.chrome) + self.chrome))
                outer, measured = self.page.evaluate(measure)
                if measured == content:
                    break
                content = measured
            paths = []
            parts = range(0, content, outer)
            for part, top in enumerate(parts):
                self.page.evaluate(f"top => {{ document.querySelector({SCROLLER!r}).scrollTop = top; }}", top)
                self.settle()
                path = self.shots / (f"{stem}.png" if len(parts) == 1 else f"{stem}-{part + 1}.png")
                self.page.screenshot(path=path)
                paths.append(path)
        finally:
            self.fit(before)
        return paths

def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40] or "button"


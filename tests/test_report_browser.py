"""The HTML report renders in headless Chromium: every chart drawn, no script error, nothing fetched.

Outside CI the test skips when Chromium is missing; under ``CI=true`` a missing Chromium fails
(``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pandas as pd

import redtick
from redtick import reports
from redtick.caches.alerts import set_alerts
from redtick.ingest import replay_ticks
from tests.conftest import chromium

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Injected first in <head>: any uncaught error or failed resource load leaves a marker in the DOM.
ERROR_CATCHER = """<script>
window.addEventListener('error', function (e) {
  var p = document.createElement('pre'); p.className = 'script-error';
  p.textContent = e.message || ('failed to load ' + (e.target && (e.target.src || e.target.href)));
  (document.body || document.documentElement).appendChild(p);
}, true);
</script>"""
# Injected last in <body>: after load, count the graphs and those plotly drew (an SVG with traces).
RENDER_CHECK = """<script>
window.addEventListener('load', function () {
  var graphs = document.querySelectorAll('.plotly-graph-div');
  var drawn = Array.prototype.filter.call(graphs, function (g) {
    return g.querySelector('svg.main-svg') && g.querySelectorAll('g.trace').length > 0;
  });
  var d = document.createElement('div'); d.id = 'render-check';
  d.setAttribute('data-graphs', graphs.length); d.setAttribute('data-drawn', drawn.length);
  document.body.appendChild(d);
});
</script>"""


def render(page: pathlib.Path, tmp_path: pathlib.Path) -> tuple[str, str]:
    """The DOM after scripts ran, and Chromium's log, for ``page`` with the checks injected."""
    text = page.read_text(encoding="utf-8")
    assert text.count("<head>") == 1 and text.count("</body>") == 1
    checked = tmp_path / "checked.html"
    checked.write_text(text.replace("<head>", "<head>" + ERROR_CATCHER).replace("</body>", RENDER_CHECK + "</body>"),
                       encoding="utf-8")
    profile = tmp_path / "chromium-profile"
    done = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000",
         "--dump-dom", checked.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, done.stderr


def assert_rendered(dom: str, log: str, graphs: int) -> None:
    errors = re.findall(r'<pre class="script-error">(.*?)</pre>', dom, flags=re.S)
    assert errors == []
    assert "Uncaught" not in log, [line for line in log.splitlines() if "Uncaught" in line]
    check = re.search(r'<div id="render-check" data-graphs="(\d+)" data-drawn="(\d+)"', dom)
    assert check is not None, "the page's load event never ran"
    assert (int(check.group(1)), int(check.group(2))) == (graphs, graphs)


def test_demo_report_renders(tmp_path):
    chromium()
    out = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_HOST")}  # the local store (tests' home)
    done = subprocess.run(
        [sys.executable, "-c", "import sys, redtick.cli; sys.exit(redtick.cli.main(sys.argv[1:]))",
         "demo", "--data", str(ROOT / "data"), "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    page = out / "redtick_report.html"
    assert f"HTML report: {page.resolve()}" in done.stdout
    assert re.search(r"alerts set / fired during replay\s+4 / 3", done.stdout)
    assert re.search(r"ticks written \(ingest \+ live replay\)\s+480,000 \+ 20,000 = 500,000", done.stdout)
    dom, log = render(page, tmp_path)
    assert_rendered(dom, log, graphs=4)
    assert "Memory (measured)" in dom  # the demo's throwaway local store is a real Redis
    assert "a throwaway local store" in done.stdout


def test_report_renders_on_each_backend(conn, tmp_path):
    chromium()
    ticks = pd.read_parquet(ROOT / "data" / "es_ticks_20130901.parquet").iloc[:30_000]
    redtick.write_ticks(ticks.iloc[:20_000], "ES", conn=conn)
    set_alerts([{"user_id": "quant", "symbol": "ES", "target_price": float(ticks["price"].iloc[20_000:].max()),
                 "condition": "above"}], conn=conn)
    replay_ticks(ticks.iloc[20_000:], "ES", batch_size=2_000, conn=conn)
    page = reports.write_html_report(tmp_path / "report.html", "ES", user_ids="quant", interval="15m", conn=conn)
    dom, log = render(page, tmp_path)
    assert_rendered(dom, log, graphs=4)
    assert f"Memory ({'estimated' if conn.in_memory else 'measured'})" in dom

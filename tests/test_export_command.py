"""``redtick export NOTEBOOK``: a notebook run and written as one HTML page that needs no network."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _redtick(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "redtick.cli", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture
def env(tmp_path):
    """A throwaway local store and the notebooks' light (CI) version; no REDIS_URL."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB")}
    env.update(REDTICK_HOME=str(tmp_path / "home"), CI="true")
    yield env
    _redtick(["stop"], env, tmp_path)


def test_an_exported_notebook_fetches_nothing_and_shows_its_panel_and_charts(env, tmp_path):
    shutil.copy(ROOT / "notebooks" / "price_change.ipynb", tmp_path / "price_change.ipynb")
    done = _redtick(["export", "price_change.ipynb", "-o", "page.html"], env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "page.html" in done.stdout and "offline" in done.stdout
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    sources = re.findall(r"""src=["']([^"']+)""", page)
    assert not [s for s in sources if not s.startswith("data:")], sources  # no script or image from the network
    assert "unpkg.com" not in page and "require.min.js" not in page and "MathJax.js" not in page
    # The only remote address left is the template's mermaid loader, which imports only on a page with a diagram.
    assert 'pre.mermaid");' in page and "<pre class=\"mermaid\">" not in page
    assert page.count("plotly.js v") == 1  # plotly.js embedded once, by setup_notebook
    assert "VBox(children" not in page and "application/vnd.jupyter.widget-state+json" not in page
    assert page.count("data:image/png;base64") >= 1  # the charts' static fallback


def test_export_errors_are_one_line(env, tmp_path):
    missing = _redtick(["export", "nowhere.ipynb"], env, tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip() == "redtick: FileNotFoundError: no notebook at nowhere.ipynb"
    (tmp_path / "n.ipynb").write_text("{}", encoding="utf-8")
    no_extra = subprocess.run([sys.executable, "-c", "import sys; sys.modules['nbconvert'] = None; import redtick.cli; "
                               "sys.exit(redtick.cli.main(['export', 'n.ipynb']))"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
    assert no_extra.returncode == 2
    assert no_extra.stderr.strip() == "redtick: MissingExtra: redtick export needs nbconvert: pip install 'redtick[jupyter]'"

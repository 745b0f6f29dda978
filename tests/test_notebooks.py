"""The notebooks' shape, and their run top to bottom against a real Redis too (``make test`` runs them on the local store).

Each notebook asserts its own results; nbval fails on any error. The real-Redis run is in CI,
where a real ``redis-server`` is always there, or local with ``REDTICK_NOTEBOOKS_REAL=1``.
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import IN_CI

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_every_issue_notebook_is_there():
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "alerts", "price_change", "memory_report"}


def cells(path: pathlib.Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def shows_something(source: str) -> bool:
    """Whether a code cell's value is shown (a table, a chart, a panel): it ends in an expression, not a check or a click."""
    body = ast.parse(source).body
    if not body or not isinstance(body[-1], ast.Expr):
        return False
    value = body[-1].value
    called = value.func if isinstance(value, ast.Call) else None
    name = called.attr if isinstance(called, ast.Attribute) else called.id if isinstance(called, ast.Name) else ""
    return not (name == "click" or name.startswith("assert"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_are_committed_clean_and_set_up_for_export(path):
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code), "strip the outputs before committing"
    assert 'SMOKE = os.environ.get("CI"' in "".join(code[0]["source"])  # the first cell: CI's lighter run
    # Charts survive export only with plotly.js in the notebook, before any figure.
    setup = [i for i, c in enumerate(code) if "reports.setup_notebook()" in "".join(c["source"])]
    figures = [i for i, c in enumerate(code) if "_figure(" in "".join(c["source"]) or "Panel(" in "".join(c["source"])]
    assert setup and setup[0] < min(figures, default=len(code))


@pytest.mark.parametrize("name", ["quickstart", "alerts", "price_change", "memory_report"])
def test_each_table_and_chart_is_introduced_in_words(name):
    """Every code cell that shows something (a table, a chart, a panel) follows a markdown cell saying what it shows."""
    notebook = cells(ROOT / "notebooks" / f"{name}.ipynb")
    silent = [i for i, c in enumerate(notebook) if c["cell_type"] == "code" and shows_something("".join(c["source"]))
              and notebook[i - 1]["cell_type"] != "markdown"]
    assert silent == [], [notebook[i]["source"][-1] for i in silent]


@pytest.mark.skipif(not (IN_CI or os.environ.get("REDTICK_NOTEBOOKS_REAL")),
                    reason="runs in CI (CI=true) or with REDTICK_NOTEBOOKS_REAL=1: executes every notebook on real Redis")
def test_notebooks_run_on_real_redis(real_redis_url):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_HOST", "REDIS_PORT", "REDIS_DB")}
    env["REDIS_URL"] = real_redis_url
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:randomly", "-q", "-p", "no:cacheprovider",
         *map(str, NOTEBOOKS)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]

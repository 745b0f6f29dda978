"""The notebooks run top to bottom against a real Redis too (``make test`` runs them on the embedded default).

Each notebook asserts its own results; nbval fails on any error. This runs in CI, where a
real ``redis-server`` is always there, or locally with ``REDTICK_NOTEBOOKS_REAL=1``.
"""

from __future__ import annotations

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

"""What stays optional fails with one line naming the extra to install, never a traceback.

A missing module is simulated with ``sys.modules[name] = None`` (the import then raises
``ModuleNotFoundError``, as if it were not installed); what would leave a half-imported package
behind runs in a subprocess of its own.
"""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

import redtick
from redtick import extras
from redtick.errors import MissingExtra, RedtickError

ROOT = pathlib.Path(__file__).resolve().parent.parent
OPTIONAL_DEPENDENCIES = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def run_without(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where ``modules`` cannot be imported."""
    blocked = "".join(f"sys.modules[{m!r}] = None; " for m in modules)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_HOST")}
    return subprocess.run([sys.executable, "-c", f"import sys; {blocked}\n{code}"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


@pytest.mark.parametrize("module", sorted(extras.EXTRAS))
def test_each_optional_module_names_an_extra_that_installs_it(module):
    _, extra = extras.EXTRAS[module]
    assert extra in OPTIONAL_DEPENDENCIES
    assert module in {Requirement(r).name for r in OPTIONAL_DEPENDENCIES[extra]}


@pytest.mark.parametrize("module", sorted(extras.EXTRAS))
def test_require_names_the_extra_when_the_module_is_missing(module, monkeypatch):
    label, extra = extras.EXTRAS[module]
    assert extras.require(module, "this").__name__ == module  # installed here: the module itself
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtra) as raised:
        extras.require(module, "doing this")
    assert str(raised.value) == f"doing this needs {label}: pip install 'redtick[{extra}]'"
    assert raised.value.extra == extra and raised.value.name == module
    assert isinstance(raised.value, ImportError) and isinstance(raised.value, RedtickError)


@pytest.mark.parametrize(("missing", "line"), [
    ("fastapi", "redtick: MissingExtra: redtick serve needs FastAPI: pip install 'redtick[api]'"),
    ("uvicorn", "redtick: MissingExtra: redtick serve needs uvicorn: pip install 'redtick[api]'"),
])
def test_redtick_serve_without_the_api_extra_prints_one_line(missing, line):
    done = run_without([missing], "from redtick.cli import main; sys.exit(main(['serve', '--port', '1']))")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [line]
    assert done.stdout == ""


@pytest.mark.parametrize("code", ["import redtick.web", "from redtick import cache_response",
                                  "from redtick.web.response_cache import ResponseCache"])
def test_the_http_layer_without_fastapi_is_a_missing_extra(code):
    done = run_without(["fastapi"], f"""
try:
    {code}
except Exception as exc:
    print(type(exc).__name__, exc)
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "MissingExtra redtick.web (the HTTP API) needs FastAPI: pip install 'redtick[api]'"


def test_the_core_imports_and_runs_without_any_extra():
    done = run_without(sorted(extras.EXTRAS), "import redtick, redtick.cli, redtick.reports, redtick.widgets; "
                                              "print(len(redtick.datasets.aapl_1m()), redtick.__version__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2382", redtick.__version__]


def test_polars_output_without_polars_names_the_extra(conn, monkeypatch):
    redtick.write_ticks(redtick.datasets.es_ticks().iloc[:100], "ES-EXTRA", conn=conn)
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(MissingExtra, match=r"^output='polars' needs Polars: pip install 'redtick\[polars\]'$"):
        redtick.load_ticks("ES-EXTRA", output="polars", conn=conn)
    assert len(redtick.load_ticks("ES-EXTRA", output="arrow", conn=conn)) == 100  # the rest still reads


def _imported_modules(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.partition(".")[0])
    return names


def test_optional_modules_are_imported_only_through_require():
    # FastAPI brings Starlette and pydantic: redtick.web imports them freely once its __init__ required FastAPI.
    optional = set(extras.EXTRAS) | {"starlette", "pydantic"}
    direct = sorted(f"{path.relative_to(ROOT)} imports {name}"
                    for path in sorted((ROOT / "redtick").rglob("*.py"))
                    if path.parent.name != "web"
                    for name in _imported_modules(path) & optional)
    assert direct == []
    body = ast.parse((ROOT / "redtick" / "web" / "__init__.py").read_text()).body
    statements = [ast.unparse(node) for node in body]
    guard = statements.index("require('fastapi', 'redtick.web (the HTTP API)')")
    web_imports = [i for i, node in enumerate(body)
                   if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("redtick.web")]
    assert web_imports and guard < min(web_imports)  # the package's own modules import FastAPI

"""The documentation site builds with ``mkdocs build --strict`` and renders the API from the docstrings.

Strict mode with the ``validation:`` settings of ``mkdocs.yml`` turns every broken link, missing
anchor, page left out of the nav and unresolved API reference into a failed build; these tests run
that build (the real one, and one with a page broken on purpose, to show the settings catch it) and
read the rendered pages. Without the ``docs`` extra they skip, except under ``CI=true``.
"""

from __future__ import annotations

import ast
import html
import inspect
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import redtick
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent

# The platform's cache layer documents these names; the site must render each and say where it is.
PLATFORM_NAMES = {
    "redis_client": "redtick.redis_client",
    "market_data_cache": "redtick.market_data_cache",
    "user_session_cache": "redtick.user_session_cache",
    "price_cache": "redtick.price_cache",
    "cache_service": "redtick.cache_service",
    "cache_response": "redtick.web.cache_response",
    "cached_repository": "redtick.cached_repository",
    "BaseCache": "redtick.BaseCache",
    "EncryptedCache": "redtick.EncryptedCache",
}
PLATFORM_FILES = ["redis_client.py", "base_cache.py", "market_data_cache.py", "user_session_cache.py",
                  "price_cache.py", "cache_service.py", "middleware.py", "cached_repository.py"]


def _mkdocs_available() -> bool:
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
        import mkdocstrings_handlers.python  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("CI=true but the docs extra is not installed: the site must build in CI")
        return False
    return True


# The broken build of the last test reads the same mkdocs.yml from another docs folder, which the
# command line cannot say; the logging is set up as the command line sets it.
_BUILD_FROM = """
import logging, sys
from mkdocs.commands.build import build
from mkdocs.config import load_config
logging.basicConfig(format="%(levelname)s - %(message)s")
config_file, site_dir, docs_dir = sys.argv[1:]
build(load_config(config_file=config_file, site_dir=site_dir, docs_dir=docs_dir, strict=True))
"""


def _build(site: Path, docs_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of ``mkdocs.yml`` into ``site``, optionally from another docs folder."""
    config = str(ROOT / "mkdocs.yml")
    command = ([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", config, "--site-dir", str(site)]
               if docs_dir is None else [sys.executable, "-c", _BUILD_FROM, config, str(site), str(docs_dir)])
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.fixture(scope="module")
def docs_extra() -> None:
    if not _mkdocs_available():
        pytest.skip("the docs extra is not installed (pip install 'redtick[docs]')")


@pytest.fixture(scope="module")
def site(docs_extra: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    built = _build(out)
    log = built.stdout + built.stderr
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{log}"
    assert "WARNING" not in log, log
    return out


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def _page(site: Path, page: str) -> str:
    return (site / page / "index.html").read_text(encoding="utf-8")


def _rendered_ids(site: Path) -> set[str]:
    ids: set[str] = set()
    for path in (site / "reference").rglob("index.html"):
        ids.update(re.findall(r'id="(redtick[\w.]*)"', path.read_text(encoding="utf-8")))
    return ids


def _signature_text(page: str, identifier: str) -> str:
    """The rendered signature under the heading of ``identifier``, as plain text."""
    start = page.index(f'id="{identifier}"')
    signature = page.index("doc-signature", start)
    return _text(page[page.index(">", signature) + 1:page.index("</pre>", signature)])


def _normalised(signature: str) -> str:
    return re.sub(r",\)", ")", re.sub(r"\s+", "", signature.replace("'", '"')))


def _expected_signature(function: Any) -> str:
    """``name(params) -> return`` as the source spells it (defaults as written, such as ``DEFAULT_BATCH``)."""
    node = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    assert isinstance(node, ast.FunctionDef)
    args = node.args

    def param(arg: ast.arg, default: ast.expr | None, prefix: str = "") -> str:
        text = prefix + arg.arg + (f": {ast.unparse(arg.annotation)}" if arg.annotation else "")
        return text if default is None else f"{text} = {ast.unparse(default)}"

    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    parts = [param(a, d) for a, d in zip(positional, defaults, strict=True)]
    if args.posonlyargs:
        parts.insert(len(args.posonlyargs), "/")
    if args.vararg:
        parts.append(param(args.vararg, None, "*"))
    elif args.kwonlyargs:
        parts.append("*")
    parts += [param(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg:
        parts.append(param(args.kwarg, None, "**"))
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"{node.name}({', '.join(parts)}){returns}"


@pytest.mark.parametrize("name", ["load_ohlcv", "load_ticks", "write_ticks"])
def test_the_readers_and_writers_render_their_real_signatures(site: Path, name: str):
    page = _page(site, "reference/readers" if name.startswith("load") else "reference/writers")
    rendered = _signature_text(page, f"redtick.{name}")
    assert _normalised(rendered) == _normalised(_expected_signature(getattr(redtick, name)))


def test_load_ohlcv_renders_its_numpydoc_sections(site: Path):
    page = _page(site, "reference/readers")
    start = page.index('id="redtick.load_ohlcv"')
    section = _text(page[start:page.index('class="doc doc-heading"', page.index("doc-signature", start))])
    headings = re.findall(r"^ *(\w[\w ]*)\n *-{3,}$", inspect.getdoc(redtick.load_ohlcv) or "", re.MULTILINE)
    assert "Parameters" in headings
    for heading in headings:
        assert f"{heading}:" in section
    for parameter in inspect.signature(redtick.load_ohlcv).parameters:
        assert parameter in section
    assert ":func:" not in section and ":class:" not in section  # Sphinx roles became links or code


def test_every_public_name_is_rendered(site: Path):
    ids = _rendered_ids(site)
    missing = []
    for name in redtick.__all__:
        value = getattr(redtick, name)
        canonical = (value.__name__ if inspect.ismodule(value)
                     else f"{value.__module__}.{value.__qualname__}" if hasattr(value, "__qualname__") else None)
        candidates = {f"redtick.{name}", canonical}
        # A module rendered without its own heading still renders its members under its path.
        if not candidates & ids and not (inspect.ismodule(value) and any(i.startswith(f"{canonical}.") for i in ids)):
            missing.append(name)
    assert not missing, f"in redtick.__all__ but on no page of docs/reference: {missing}"


def test_every_name_of_the_web_package_is_rendered(site: Path):
    # Read, not imported: redtick.web needs the api extra, the docs build does not.
    tree = ast.parse((ROOT / "redtick" / "web" / "__init__.py").read_text(encoding="utf-8"))
    exported = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets))
    ids = _rendered_ids(site)
    assert [name for name in exported if f"redtick.web.{name}" not in ids] == []


def test_the_platform_cache_names_are_rendered_and_mapped(site: Path):
    ids = _rendered_ids(site)
    assert {name: path for name, path in PLATFORM_NAMES.items() if path not in ids} == {}
    caches = _text(_page(site, "caches"))
    assert [f for f in PLATFORM_FILES if f not in caches] == []
    assert [n for n in PLATFORM_NAMES if n not in caches] == []


def test_the_architecture_page_is_architecture_md(site: Path):
    page = _text(_page(site, "architecture"))
    layers = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8").split("<!-- layers -->")[1]
    for line in layers.split("```")[1].strip().splitlines()[1:]:
        assert line in page


def test_every_docstring_parses_as_numpydoc_without_warnings(docs_extra: None):
    # The site parses only what it renders; this parses every docstring of the package, as
    # mkdocstrings would, so a numpydoc mistake anywhere (a paragraph inside Parameters reads as
    # parameters, a section under a wrong underline) is found before someone renders it.
    import griffe

    warnings: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("griffe")
    logger.addHandler(handler)
    try:
        pkg = griffe.load("redtick", search_paths=[str(ROOT)], docstring_parser=griffe.Parser.numpy)
        seen: set[str] = set()
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.path not in seen:
                seen.add(obj.path)
                if obj.docstring is not None:
                    _ = obj.docstring.parsed
                stack.extend(m for m in obj.members.values() if isinstance(m, griffe.Object))
    finally:
        logger.removeHandler(handler)
    assert len(seen) > 100  # the whole package was walked
    assert warnings == []


def test_a_broken_link_anchor_or_reference_fails_the_build(site: Path, tmp_path: Path):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    broken = docs / "reference" / "index.md"
    broken.write_text(broken.read_text(encoding="utf-8") + textwrap.dedent("""
        [a page that is not there](no-such-page.md), [an anchor that is not there](../caches.md#no-such-anchor),
        [a name that is not rendered][redtick.no_such_function]
    """), encoding="utf-8")
    built = _build(tmp_path / "site", docs)
    log = built.stdout + built.stderr
    assert built.returncode != 0, log
    assert "no-such-page.md" in log
    assert "no-such-anchor" in log
    assert "redtick.no_such_function" in log

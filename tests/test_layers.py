"""The package's imports follow the layers drawn in ARCHITECTURE.md: down only, and at module level.

The layers are read from ARCHITECTURE.md itself, so the drawing and the code cannot drift apart:
a module missing from the drawing, an import of a higher layer, or an import inside a function
(except of an optional dependency, which is imported where it is needed so the rest works
without it) fails here with the file and line.
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "redtick"
DRAWING = ROOT / "ARCHITECTURE.md"

# Imported inside functions on purpose: optional dependencies, and redtick's modules built on them.
OPTIONAL = ("fastapi", "starlette", "uvicorn", "plotly", "ipywidgets", "polars", "redtick.web", "redtick.reports",
            "redtick.widgets")


def drawn_layers() -> dict[str, int]:
    """``{module: layer}`` from the ``layer N: a, b, c`` lines of ARCHITECTURE.md's layer block."""
    text = DRAWING.read_text()
    block = text[text.index("<!-- layers -->") : text.index("<!-- /layers -->")]
    layers = {}
    for number, names in re.findall(r"^\s*(\d+)\s*\|\s*(.+)$", block, flags=re.MULTILINE):
        for name in re.findall(r"[a-z_][a-z_.]*\*?", names):
            layers[name] = int(number)
    return layers


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of ``redtick.x.y``: drawn as ``x.y``, or inside a package drawn as ``x*``; the root is ``redtick``."""
    short = module.removeprefix("redtick.") if module != "redtick" else "redtick"
    while short:
        if short in layers:
            return layers[short]
        if f"{short}*" in layers:
            return layers[f"{short}*"]
        short = short.rpartition(".")[0]
    return None


def imports_of(path: pathlib.Path) -> list[tuple[str, int, bool]]:
    """(module imported, line, at module level) for every import in ``path``, names of ``from redtick import x`` resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    top_level = {id(node) for node in tree.body}
    for node in tree.body:  # imports under ``if TYPE_CHECKING:`` or try/except at module level are module level too
        if isinstance(node, ast.If | ast.Try):
            top_level |= {id(child) for child in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "redtick":
                found += [(f"redtick.{alias.name}", node.lineno, id(node) in top_level) for alias in node.names]
            else:
                found.append((node.module, node.lineno, id(node) in top_level))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_drawn():
    layers = drawn_layers()
    missing = [module_name(p) for p in MODULES if layer_of(module_name(p), layers) is None]
    assert not missing, f"modules not drawn in ARCHITECTURE.md's layers: {missing}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_down(path):
    layers = drawn_layers()
    here = module_name(path)
    own = layer_of(here, layers)
    upward = []
    for name, line, _ in imports_of(path):
        if not name.startswith("redtick") or name == here or here.startswith(f"{name}."):
            continue
        target = layer_of(name, layers)
        if target is not None and own is not None and target > own:
            upward.append(f"{path.relative_to(ROOT)}:{line} imports {name} (layer {target}) from layer {own}")
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_function_level_imports_but_optional_ones(path):
    hidden = [f"{path.relative_to(ROOT)}:{line} imports {name} inside a function"
              for name, line, top in imports_of(path)
              if not top and not name.startswith(OPTIONAL)]
    assert not hidden, "\n".join(hidden)


def test_the_check_itself_catches_an_upward_and_a_hidden_import(tmp_path):
    layers = {"errors": 0, "keys": 2, "frames": 6}
    assert layer_of("redtick.caches.prices", {**layers, "caches*": 5}) == 5
    assert layer_of("redtick.keys", layers) == 2
    sample = tmp_path / "sample.py"
    sample.write_text("from redtick import frames\n\ndef f():\n    import redtick.keys\n    import plotly\n")
    assert imports_of(sample) == [("redtick.frames", 1, True), ("redtick.keys", 4, False), ("plotly", 5, False)]


def test_the_readme_shows_the_same_layers():
    drawing = DRAWING.read_text()
    block = drawing[drawing.index("```text") : drawing.index("<!-- /layers -->")].strip()
    readme = (ROOT / "README.md").read_text()
    indented = "\n".join(f"  {line}" if line else line for line in block.splitlines())
    assert indented in readme, "README.md's layer block differs from ARCHITECTURE.md's: copy it over"

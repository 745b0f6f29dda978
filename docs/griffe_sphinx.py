"""A Griffe extension for the documentation site: the Sphinx markup of numpydoc docstrings, in Markdown.

redtick's docstrings are numpydoc, so they use Sphinx's reStructuredText where they cross-reference
(``:func:`load_ohlcv```, ``:class:`~redtick.caches.prices.PriceCache```), introduce a literal block
(``text::``) or draw a simple table (columns under ``====  ====`` borders). mkdocstrings renders
Markdown, where all three would show as typed. Before mkdocstrings parses a docstring, this rewrites
its text (the source files are not touched):

- each role becomes an optional autorefs link: a link when its target is rendered on some page,
  plain code otherwise, never a warning;
- ``text::`` becomes ``text:`` (the indented block after it is already a Markdown code block);
- a simple table becomes a Markdown table (a row whose first column is blank continues the row above).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

# :role:`target`, :role:`~path.to.target` (shows the last part), :role:`title <path.to.target>`
ROLE = re.compile(r":(?:py:)?(?:attr|class|const|data|exc|func|meth|mod|obj):"
                  r"`(?P<tilde>~?)(?:(?P<title>[^`<>]*?)\s*<(?P<explicit>[^`<>]+)>|(?P<target>[^`<>]+))`")
LITERAL_MARKER = re.compile(r"(?<=\S)::$", re.MULTILINE)
TABLE_BORDER = re.compile(r"^ *=+(?: +=+)+ *$")


def _identifier(obj: griffe.Object, target: str) -> str | None:
    """The full path a role's target names, seen from the docstring's object; None if unknown."""
    if target.startswith("redtick.") or target == "redtick":
        return target
    head, _, rest = target.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            resolved = scope.resolve(head)
        except (griffe.NameResolutionError, KeyError, AttributeError):
            scope = scope.parent
            continue
        return f"{resolved}.{rest}" if rest else resolved
    return None


def _roles(obj: griffe.Object, text: str) -> str:
    def link(match: re.Match[str]) -> str:
        target = (match["explicit"] or match["target"]).strip()
        shown = match["title"] or (target.rsplit(".", 1)[-1] if match["tilde"] else target)
        identifier = _identifier(obj, target)
        code = f"<code>{html.escape(shown)}</code>"
        if identifier is None:
            return code
        return f'<autoref identifier="{html.escape(identifier)}" optional>{code}</autoref>'

    return ROLE.sub(link, text)


def _cells(line: str, spans: list[tuple[int, int]]) -> list[str]:
    # The last column runs to the end of the line, as in reStructuredText.
    bounds = [(start, end) for start, end in spans[:-1]] + [(spans[-1][0], len(line))]
    return [line[start:end].strip() for start, end in bounds]


def _markdown_table(block: list[str]) -> list[str]:
    """A simple table (its lines from the first border to the last) as Markdown table lines."""
    spans = [match.span() for match in re.finditer(r"=+", block[0])]
    borders = [i for i, line in enumerate(block) if TABLE_BORDER.match(line)]
    header = [_cells(line, spans) for line in block[1:borders[1]]] if len(borders) == 3 else []
    rows: list[list[str]] = []
    for line in block[borders[-2] + 1:borders[-1]]:
        cells = _cells(line, spans)
        if rows and not cells[0]:
            rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells, strict=True)]
        elif any(cells):
            rows.append(cells)
    head = [" ".join(part[i] for part in header).strip() for i in range(len(spans))] if header else [""] * len(spans)
    indent = block[0][: len(block[0]) - len(block[0].lstrip())]

    def row(cells: list[str]) -> str:
        return indent + "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [row(head), indent + "|" + "---|" * len(spans), *(row(cells) for cells in rows)]


def _tables(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        if TABLE_BORDER.match(lines[i]):
            ends = [j for j in range(i + 1, len(lines)) if TABLE_BORDER.match(lines[j])]
            # A table with a header has three borders, one without has two; a blank line ends the table.
            closing = [j for j in ends if j + 1 == len(lines) or not lines[j + 1].strip()]
            if closing:
                last = closing[0]
                out.extend(_markdown_table(lines[i:last + 1]))
                i = last + 1
                continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


class SphinxMarkup(griffe.Extension):
    """Rewrite every docstring of the loaded package once, before mkdocstrings parses it."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[str] = set()
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.path in seen:
                continue
            seen.add(obj.path)
            if obj.docstring is not None:
                obj.docstring.value = _roles(obj, LITERAL_MARKER.sub(":", _tables(obj.docstring.value)))
            stack.extend(member for member in obj.members.values() if isinstance(member, griffe.Object))  # not aliases

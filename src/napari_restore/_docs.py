"""Docs helpers: parameter tables rendered from the registry (never hand-copied)."""

from __future__ import annotations

import re
from pathlib import Path

from .processors.registry import ProcessorSpec, get_processor

_BLOCK = re.compile(r"<!-- params:(\w+) -->.*?<!-- /params -->", re.S)


def param_table(spec: ProcessorSpec) -> str:
    """A Markdown table of ``spec``'s parameters."""
    rows = ["| parameter | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for p in spec.params:
        default = "None (auto)" if p.default is None else repr(p.default)
        rows.append(
            f"| `{p.name}` | {p.type.__name__} | `{default}` | {p.range_text()} | {p.doc} |"
        )
    return "\n".join(rows)


def render(text: str) -> str:
    """Replace every ``<!-- params:NAME -->…<!-- /params -->`` block with the current table."""

    def repl(m: re.Match) -> str:
        name = m.group(1)
        return f"<!-- params:{name} -->\n{param_table(get_processor(name))}\n<!-- /params -->"

    return _BLOCK.sub(repl, text)


def update_docs(root: Path) -> list[Path]:
    """Re-render the parameter tables of every Markdown file under ``root``; return changed files."""
    changed = []
    for path in sorted(root.rglob("*.md")):
        old = path.read_text(encoding="utf-8")
        new = render(old)
        if new != old:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed

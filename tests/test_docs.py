from __future__ import annotations

from pathlib import Path

from napari_restore._docs import render
from napari_restore.processors import REGISTRY

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_parameter_tables_are_current():
    """docs/ tables equal what the registry renders (run scripts/gen_docs.py to update)."""
    for path in DOCS.rglob("*.md"):
        text = path.read_text(encoding="utf-8")
        assert render(text) == text, f"{path} is stale: run `python scripts/gen_docs.py`"


def test_every_processor_has_a_docs_page_with_its_table():
    for name in REGISTRY:
        page = DOCS / "processors" / f"{name}.md"
        assert page.exists(), name
        assert f"<!-- params:{name} -->" in page.read_text(encoding="utf-8")

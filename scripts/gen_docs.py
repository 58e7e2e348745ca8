"""Re-render the registry-generated parts of docs/ (parameter tables)."""

from pathlib import Path

from napari_restore._docs import update_docs

if __name__ == "__main__":
    for path in update_docs(Path(__file__).resolve().parents[1] / "docs"):
        print(f"updated {path}")

"""Run every benchmark script in this folder and print its table."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def main() -> None:
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        print(f"\n== {path.stem} ==")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.main()


# Guarded: isolated runs (bench_bm3d) start "spawn" worker processes, which import the main
# script again; unguarded top-level code would run every benchmark once more in each worker.
if __name__ == "__main__":
    main()

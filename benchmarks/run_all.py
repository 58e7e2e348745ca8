"""Run every benchmark script in this folder and print its table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

for path in sorted(Path(__file__).parent.glob("bench_*.py")):
    print(f"\n== {path.stem} ==")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main()

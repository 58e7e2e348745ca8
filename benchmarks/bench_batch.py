"""Batch runner: bounded memory on a stack larger than a hard memory cap, and 1 vs 2 workers.

1. A uint16 TIFF stack of ``--gb`` GB is written to a temporary folder.
2. A child process imports everything, then caps its own address space with
   ``resource.setrlimit(RLIMIT_AS, current + cap)`` and runs ``batch.apply`` on the stack
   (local threads). It can only finish if memory stays bounded by chunks; it reports its peak
   RSS.
3. Planes per second: dask local threads (1 process) vs a LocalCluster with 1 and 2 workers.

Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
import psutil
from napari_restore import Recipe, batch
import numpy as np, tifffile, tempfile, os
src, out, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
recipe = Recipe("classic_denoise", {"method": "tv_chambolle", "sigma": 0.05})
# warm-up on a tiny stack: every lazily imported module and thread pool exists before the cap
with tempfile.TemporaryDirectory() as tmp:
    tifffile.imwrite(os.path.join(tmp, "w.tif"), np.zeros((4, 64, 64), np.uint16), photometric="minisblack")
    batch.apply(recipe, [os.path.join(tmp, "w.tif")], os.path.join(tmp, "o"))
vms = psutil.Process().memory_info().vms
resource.setrlimit(resource.RLIMIT_AS, (vms + cap, vms + cap))
t0 = time.perf_counter()
report = batch.apply(recipe, [src], out)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"ok": report.ok, "error": report.files[0].error, "seconds": dt,
                  "planes": report.files[0].planes, "peak_rss": peak, "vms_before": vms}))
"""


def make_stack(path: Path, gb: float, side: int = 1024) -> tuple[int, ...]:
    import tifffile

    n = max(2, int(gb * 2**30 / (side * side * 2)))
    rng = np.random.default_rng(0)
    base = (rng.random((side, side)) * 40000).astype(np.uint16)

    def planes():
        for k in range(n):
            yield np.roll(base, k, axis=0)

    tifffile.imwrite(path, planes(), shape=(n, side, side), dtype=np.uint16,
                     photometric="minisblack", bigtiff=True)
    return (n, side, side)


def throughput(src: Path, out: Path, workers: int | None, planes: int) -> float:
    from napari_restore import Recipe, batch

    recipe = Recipe("classic_denoise", {"method": "tv_chambolle", "sigma": 0.05})
    t0 = time.perf_counter()
    report = batch.apply(recipe, [src], out, workers=workers)
    assert report.ok, report.summary()
    return planes / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.0, help="stack size in GB")
    ap.add_argument("--cap-mb", type=int, default=256, help="address-space headroom in MB")
    args = ap.parse_args(argv if argv is not None else [])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shape = make_stack(tmp / "stack.tif", args.gb)
        size = int(np.prod(shape)) * 2
        child = subprocess.run([sys.executable, "-c", CHILD, str(tmp / "stack.tif"), str(tmp / "capped"),
                                str(args.cap_mb * 2**20)], capture_output=True, text=True)
        res = json.loads(child.stdout.strip().splitlines()[-1]) if child.returncode == 0 else {
            "ok": False, "error": child.stderr[-500:]}
        print(f"stack {shape} uint16 = {size / 2**20:.0f} MiB; cap = +{args.cap_mb} MiB address space")
        if res.get("ok"):
            print(f"capped run: OK, {res['planes']} planes in {res['seconds']:.1f} s, "
                  f"peak RSS {res['peak_rss'] / 2**20:.0f} MiB "
                  f"({res['peak_rss'] / size:.2f}× the stack)")
        else:
            print(f"capped run FAILED: {res.get('error')}")
        small = tmp / "small.tif"
        sshape = make_stack(small, min(args.gb, 0.25))
        rates = {}
        for label, workers in (("threads (1 process)", None), ("LocalCluster 1 worker", 1),
                               ("LocalCluster 2 workers", 2)):
            rates[label] = throughput(small, tmp / f"out-{workers}", workers, sshape[0])
            print(f"{label:<24} {rates[label]:6.2f} planes/s")
        return {"capped": res, "rates": rates, "stack_bytes": size}


if __name__ == "__main__":
    main(sys.argv[1:])

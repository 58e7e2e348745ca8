"""Batch BM3D on dask.distributed: a LocalCluster with 2 workers against 1 (issue 19 floor ≥ 1.6×).

A 16 × 256² uint8 TIFF stack (camera crops with σ = 25 noise) is written to a temporary folder
and a BM3D recipe (σ given) is replayed on it by :func:`napari_restore.batch.apply` with a
``client``. Each worker reads its own planes from the file by path: the task graph holds the
path and the plane index, never pixels (its pickled size is printed, against one plane's size).
The clusters are started, and bm3d imported on every worker by a two-plane warm-up, before
the timings; the two cluster sizes are timed alternately, best of ``--repeat``. The outputs of
the two runs are compared bit for bit.

Run: ``python benchmarks/bench_distributed.py [--planes 16] [--side 256] [--repeat 1]``.
Exits 1 when the floor is missed.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FLOOR = 1.6
SIGMA = 25.0


def make_stack(path: Path, planes: int, side: int) -> np.ndarray:
    import tifffile
    from skimage import data

    cam = data.camera().astype(np.float64)
    rng = np.random.default_rng(0)
    step = max(1, (512 - side) // 3)
    crops = [cam[r:r + side, c:c + side] for r in range(0, 512 - side + 1, step)
             for c in range(0, 512 - side + 1, step)]
    stack = np.stack([(crops[k % len(crops)] + rng.normal(0, SIGMA, (side, side)))
                      .clip(0, 255).round() for k in range(planes)]).astype(np.uint8)
    tifffile.imwrite(path, stack, photometric="minisblack")
    return stack


def graph_bytes(recipe, src: Path) -> int:
    """Pickled size of the whole task graph the batch submits for ``src``."""
    from napari_restore import batch
    from napari_restore.batch_io import open_lazy

    result, _ = batch.plan(recipe, open_lazy(src))
    return len(pickle.dumps(dict(result.__dask_graph__())))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--planes", type=int, default=16)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv if argv is not None else [])

    import tifffile
    from dask.distributed import Client, LocalCluster

    from napari_restore import Recipe, batch

    recipe = Recipe("bm3d_denoise", {"sigma": SIGMA})
    print(f"cores: {len(os.sched_getaffinity(0))}, load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_stack(tmp / "stack.tif", args.planes, args.side)
        make_stack(tmp / "warm.tif", 2, args.side)
        nbytes = graph_bytes(recipe, tmp / "stack.tif")
        print(f"stack {args.planes} × {args.side}² uint8; task graph {nbytes} bytes pickled "
              f"(one plane is {args.side ** 2} bytes)")
        clusters = {}
        try:
            for n in (1, 2):
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
                client = Client(cluster)
                clusters[n] = (cluster, client)
                assert batch.apply(recipe, [tmp / "warm.tif"], tmp / f"warm{n}",
                                   client=client).ok
            times: dict[int, list[float]] = {1: [], 2: []}
            for rep in range(args.repeat):
                for n in (1, 2):
                    out = tmp / f"out{n}-{rep}"
                    t0 = time.perf_counter()
                    report = batch.apply(recipe, [tmp / "stack.tif"], out,
                                         client=clusters[n][1])
                    times[n].append(time.perf_counter() - t0)
                    assert report.ok, report.summary()
        finally:
            for cluster, client in clusters.values():
                client.close()
                cluster.close()
        same = np.array_equal(tifffile.imread(tmp / "out1-0" / "stack.tif"),
                              tifffile.imread(tmp / "out2-0" / "stack.tif"))
    t1, t2 = min(times[1]), min(times[2])
    ratio = t1 / t2
    ok = ratio >= FLOOR and same
    print(f"{'measure':44s} {'1 worker s':>10s} {'2 workers s':>11s} {'ratio':>6s}  floor")
    print(f"{'BM3D batch, LocalCluster 2 workers vs 1':44s} {t1:10.2f} {t2:11.2f} {ratio:6.2f}  "
          f">= {FLOOR}, bits equal: {same} {'ok' if ok else 'MISSED'}")
    print(f"load average after: {os.getloadavg()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Huge planes by the CLI: peak memory of a streamed run under a hard address-space cap.

For each case a uint16 plane is written to a Zarr store (in strips, never whole), then a child
process imports everything, runs ``napari-restore apply`` once on a tiny store (every lazily
imported module, the batch's file worker, thread pools exist), records its RSS ("the
imports"), caps its own address space with ``resource.setrlimit(RLIMIT_AS, current + cap)``
(inherited by the processes it starts) and runs ``napari-restore apply`` on the huge plane.
While it runs, a thread samples the RSS of the child and of every process below it (the
batch's file worker, tile workers) every 50 ms.

Cases (the floor of issue 19, item 3):

* ``tv``    16384 × 16384: classic TV denoise (σ given), ``tile="auto"``;
* ``clahe`` 16384 × 16384: LB-CLAHE (clip 2, 8 × 8 grid), in strips;
* ``bm3d``  16384 × 2048: BM3D (σ given, white noise), ``tile="auto"``.

``--rows``/``--cols`` shrink the planes (e.g. ``--rows 4096`` for development). Prints one
line per case; "above imports" = peak sampled RSS of the whole process tree minus the child's
RSS after its imports. Nothing is asserted (the floor is 1.5 GiB).

    python benchmarks/bench_huge_planes.py --cases tv clahe bm3d
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, os, resource, sys, tempfile, threading, time
import numpy as np, psutil, zarr
from napari_restore import cli
import napari_restore.processors, napari_restore._stream, napari_restore.batch
recipe, src, out, cap = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def main():
    with tempfile.TemporaryDirectory() as tmp:  # warm-up: the same recipe on a tiny store
        w = zarr.open_array(os.path.join(tmp, "w.zarr"), mode="w", shape=(256, 256), dtype="uint16")
        w[:] = (np.arange(256 * 256, dtype=np.uint32).reshape(256, 256) % 4096).astype(np.uint16)
        assert cli.main(["apply", recipe, os.path.join(tmp, "w.zarr"), "-o", os.path.join(tmp, "o")]) == 0
    me = psutil.Process()
    base = me.memory_info().rss
    vms = me.memory_info().vms
    resource.setrlimit(resource.RLIMIT_AS, (vms + cap, vms + cap))
    peak = {"tree": 0, "procs": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            total, n = 0, 0
            for p in [me] + me.children(recursive=True):
                try:
                    total += p.memory_info().rss
                    n += 1
                except psutil.Error:
                    pass
            if total > peak["tree"]:
                peak["tree"], peak["procs"] = total, n
            stop.wait(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    rc = cli.main(["apply", recipe, src, "-o", out])
    dt = time.perf_counter() - t0
    stop.set(); th.join()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({"rc": rc, "seconds": dt, "base_rss": base, "peak_tree": peak["tree"],
                      "procs_at_peak": peak["procs"], "vms_before": vms,
                      "child_max_rss": kids}))

if __name__ == "__main__":
    main()
"""

CASES = {
    "tv": ((16384, 16384), {"processor": "classic_denoise",
                            "params": {"method": "tv_chambolle", "sigma": 2000.0, "tile": "auto"}}),
    "clahe": ((16384, 16384), {"processor": "lb_clahe",
                               "params": {"clip_limit": 2.0, "tile_grid": [8, 8]}}),
    "bm3d": ((16384, 2048), {"processor": "bm3d_denoise",
                             "params": {"sigma": 3000.0, "noise_model": "white", "tile": "auto"}}),
}


def make_plane(path: Path, shape: tuple[int, int], chunk: int = 1024) -> None:
    """A noisy uint16 test pattern (smooth structure, edges, σ ≈ 2000 grey levels)."""
    import zarr

    h, w = shape
    z = zarr.open_array(str(path), mode="w", shape=shape, dtype="uint16",
                        chunks=(min(chunk, h), min(chunk, w)))
    rng = np.random.default_rng(0)
    x = np.arange(w)[None, :]
    for r0 in range(0, h, chunk):
        y = np.arange(r0, min(r0 + chunk, h))[:, None]
        base = 30000 + 12000 * np.sin(x / 97.0) * np.cos(y / 131.0) + 8000 * ((x // 512 + y // 512) % 2)
        noisy = base + rng.normal(0, 2000, (y.shape[0], w))
        z[r0:r0 + y.shape[0]] = np.clip(noisy, 0, 65535).astype(np.uint16)


def run_case(name: str, tmp: Path, rows: int | None, cols: int | None, cap_mb: int) -> dict:
    (h, w), recipe = CASES[name]
    h, w = rows or h, min(cols or w, w)
    src = tmp / f"{name}.zarr"
    make_plane(src, (h, w))
    rpath = tmp / f"{name}.json"
    from napari_restore import Recipe

    Recipe(recipe["processor"], recipe["params"]).save(rpath)
    child = subprocess.run([sys.executable, "-c", CHILD, str(rpath), str(src), str(tmp / f"out-{name}"),
                            str(cap_mb * 2**20)], capture_output=True, text=True, check=False)
    lines = [ln for ln in child.stdout.strip().splitlines() if ln.startswith("{")]
    res = json.loads(lines[-1]) if child.returncode == 0 and lines else {
        "rc": child.returncode, "error": child.stderr[-1500:]}
    res.update(case=name, shape=[h, w], plane_mib=h * w * 2 / 2**20)
    ok = res.get("rc") == 0 and (tmp / f"out-{name}" / f"{name}.zarr").exists()
    if ok:
        above = (res["peak_tree"] - res["base_rss"]) / 2**30
        print(f"{name:<6} {h}x{w} uint16 ({res['plane_mib']:.0f} MiB): OK in {res['seconds']:.0f} s, "
              f"peak RSS {res['peak_tree'] / 2**30:.2f} GiB over {res['procs_at_peak']} processes, "
              f"{above:.2f} GiB above the imports ({res['base_rss'] / 2**20:.0f} MiB); "
              f"largest child {res['child_max_rss'] / 2**30:.2f} GiB; cap +{cap_mb} MiB address space",
              flush=True)
    else:
        print(f"{name:<6} {h}x{w}: FAILED rc={res.get('rc')}: {res.get('error', '')[-800:]}", flush=True)
    res["ok"] = ok
    return res


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--rows", type=int, default=None, help="plane rows (default: the floor's)")
    ap.add_argument("--cols", type=int, default=None, help="plane columns (at most the floor's)")
    ap.add_argument("--cap-mb", type=int, default=1536, help="address-space headroom in MiB")
    ap.add_argument("--tmp", default=None, help="folder for the planes (default: a temporary one)")
    args = ap.parse_args(argv if argv is not None else [])
    out = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for name in args.cases:
            out.append(run_case(name, Path(tmp), args.rows, args.cols, args.cap_mb))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])

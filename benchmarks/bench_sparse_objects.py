"""Poisson–Gaussian noise on sparse fluorescence-like objects (printed; nothing asserted).

The floors' images (``bench_poisson_gaussian.py``) are 256² and mostly smooth. Microscopy
crops are often 128² of small objects on a dark background, where the smooth windows cover
the background and little else. Generators in ``napari_restore._sample_data`` (fixed seeds):
``beads_clean`` (25 Gaussian spots, σ 2 px), ``filaments_clean`` (8 straight lines, σ 1.2
px), ``blobs_clean`` (binary blobs blurred by 1.5 px), ``fluorescence_clean`` (the sample's
generator), all 128²; ``poisson_gaussian`` gives float counts.

1. **Estimation**: 3 object seeds × peaks 5, 10, 20, 50, 100, 200 × 4 cameras (gain, read
   noise, offset): (4, 3, 100), (3, 4, 200), (1, 1, 0), (10, 5, 300). Counts of ``a`` off by
   more than 15 %, of the predicted std off by more than 10 % over the 5th–95th percentiles
   of the expected image, of models called Gaussian; the worst ``a`` error.
1b. **Larger crops**: 256² and 512² (4× and 16× the objects), peaks 10–200, cameras (3, 4, 200)
   and (4, 3, 100), one seed: the ``a`` error of each.
2. **Stacks**: 4 planes of beads (different seeds) estimated once as a stack.
3. **Denoising** (object seed 1, peaks 5, 10, 20, cameras (4, 3, 100) and (3, 4, 200)):
   ``bm3d_denoise(z, noise_model="poisson-gaussian")`` against plain BM3D σ = auto and the
   best of 12 σ chosen with ground truth (geometric, half the smallest to 1.5× the largest
   true noise std), PSNR in dB.

Run: ``.venv/bin/python benchmarks/bench_sparse_objects.py`` (about 10 minutes on two cores);
``--quick`` runs parts 1 and 2 only (under a minute).
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np

from napari_restore import bm3d_denoise, estimate_noise_model
from napari_restore._sample_data import (
    beads_clean,
    blobs_clean,
    filaments_clean,
    fluorescence_clean,
    poisson_gaussian,
)

GENERATORS = {
    "beads": lambda seed: beads_clean(128, seed=seed),
    "filaments": lambda seed: filaments_clean(128, seed=seed),
    "blobs": lambda seed: blobs_clean(128, seed=seed),
    "fluorescence": lambda seed: fluorescence_clean(128, seed),
}
CAMERAS = [(4, 3, 100), (3, 4, 200), (1, 1, 0), (10, 5, 300)]
PEAKS = (5, 10, 20, 50, 100, 200)


def psnr(x, ref) -> float:
    ref = np.asarray(ref, np.float64)
    span = ref.max() - ref.min()
    return 10 * math.log10(span**2 / np.mean((np.asarray(x, np.float64) - ref) ** 2))


def estimation() -> None:
    print("1. estimation on 128² sparse objects: fails of a (15 %), of the std (10 %), "
          "Gaussian models, worst |a error|")
    for name, gen in GENERATORS.items():
        a_fail = std_fail = gauss = n = 0
        worst = 0.0
        for seed in (1, 2, 3):
            clean = gen(seed)
            for peak in PEAKS:
                for gain, read, offset in CAMERAS:
                    e, z = poisson_gaussian(clean, peak=peak, gain=gain, read=read,
                                            offset=offset, seed=seed + 20)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        m = estimate_noise_model(z)
                    b = read**2 - gain * offset
                    grid = np.linspace(*np.percentile(e, [5, 95]), 64)
                    a_err = abs(m.gain / gain - 1)
                    std_err = float(np.max(np.abs(m.std(grid) / np.sqrt(gain * grid + b) - 1)))
                    n += 1
                    a_fail += a_err > 0.15
                    std_fail += std_err > 0.10
                    gauss += m.kind == "gaussian"
                    worst = max(worst, a_err)
        print(f"  {name:13s} a {a_fail:2d}/{n}  std {std_fail:2d}/{n}  gaussian {gauss:2d}/{n}  "
              f"worst a {100 * worst:.1f} %")


def larger() -> None:
    print("1b. larger crops: a error at peaks 10, 20, 50, 100, 200 × cameras (3, 4, 200), "
          "(4, 3, 100)")
    images = {
        "beads 256²": beads_clean(256, count=100, seed=1),
        "beads 512²": beads_clean(512, count=400, seed=2),
        "filaments 256²": filaments_clean(256, count=32, seed=1),
        "filaments 512²": filaments_clean(512, count=128, seed=2),
        "blobs 256²": blobs_clean(256, seed=1),
        "fluorescence 256²": fluorescence_clean(256, 1),
        "fluorescence 512²": fluorescence_clean(512, 2),
    }
    misses = total = 0
    for name, clean in images.items():
        errs = []
        for peak in (10, 20, 50, 100, 200):
            for gain, read, offset in ((3, 4, 200), (4, 3, 100)):
                _, z = poisson_gaussian(clean, peak=peak, gain=gain, read=read, offset=offset,
                                        seed=1)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    m = estimate_noise_model(z)
                errs.append(m.gain / gain - 1)
        misses += sum(abs(e) > 0.15 for e in errs)
        total += len(errs)
        print(f"  {name:18s} " + " ".join(f"{100 * e:+.0f}%" for e in errs))
    print(f"  a off by more than 15 %: {misses}/{total}")


def stacks() -> None:
    print("2. 4-plane bead stacks, estimated once: a error (gain_se)")
    for peak in (10, 20, 50):
        for gain, read, offset in CAMERAS[:2]:
            planes = [poisson_gaussian(beads_clean(128, seed=s), peak=peak, gain=gain,
                                       read=read, offset=offset, seed=s + 5)[1]
                      for s in range(1, 5)]
            m = estimate_noise_model(np.stack(planes))
            print(f"  peak {peak:3d}, camera {(gain, read, offset)}: a {m.gain / gain - 1:+.3f} "
                  f"(se {m.gain_se / gain:.3f})")


def denoising() -> None:
    print("3. denoising, dB: automatic path, plain BM3D σ = auto, oracle of 12 σ "
          "(automatic − plain / automatic − oracle)")
    for name in ("beads", "filaments", "blobs"):
        clean = GENERATORS[name](1)
        for gain, read, offset in CAMERAS[:2]:
            for peak in (5, 10, 20):
                e, z = poisson_gaussian(clean, peak=peak, gain=gain, read=read,
                                        offset=offset, seed=peak, dtype=np.uint16)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    auto = psnr(bm3d_denoise(z, noise_model="poisson-gaussian"), e)
                    plain = psnr(bm3d_denoise(z), e)
                lo = read
                hi = math.sqrt(gain * float(e.max() - offset) + read**2)
                oracle = max(psnr(bm3d_denoise(z, sigma=s), e)
                             for s in np.geomspace(0.5 * lo, 1.5 * hi, 12))
                print(f"  {name:9s} {(gain, read, offset)} peak {peak:2d}: {auto:6.2f} "
                      f"{plain:6.2f} {oracle:6.2f}  ({auto - plain:+.2f} / {auto - oracle:+.2f})")


if __name__ == "__main__":
    estimation()
    larger()
    stacks()
    if "--quick" not in sys.argv:
        denoising()

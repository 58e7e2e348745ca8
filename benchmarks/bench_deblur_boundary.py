"""BM3D deblur on linearly blurred images: boundary="extend" vs "periodic".

The camera model: a whole scikit-image picture is blurred by *linear* convolution
(``fftconvolve(..., mode="valid")``: every output pixel sees only real scene pixels), then a
256² centre crop is taken (smaller pictures: the whole valid area), so the crop has no boundary
effect of its own; white Gaussian noise is added. The reference is the same crop of the sharp
picture. Gaussian PSFs (9, 9), (15, 7), (5, 21) of σ = 2.5 px; noise σ = 0.5 %, 1 %, 2 % of
the range; six pictures.

Printed per case: whole-image PSNR of the blurred input, of "periodic" (the raw library) and
of "extend"; the 8-pixel border bands (top, bottom, left, right) blurred → extend; the gain in
the interior (16 px from every edge) of "extend" and, as the ceiling without any boundary
problem, of "periodic" on the same crop blurred by *circular* convolution; and whole-image
PSNR of "extend" / "periodic" on that circular blur. The floors (checked at the end, exit
status 1 if one fails):

- whole image: extend ≥ blurred + 2 dB;
- every border band: extend ≥ blurred (no band worse than the input);
- border bands really improve: the mean band gain of each case ≥ 1 dB, or ≥ half the
  interior gain where BM3D itself gains less (a result that only faded back to the input near
  the border would gain ~0 there).

Run: ``.venv/bin/python benchmarks/bench_deblur_boundary.py`` (about 15 minutes on two cores;
``--quick`` runs two pictures at one noise level).
"""

from __future__ import annotations

import sys
import time

import numpy as np

PSFS = ((9, 9), (15, 7), (5, 21))
PSF_SIGMA = 2.5
NOISES = (0.005, 0.01, 0.02)
CROP = 256
BAND = 8
WHOLE_FLOOR = 2.0
BAND_MEAN_FLOOR = 1.0


def pictures() -> dict[str, np.ndarray]:
    from skimage import color, data

    return {
        "camera": data.camera() / 255.0,
        "astronaut": color.rgb2gray(data.astronaut()),
        "coins": data.coins() / 255.0,
        "moon": data.moon() / 255.0,
        "brick": data.brick() / 255.0,
        "text": data.text() / 255.0,
    }


def linear_case(scene: np.ndarray, psf: np.ndarray, noise: float, seed: int = 0):
    """(clean crop, blurred noisy crop): 'valid' linear blur of the whole scene, centre crop."""
    from scipy.signal import fftconvolve

    blurred = fftconvolve(scene, psf, mode="valid")
    kh, kw = psf.shape
    h, w = blurred.shape
    ch, cw = min(CROP, h), min(CROP, w)
    r0, c0 = (h - ch) // 2, (w - cw) // 2
    crop = blurred[r0:r0 + ch, c0:c0 + cw]
    clean = scene[r0 + kh // 2:r0 + kh // 2 + ch, c0 + kw // 2:c0 + kw // 2 + cw]
    rng = np.random.default_rng(seed)
    return clean, crop + rng.normal(0.0, noise, crop.shape)


def circular_case(clean: np.ndarray, psf: np.ndarray, noise: float, seed: int = 0):
    from scipy.ndimage import convolve

    rng = np.random.default_rng(seed)
    return convolve(clean, psf, mode="wrap") + rng.normal(0.0, noise, clean.shape)


def psnr(a: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - ref) ** 2)))


def bands(a: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    n = BAND
    return {"top": psnr(a[:n], ref[:n]), "bottom": psnr(a[-n:], ref[-n:]),
            "left": psnr(a[:, :n], ref[:, :n]), "right": psnr(a[:, -n:], ref[:, -n:])}


def main(argv: list[str] | None = None) -> int:
    from napari_restore import bm3d_deblur
    from napari_restore.processors.bm3d import gaussian_psf

    quick = "--quick" in (argv or [])
    pics = pictures()
    if quick:
        pics = {k: pics[k] for k in ("camera", "coins")}
    noises = (0.01,) if quick else NOISES
    failures = []
    rows = []
    t_ext = t_per = 0.0
    print(f"{'case':<28}{'blur':>7}{'periodic':>9}{'extend':>8}{'gain':>7} | "
          f"{'bands blurred -> extend (top bottom left right)':<52}| interior gain ext/circ "
          "| circ ext/per")
    for noise in noises:
        for size in PSFS:
            psf = gaussian_psf(size, PSF_SIGMA)
            for name, scene in pics.items():
                clean, z = linear_case(scene, psf, noise)
                # the data are floats around [0, 1]: pass sigma in the image's own units
                t0 = time.perf_counter()
                ext = bm3d_deblur(z, psf, sigma=noise)
                t1 = time.perf_counter()
                per = bm3d_deblur(z, psf, sigma=noise, boundary="periodic")
                t2 = time.perf_counter()
                t_ext += t1 - t0
                t_per += t2 - t1
                zc = circular_case(clean, psf, noise)
                circ_ext = psnr(bm3d_deblur(zc, psf, sigma=noise), clean)
                circ = bm3d_deblur(zc, psf, sigma=noise, boundary="periodic")
                circ_per = psnr(circ, clean)
                mid = (slice(2 * BAND, -2 * BAND), slice(2 * BAND, -2 * BAND))
                int_ext = psnr(ext[mid], clean[mid]) - psnr(z[mid], clean[mid])
                int_circ = psnr(circ[mid], clean[mid]) - psnr(zc[mid], clean[mid])
                b_in, b_out = bands(z, clean), bands(ext, clean)
                gains = {k: b_out[k] - b_in[k] for k in b_in}
                whole_in, whole_out = psnr(z, clean), psnr(ext, clean)
                case = f"{name} {size[0]}x{size[1]} n={noise:g}"
                band_txt = " ".join(f"{b_in[k]:.1f}->{b_out[k]:.1f}" for k in b_in)
                print(f"{case:<28}{whole_in:>7.2f}{psnr(per, clean):>9.2f}{whole_out:>8.2f}"
                      f"{whole_out - whole_in:>+7.2f} | {band_txt:<52}| "
                      f"{int_ext:+.2f}/{int_circ:+.2f}{'':>10}| {circ_ext:.2f}/{circ_per:.2f}",
                      flush=True)
                rows.append((case, whole_out - whole_in, min(gains.values()),
                             float(np.mean(list(gains.values())))))
                if whole_out - whole_in < WHOLE_FLOOR:
                    failures.append(f"{case}: whole-image gain {whole_out - whole_in:+.2f} dB "
                                    f"< {WHOLE_FLOOR} (interior gain {int_ext:+.2f} dB; the raw "
                                    f"library on a circular blur gains {int_circ:+.2f} dB there)")
                for k, g in gains.items():
                    if g < 0:
                        failures.append(f"{case}: {k} band {b_in[k]:.2f} -> {b_out[k]:.2f} dB")
                band_floor = min(BAND_MEAN_FLOOR, 0.5 * int_ext)
                if np.mean(list(gains.values())) < band_floor:
                    failures.append(f"{case}: mean band gain {np.mean(list(gains.values())):+.2f}"
                                    f" dB < {band_floor:.2f}")
    gains = np.array([r[1] for r in rows])
    worst_band = np.array([r[2] for r in rows])
    mean_band = np.array([r[3] for r in rows])
    print(f"\n{len(rows)} cases: whole-image gain min {gains.min():+.2f} / median "
          f"{np.median(gains):+.2f} dB; worst band gain min {worst_band.min():+.2f} / median "
          f"{np.median(worst_band):+.2f} dB; mean band gain min {mean_band.min():+.2f} / median "
          f"{np.median(mean_band):+.2f} dB")
    print(f"time: extend {t_ext:.1f} s, periodic {t_per:.1f} s (ratio {t_ext / t_per:.2f})")
    if failures:
        print("\nBELOW THE FLOOR:")
        for f in failures:
            print("  " + f)
        return 1
    print("all floors met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

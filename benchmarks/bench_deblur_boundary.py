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
PSNR of "extend" / "periodic" on that circular blur; "m", the factor "extend" put on the
library's first-stage regularisation (``deblur_boundary.ri_scale``: 1 = the library's own), and
"noclip", the whole-image PSNR of "extend" with ``clip=False``. "periodic" and the circular
columns are unclipped (``clip=False``): the raw library, as before clipping existed. "extend"
is the default (``clip=True``: the input's value range, here [0, 1] for the crops inside it;
those that noise took below 0 are not clipped), computed as the ``clip=False`` result clipped
to that range, which
``tests/test_deblur_clip.py`` checks is what ``clip=True`` returns. The floors (checked at
the end, exit status 1 if one fails):

- whole image: extend ≥ blurred + 2 dB;
- every border band: extend ≥ blurred (no band worse than the input);
- border bands really improve: the mean band gain of each case ≥ 1 dB, or ≥ half the
  interior gain where BM3D itself gains less (a result that only faded back to the input near
  the border would gain ~0 there).

"before" is "extend" as it was before its first-stage regularisation followed the image's
signal power (the library's α, unclipped; at m = 1 that is the ``clip=False`` result itself).

Run: ``.venv/bin/python benchmarks/bench_deblur_boundary.py`` (about 15 minutes on two idle
cores; ``--quick`` runs two pictures at one noise level; ``--floors`` skips the periodic and
circular runs, which the floors do not need; ``--pictures=moon,text`` and
``--noise=0.005,0.01`` pick cases).
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


def clip_like_the_default(raw: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``clip=True`` of a ``clip=False`` result: [0, 1] for an input inside [0, 1], ≥ 0 for
    another non-negative one, nothing for one with negative values."""
    if z.min() < 0:
        return raw
    return np.clip(raw, 0.0, 1.0 if z.max() <= 1 else None)


def _option(argv: list[str], name: str) -> list[str] | None:
    for a in argv:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1].split(",")
    return None


def _old_extend(bm3d_deblur, deblur_boundary, z, psf, noise):
    """"extend" as it was before the regularisation followed the signal power: ``ri_scale``
    = 1 (the library's α, the margin's completion as before; ``_deblur_stages`` is then the
    library call bit for bit), unclipped."""
    keep = deblur_boundary.ri_scale
    deblur_boundary.ri_scale = lambda *args: 1.0
    try:
        return bm3d_deblur(z, psf, sigma=noise, clip=False)
    finally:
        deblur_boundary.ri_scale = keep


def main(argv: list[str] | None = None) -> int:
    from napari_restore import bm3d_deblur
    from napari_restore.processors import deblur_boundary
    from napari_restore.processors.bm3d import gaussian_psf

    argv = list(argv or [])
    quick = "--quick" in argv
    floors = "--floors" in argv  # only what the floors need: no periodic / circular runs
    pics = pictures()
    if quick:
        pics = {k: pics[k] for k in ("camera", "coins")}
    if _option(argv, "pictures"):
        pics = {k: pics[k] for k in _option(argv, "pictures")}
    noises = (0.01,) if quick else NOISES
    if _option(argv, "noise"):
        noises = tuple(float(v) for v in _option(argv, "noise"))
    failures = []
    rows = []
    t_ext = t_per = 0.0
    print(f"{'case':<26}{'blur':>6}{'periodic':>9}{'before':>14}{'extend':>14} | "
          f"{'bands blurred -> before -> extend (top bottom left right)':<62}| int. gain ext/circ"
          " | circ ext/per |     m | noclip", flush=True)
    for noise in noises:
        for size in PSFS:
            psf = gaussian_psf(size, PSF_SIGMA)
            for name, scene in pics.items():
                clean, z = linear_case(scene, psf, noise)
                # the data are floats around [0, 1]: pass sigma in the image's own units
                t0 = time.perf_counter()
                raw = bm3d_deblur(z, psf, sigma=noise, clip=False)
                t1 = time.perf_counter()
                t_ext += t1 - t0
                ext = clip_like_the_default(raw, z)
                # the working scale of these floats (offset=False): divided by their span
                span = float(z.max() - z.min()) if z.min() < 0 or z.max() > 1 else 1.0
                m = deblur_boundary.extend_for_deblurring(z / span, psf, noise / span)[2]
                # at m = 1 the unclipped result is the old one bit for bit
                old = raw if m == 1.0 else _old_extend(bm3d_deblur, deblur_boundary, z, psf,
                                                       noise)
                per_txt = circ_txt = "-"
                int_circ_txt = "-"
                if not floors:
                    t1 = time.perf_counter()
                    per = bm3d_deblur(z, psf, sigma=noise, boundary="periodic", clip=False)
                    t_per += time.perf_counter() - t1
                    per_txt = f"{psnr(per, clean):.2f}"
                    zc = circular_case(clean, psf, noise)
                    circ_ext = psnr(bm3d_deblur(zc, psf, sigma=noise, clip=False), clean)
                    circ = bm3d_deblur(zc, psf, sigma=noise, boundary="periodic", clip=False)
                    circ_txt = f"{circ_ext:.2f}/{psnr(circ, clean):.2f}"
                    mid = (slice(2 * BAND, -2 * BAND), slice(2 * BAND, -2 * BAND))
                    int_circ_txt = f"{psnr(circ[mid], clean[mid]) - psnr(zc[mid], clean[mid]):+.2f}"
                mid = (slice(2 * BAND, -2 * BAND), slice(2 * BAND, -2 * BAND))
                int_ext = psnr(ext[mid], clean[mid]) - psnr(z[mid], clean[mid])
                b_in, b_old, b_out = bands(z, clean), bands(old, clean), bands(ext, clean)
                gains = {k: b_out[k] - b_in[k] for k in b_in}
                whole_in, whole_old, whole_out = psnr(z, clean), psnr(old, clean), psnr(ext, clean)
                case = f"{name} {size[0]}x{size[1]} n={noise:g}"
                band_txt = " ".join(f"{b_in[k]:.1f}/{b_old[k]:.1f}/{b_out[k]:.1f}" for k in b_in)
                print(f"{case:<26}{whole_in:>6.2f}{per_txt:>9}"
                      f"{whole_old:>7.2f} {whole_old - whole_in:+6.2f}"
                      f"{whole_out:>7.2f} {whole_out - whole_in:+6.2f} | {band_txt:<62}| "
                      f"{int_ext:+.2f}/{int_circ_txt:<11}| {circ_txt:<12} | {m:5.2f} | "
                      f"{psnr(raw, clean):.2f}", flush=True)
                rows.append((case, whole_out - whole_in, min(gains.values()),
                             float(np.mean(list(gains.values()))), whole_old - whole_in,
                             min(b_old[k] - b_in[k] for k in b_in)))
                if whole_out - whole_in < WHOLE_FLOOR:
                    failures.append(f"{case}: whole-image gain {whole_out - whole_in:+.2f} dB "
                                    f"< {WHOLE_FLOOR} (interior gain {int_ext:+.2f} dB; the raw "
                                    f"library on a circular blur gains {int_circ_txt} dB there)")
                for k, g in gains.items():
                    if g < 0:
                        failures.append(f"{case}: {k} band {b_in[k]:.2f} -> {b_out[k]:.2f} dB")
                    if b_out[k] < b_old[k] - 0.05:
                        print(f"  note: {case} {k} band {b_old[k]:.2f} -> {b_out[k]:.2f} dB "
                              "(below the old extend)", flush=True)
                band_floor = min(BAND_MEAN_FLOOR, 0.5 * int_ext)
                if np.mean(list(gains.values())) < band_floor:
                    failures.append(f"{case}: mean band gain {np.mean(list(gains.values())):+.2f}"
                                    f" dB < {band_floor:.2f}")
    gains = np.array([r[1] for r in rows])
    worst_band = np.array([r[2] for r in rows])
    mean_band = np.array([r[3] for r in rows])
    print(f"\n{len(rows)} cases: whole-image gain min {gains.min():+.2f} / median "
          f"{np.median(gains):+.2f} dB (before: min {min(r[4] for r in rows):+.2f}); worst "
          f"band gain min {worst_band.min():+.2f} / median {np.median(worst_band):+.2f} dB "
          f"(before: min {min(r[5] for r in rows):+.2f}); mean band gain min "
          f"{mean_band.min():+.2f} / median {np.median(mean_band):+.2f} dB")
    if t_per:
        print(f"time: extend {t_ext:.1f} s, periodic {t_per:.1f} s (ratio {t_ext / t_per:.2f})")
    else:
        print(f"time: extend {t_ext:.1f} s")
    if failures:
        print("\nBELOW THE FLOOR:")
        for f in failures:
            print("  " + f)
        return 1
    print("all floors met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

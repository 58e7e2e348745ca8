"""Time-lapse denoising against per-frame BM3D: the time-lapse floor of issue 19.

Two sequences made from bundled scikit-image images ("camera", "astronaut" in grey), 12
frames of 128² cut from the centre of the whole image after a per-frame rotation about the
centre (0.2°/frame) and a sub-pixel drift ((0.31, -0.23) px/frame plus a uniform jitter of
±0.15 px), rendered with bicubic interpolation, with a slow brightening of 1.2 %/frame. Noise
of σ = 10, 20, 30 grey levels is added and the frames rounded and clipped to uint8.

Each case runs, in the same process, with σ given (the true σ, in grey levels):

* ``per-frame``  — ``bm3d_denoise`` frame by frame (the baseline);
* ``aligned``    — ``timelapse_denoise`` (default mode: registration + average + BM3D);
* at σ = 20 also ``bm4d`` (BM4D over the stack) and ``aligned, motion="none"`` (the
  average without motion compensation), to show what the registration buys.

Floor: ``aligned`` beats ``per-frame`` by at least 1 dB (PSNR over the whole stack against
the clean frames) in every case. The cost ratio is ``aligned`` time / ``per-frame`` time.

Run: ``.venv/bin/python benchmarks/bench_timelapse.py`` (about 10 minutes on two shared cores).
"""

from __future__ import annotations

import sys
import time

import numpy as np

FRAMES, SIZE = 12, 128
DRIFT = (0.31, -0.23)  # px/frame (rows, cols)
JITTER = 0.15  # px, uniform
ROTATION = 0.2  # degrees/frame
BRIGHTEN = 0.012  # gain per frame
SIGMAS = (10, 20, 30)
IMAGES = ("camera", "astronaut")
FLOOR_DB = 1.0


def sequence(name: str, sigma: float, *, frames: int = FRAMES, size: int = SIZE,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(clean float64 frames in grey levels, noisy uint8 frames) of a slowly moving scene."""
    from skimage import color, data, transform

    src = getattr(data, name)()
    if src.ndim == 3:
        src = color.rgb2gray(src) * 255.0
    src = src.astype(np.float64)
    cy, cx = np.array(src.shape) / 2
    rng = np.random.default_rng(seed)
    clean = []
    for t in range(frames):
        dy = DRIFT[0] * t + rng.uniform(-JITTER, JITTER)
        dx = DRIFT[1] * t + rng.uniform(-JITTER, JITTER)
        tf = (transform.AffineTransform(translation=(-cx, -cy))
              + transform.AffineTransform(rotation=np.deg2rad(ROTATION * t))
              + transform.AffineTransform(translation=(cx + dx, cy + dy)))
        w = transform.warp(src, tf, order=3, preserve_range=True, mode="reflect")
        y0, x0 = int(cy - size / 2), int(cx - size / 2)
        clean.append(w[y0:y0 + size, x0:x0 + size] * (1 + BRIGHTEN * t))
    clean_arr = np.clip(np.stack(clean), 0, 255)
    noisy = np.clip(np.round(clean_arr + rng.normal(0, sigma, clean_arr.shape)), 0, 255)
    return clean_arr, noisy.astype(np.uint8)


def psnr(ref: np.ndarray, x: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((np.asarray(x, np.float64) - ref) ** 2)))


def timed(func):
    t0 = time.perf_counter()
    out = func()
    return out, time.perf_counter() - t0


def main() -> int:
    from napari_restore import bm3d_denoise
    from napari_restore.processors.timelapse import TIMELAPSE_DENOISE

    print(f"{FRAMES} frames of {SIZE}², rotation {ROTATION}°/frame, drift {DRIFT} px/frame "
          f"± {JITTER}, brightening {BRIGHTEN * 100:.1f} %/frame; uint8")
    print(f"{'image':10s} {'σ':>3s} {'noisy':>6s} {'per-frame':>9s} {'aligned':>8s} "
          f"{'gain':>5s} {'t_pf s':>7s} {'t_al s':>7s} {'cost':>5s}  extra")
    ok = True
    ratios = []
    for name in IMAGES:
        for sigma in SIGMAS:
            clean, noisy = sequence(name, sigma)
            pf, t_pf = timed(lambda n=noisy, s=sigma: bm3d_denoise(n, s))
            res: dict = {}
            al, t_al = timed(lambda n=noisy, s=sigma, r=res: TIMELAPSE_DENOISE.apply(
                n, sigma=s, resolved=r))
            gain = psnr(clean, al) - psnr(clean, pf)
            ratios.append(t_al / t_pf)
            extra = f"frames used {sorted({int(n) for n in np.ravel(res.get('frames_used', []))})}"
            if sigma == 20:
                b4, t_b4 = timed(lambda n=noisy, s=sigma: TIMELAPSE_DENOISE.apply(
                    n, sigma=s, mode="bm4d"))
                nm, t_nm = timed(lambda n=noisy, s=sigma: TIMELAPSE_DENOISE.apply(
                    n, sigma=s, motion="none"))
                extra += (f"; bm4d {psnr(clean, b4):.2f} dB ({t_b4:.1f} s); "
                          f"aligned motion=none {psnr(clean, nm):.2f} dB ({t_nm:.1f} s)")
            ok &= gain >= FLOOR_DB
            print(f"{name:10s} {sigma:3d} {psnr(clean, noisy):6.2f} {psnr(clean, pf):9.2f} "
                  f"{psnr(clean, al):8.2f} {gain:+5.2f} {t_pf:7.1f} {t_al:7.1f} "
                  f"{t_al / t_pf:5.2f}  {extra}", flush=True)
    print(f"cost ratio aligned / per-frame BM3D: {min(ratios):.2f}–{max(ratios):.2f}")
    print(f"floor (aligned ≥ per-frame + {FLOOR_DB} dB in every case): "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

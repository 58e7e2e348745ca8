"""AV1 film-grain benchmark and floor figures (printed; nothing asserted).

1. Speed: the AV1 synthesis and its application (``apply_av1_grain``: templates, 32×32
   blocks, overlap blending, scaling, clipping) on a 3840×2160 8-bit 4:2:0 frame with luma
   and chroma grain, against drawing as many samples (3840·2160·1.5) with
   ``numpy.random.default_rng().standard_normal(n, dtype=np.float32)`` in the same run
   (target ≤ 3×).
2. With ``aomenc``/``aomdec`` on PATH (aom-tools): bit-exactness against the reference
   decoder on a larger frame, and the statistics of the decoder's grain for tables exported
   from profiles measured on Gaussian-filtered grain of σ_c 0.6–3 px (8 frames pooled, and
   a single frame: AV1 draws a frame's grain from one 64×64 template), with their spread
   over 8 other table seeds (our synthesis, bit-exact with the decoder).

Run: ``.venv/bin/python benchmarks/bench_av1.py`` (``--figure docs/images/av1_film_grain.png``
also draws the docs page's figure from an encode).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_of  # noqa: E402


def speed() -> None:
    from napari_restore import apply_av1_grain
    from napari_restore.processors import grain_av1 as A

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from test_av1_table import LIBAOM

    params = A.parse_table(LIBAOM).first()  # luma + both chroma planes, lag 3, overlap
    h, w = 2160, 3840
    rng = np.random.default_rng(0)
    y = rng.integers(0, 256, (h, w), dtype=np.uint8)
    u = rng.integers(0, 256, (h // 2, w // 2), dtype=np.uint8)
    v = rng.integers(0, 256, (h // 2, w // 2), dtype=np.uint8)
    n = y.size + u.size + v.size
    apply_av1_grain(y[:64, :64], u[:32, :32], v[:32, :32], params)  # warm-up (register cycle)
    t_av1 = best_of(lambda: apply_av1_grain(y, u, v, params))
    t_rng = best_of(lambda: np.random.default_rng().standard_normal(n, dtype=np.float32))
    print(f"AV1 synthesis + application, 3840x2160 4:2:0: {t_av1:.3f} s")
    print(f"standard_normal({n}, float32):           {t_rng:.3f} s")
    print(f"ratio {t_av1 / t_rng:.2f}x (target <= 3x)")


def codec_figures() -> None:
    if not (shutil.which("aomenc") and shutil.which("aomdec")):
        print("aomenc/aomdec not found (apt-get install aom-tools): codec figures skipped")
        return
    from scipy import ndimage

    from napari_restore import analyze_grain, apply_av1_grain
    from napari_restore.processors import grain_av1 as A

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    import test_av1_codec as T
    from test_av1_table import LIBAOM

    tmp = Path(tempfile.mkdtemp())
    (tmp / "lib.tbl").write_text(LIBAOM)
    w, h = 640, 360
    (g,), (c,) = T.codec(tmp, [T.clean_frame(w, h)], tmp / "lib.tbl", w, h)
    ours = apply_av1_grain(*c, tmp / "lib.tbl")
    diff = [int(np.count_nonzero(a != b)) for a, b in zip(ours, g)]
    print(f"bit-exactness vs aomdec, {w}x{h} colour table: differing samples Y/U/V = {diff}")
    n = 256
    base = np.tile(np.linspace(0.2, 0.8, n), (n, 1))
    y = np.rint(base * 255).astype(np.uint8)
    u = np.full((n // 2, n // 2), 128, np.uint8)
    print("grain of the decoder vs the measured profile (Gaussian-filtered grain, 256x256):")
    print("  σ_c   size(meas) size(dec,8fr)  err   1 frame | NLF max err | spectrum corr 8fr / 1fr"
          " | 8 other seeds (our bit-exact synthesis): size err mean ± sd, NLF max, corr min")
    for sig_c in (0.6, 0.8, 1.0, 1.3, 1.6, 2.0, 2.5, 3.0):
        rng = np.random.default_rng(3)
        gr = ndimage.gaussian_filter(rng.standard_normal((n, n)), sig_c)
        gr /= gr.std()
        scan = np.clip(np.rint((base + (0.012 + 0.02 * base) * gr) * 255), 0, 255)
        prof = analyze_grain(scan.astype(np.uint8))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prof.to_av1_table(tmp / "m.tbl")
        grained, clean = T.codec(tmp, [(y, u, u)] * 8, tmp / "m.tbl", n, n)
        mos = np.block([[f[0] for f in grained[:4]], [f[0] for f in grained[4:]]])
        pla = np.block([[f[0] for f in clean[:4]], [f[0] for f in clean[4:]]])
        got = analyze_grain(mos, denoised=pla)
        one = analyze_grain(grained[0][0], denoised=clean[0][0])
        errs = [float(got.sigma_at(i)) / s - 1 for i, s, k in
                zip(prof.nlf_intensity, prof.nlf_sigma[0], prof.nlf_count) if k >= 4]
        corr = np.corrcoef(prof.spectrum_power, got.spectrum_power)[0, 1]
        corr1 = np.corrcoef(prof.spectrum_power, one.spectrum_power)[0, 1]
        # the spread over table seeds (8 frames each), with our synthesis (bit-exact)
        params = A.read_table(tmp / "m.tbl").first()
        sizes, nlfs, corrs = [], [], []
        for seed in range(1000, 60000, 7400):
            p = dataclasses.replace(params, random_seed=seed)
            fr = [apply_av1_grain(y, u, u, p, frame=k)[0] for k in range(8)]
            o = analyze_grain(np.block([fr[:4], fr[4:]]), denoised=np.block([[y] * 4] * 2))
            sizes.append(o.grain_size_px / prof.grain_size_px - 1)
            nlfs.append(max(abs(float(o.sigma_at(i)) / s - 1) for i, s, k in
                            zip(prof.nlf_intensity, prof.nlf_sigma[0], prof.nlf_count) if k >= 4))
            corrs.append(np.corrcoef(prof.spectrum_power, o.spectrum_power)[0, 1])
        print(f"  {sig_c:.1f}   {prof.grain_size_px:8.3f}   {got.grain_size_px:8.3f}   "
              f"{got.grain_size_px / prof.grain_size_px - 1:+6.1%}  {one.grain_size_px:6.3f} | "
              f"{max(map(abs, errs)):6.1%}      | {corr:.4f} / {corr1:.4f} | "
              f"{np.mean(sizes):+.1%} ± {np.std(sizes):.1%}, {max(nlfs):.1%}, {min(corrs):.3f}",
              flush=True)


def figure(path: str) -> None:
    """The docs figure: a measured profile's table through aomenc/aomdec — the decoder's grain,
    ours on the same decoded frame, their difference, and NLF and spectrum against the
    profile's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import ndimage

    from napari_restore import analyze_grain, apply_av1_grain

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    import test_av1_codec as T

    tmp = Path(tempfile.mkdtemp())
    n = 256
    base = np.tile(np.linspace(0.2, 0.8, n), (n, 1))
    rng = np.random.default_rng(3)
    gr = ndimage.gaussian_filter(rng.standard_normal((n, n)), 0.8)
    gr /= gr.std()
    scan = np.clip(np.rint((base + (0.012 + 0.02 * base) * gr) * 255), 0, 255).astype(np.uint8)
    prof = analyze_grain(scan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof.to_av1_table(tmp / "m.tbl")
    y = np.rint(base * 255).astype(np.uint8)
    u = np.full((n // 2, n // 2), 128, np.uint8)
    grained, clean = T.codec(tmp, [(y, u, u)] * 8, tmp / "m.tbl", n, n)
    ours = apply_av1_grain(*clean[0], tmp / "m.tbl")[0]
    dec = grained[0][0]
    mos = np.block([[f[0] for f in grained[:4]], [f[0] for f in grained[4:]]])
    pla = np.block([[f[0] for f in clean[:4]], [f[0] for f in clean[4:]]])
    got = analyze_grain(mos, denoised=pla)
    fig, ax = plt.subplots(1, 5, figsize=(15, 3.2), layout="constrained")
    crop = (slice(64, 192), slice(64, 192))
    for a, img, title in ((ax[0], scan[crop], "measured scan (input)"),
                          (ax[1], dec[crop], "aomdec: decoded with grain"),
                          (ax[2], ours[crop], "ours on aomdec --skip-film-grain")):
        a.imshow(img, cmap="gray", vmin=0, vmax=255)
        a.set_title(title, fontsize=9)
        a.axis("off")
    ax[2].text(2, 124, f"differs in {int(np.count_nonzero(ours != dec))} of {dec.size} samples",
               color="yellow", fontsize=8)
    x = np.asarray(prof.nlf_intensity)
    ax[3].plot(x, np.asarray(prof.nlf_sigma[0]) * 255, "o-", label="profile (measured)")
    ax[3].plot(x, got.sigma_at(x) * 255, "s--", label="decoder's grain")
    ax[3].set_xlabel("intensity", fontsize=8)
    ax[3].set_ylabel("grain σ (grey levels)", fontsize=8)
    ax[3].set_title("noise-level function", fontsize=9)
    ax[3].legend(fontsize=7)
    f = np.asarray(prof.spectrum_freq)
    ax[4].semilogy(f[1:], np.asarray(prof.spectrum_power)[1:], "o-", label="profile")
    ax[4].semilogy(f[1:], np.asarray(got.spectrum_power)[1:], "s--", label="decoder's grain")
    corr = np.corrcoef(prof.spectrum_power, got.spectrum_power)[0, 1]
    ax[4].set_title(f"power spectrum: corr {corr:.3f}\ngrain size {prof.grain_size_px:.2f} → "
                    f"{got.grain_size_px:.2f} px", fontsize=9)
    ax[4].set_xlabel("cycles / pixel", fontsize=8)
    ax[4].legend(fontsize=7)
    for a in ax[3:]:
        a.tick_params(labelsize=7)
    fig.savefig(path, dpi=90)
    print(f"figure written to {path}")


def main() -> None:
    if "--figure" in sys.argv:
        figure(sys.argv[sys.argv.index("--figure") + 1])
        return
    speed()
    codec_figures()


if __name__ == "__main__":
    main()

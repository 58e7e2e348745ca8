"""Sample data generated from images that ship with scikit-image (no downloads)."""

from __future__ import annotations

from typing import Any

import numpy as np

NOISE_SEED = 0


def _noisy_uint8(clean: np.ndarray, sigma255: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = clean.astype(np.float64) + rng.normal(0.0, sigma255, clean.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def camera(sigma255: float = 25.0, seed: int = NOISE_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) 512×512 uint8 camera, Gaussian noise of ``sigma255`` grey levels."""
    from skimage import data

    clean = data.camera()
    return clean, _noisy_uint8(clean, sigma255, seed)


def astronaut(sigma255: float = 20.0, seed: int = NOISE_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) 512×512×3 uint8 colour image."""
    from skimage import data

    clean = data.astronaut()
    return clean, _noisy_uint8(clean, sigma255, seed)


def blobs_volume(size: int = 64, sigma: float = 0.1, seed: int = NOISE_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) float32 3-D blob volume with values 0.2–0.8 plus Gaussian noise."""
    from scipy import ndimage
    from skimage.data import binary_blobs

    blobs = binary_blobs(size, n_dim=3, volume_fraction=0.3, rng=seed).astype(np.float64)
    clean = 0.2 + 0.6 * ndimage.gaussian_filter(blobs, 1.0)
    rng = np.random.default_rng(seed)
    noisy = clean + rng.normal(0.0, sigma, clean.shape)
    return clean.astype(np.float32), noisy.astype(np.float32)


def film_grain(grain_sigma_px: float = 1.2, amplitude: float = 0.06,
               seed: int = NOISE_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(clean, grainy) uint8 RGB photo with synthetic monochrome film grain.

    Grain is white noise blurred by a Gaussian of ``grain_sigma_px`` pixels, normalised to unit
    standard deviation, scaled by an intensity-dependent amplitude (strongest in the mid-tones,
    as in film) and added to every channel.
    """
    from scipy import ndimage
    from skimage import data

    clean = data.coffee()
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(clean.shape[:2]), grain_sigma_px)
    field /= field.std()
    lum = clean.astype(np.float64).mean(axis=-1) / 255.0
    amp = amplitude * (0.4 + 2.4 * lum * (1.0 - lum))
    grainy = clean / 255.0 + (amp * field)[..., None]
    return clean, np.clip(np.rint(grainy * 255.0), 0, 255).astype(np.uint8)


#: The fluorescence-like sample's camera: photons at the brightest object, gain (counts per
#: photon), dark level (counts) and read noise (counts): var = GAIN·E + READ² − GAIN·OFFSET.
FLUO_PEAK, FLUO_GAIN, FLUO_OFFSET, FLUO_READ = 20.0, 4.0, 100.0, 3.0


def fluorescence_clean(size: int = 256, seed: int = 0) -> np.ndarray:
    """Sparse bright objects on a dark background, in [0.03, 1]: scikit-image's
    ``binary_blobs`` (15 % of the area, objects about a tenth of the side), blurred."""
    from scipy import ndimage
    from skimage.data import binary_blobs

    blobs = binary_blobs(size, blob_size_fraction=0.1, volume_fraction=0.15,
                         rng=seed).astype(np.float64)
    blobs = ndimage.gaussian_filter(blobs, 1.5)
    return 0.03 + 0.97 * blobs / blobs.max()


def beads_clean(size: int = 128, count: int = 25, seed: int = 1) -> np.ndarray:
    """Point sources of random brightness (0.3–1) blurred by a Gaussian PSF of σ 2 px, in
    [0, 1]: puncta a few pixels wide, which leave no smooth window on them."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    img = np.zeros((size, size))
    for _ in range(count):
        y, x = rng.uniform(0, size, 2)
        img[int(y), int(x)] = rng.uniform(0.3, 1.0)
    img = ndimage.gaussian_filter(img, 2.0, mode="constant")
    return img / img.max()


def filaments_clean(size: int = 128, count: int = 8, seed: int = 1) -> np.ndarray:
    """Straight lines of random brightness (0.4–1) at random angles blurred by a Gaussian PSF
    of σ 1.2 px, in [0, 1]: filaments (microtubules, actin) about 3 pixels wide."""
    from scipy import ndimage
    from skimage import draw

    rng = np.random.default_rng(seed)
    img = np.zeros((size, size))
    for _ in range(count):
        r0, c0, r1, c1 = rng.integers(0, size, 4)
        rr, cc = draw.line(int(r0), int(c0), int(r1), int(c1))
        img[rr, cc] = rng.uniform(0.4, 1.0)
    img = ndimage.gaussian_filter(img, 1.2)
    return img / img.max()


def blobs_clean(size: int = 128, seed: int = 1) -> np.ndarray:
    """scikit-image's binary blobs (30 % of the area) blurred by σ 1.5 px, in [0, 1]: cells or
    nuclei with flat interiors and sharp edges."""
    from scipy import ndimage
    from skimage import data

    img = data.binary_blobs(size, blob_size_fraction=0.1, volume_fraction=0.3, rng=seed)
    img = ndimage.gaussian_filter(img.astype(np.float64), 1.5)
    return (img - img.min()) / (img.max() - img.min())


def poisson_gaussian(clean: np.ndarray, *, peak: float, gain: float, read: float,
                     offset: float, seed: int = NOISE_SEED,
                     dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """(expected counts, noisy counts) of a camera seeing ``clean`` (in [0, 1], 1 = ``peak``
    photons): ``gain``·Poisson + ``offset`` + N(0, ``read``²). Integer ``dtype`` rounds and
    clips to its range (keep the offset a few read-noise σ above 0 to avoid clipping)."""
    rng = np.random.default_rng(seed)
    lam = np.asarray(clean, dtype=np.float64) * float(peak)
    noisy = gain * rng.poisson(lam) + offset + rng.normal(0.0, read, lam.shape)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        noisy = np.clip(np.rint(noisy), info.min, info.max)
    return gain * lam + offset, noisy.astype(dtype)


def fluorescence(size: int = 256, seed: int = NOISE_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) uint16 fluorescence-like image with Poisson–Gaussian noise: peak
    ``FLUO_PEAK`` photons, gain ``FLUO_GAIN``, offset ``FLUO_OFFSET``, read noise ``FLUO_READ``."""
    expected, noisy = poisson_gaussian(fluorescence_clean(size, seed), peak=FLUO_PEAK,
                                       gain=FLUO_GAIN, read=FLUO_READ, offset=FLUO_OFFSET,
                                       seed=seed, dtype=np.uint16)
    return np.rint(expected).astype(np.uint16), noisy


SAMPLES = {
    "camera": (camera, "camera"),
    "astronaut": (astronaut, "astronaut"),
    "volume": (blobs_volume, "blobs volume"),
    "grain": (film_grain, "coffee film grain"),
    "fluorescence": (fluorescence, "fluorescence"),
}


def _layers(key: str) -> list[tuple[np.ndarray, dict[str, Any], str]]:
    func, label = SAMPLES[key]
    clean, noisy = func()
    rgb = clean.ndim == 3 and clean.shape[-1] == 3 and key != "volume"
    return [
        (clean, {"name": f"{label} (clean)", "visible": False, "rgb": rgb}, "image"),
        (noisy, {"name": f"{label} (noisy)", "rgb": rgb}, "image"),
    ]


def sample_camera() -> list:
    """npe2 sample: noisy greyscale camera (σ = 25 grey levels) and its clean reference."""
    return _layers("camera")


def sample_astronaut() -> list:
    """npe2 sample: noisy colour astronaut (σ = 20 grey levels) and its clean reference."""
    return _layers("astronaut")


def sample_volume() -> list:
    """npe2 sample: noisy 64³ blob volume (σ = 0.1) and its clean reference."""
    return _layers("volume")


def sample_grain() -> list:
    """npe2 sample: coffee photo with synthetic film grain and its clean reference."""
    return _layers("grain")


def sample_fluorescence() -> list:
    """npe2 sample: fluorescence-like uint16 image with Poisson–Gaussian noise (peak 20
    photons, gain 4 counts/photon, dark level 100 counts, read noise 3 counts)."""
    return _layers("fluorescence")

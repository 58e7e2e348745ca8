"""The colour spaces of LB-CLAHE: which channel is equalised and how colour is put back.

Every function takes a plane as the array boundary hands it over: a working float32 plane in
[0, 1], or (the 8-bit fast path, ``native_dtypes=("uint8",)``) the caller's uint8 plane.
``equalise`` maps one 2-D channel (float32 in [0, 1], or uint8 levels ``b / 255``) to a float32
channel in [0, 1]. Results are float32 working planes, or uint8 for uint8 input.

* ``lab``: CIE L* is equalised; a* and b* are kept (hue and chroma preserved). uint8 planes
  use OpenCV's 8-bit L*a*b* conversion, which is what the 8-bit reference pipeline does (L*
  quantised to 256 levels, the input's own precision); other dtypes use the float conversion.
* ``hsv``: V = max(R, G, B) is equalised; hue and saturation are kept, which is exactly a
  per-pixel gain ``V' / V`` on all three channels, so no colour conversion (and no 8-bit hue
  quantisation) is needed.
* ``rgb``: each channel is equalised on its own (may shift colours).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .._parallel import for_strips, strip_rows

Equalise = Callable[[np.ndarray], np.ndarray]


def to_u8(x: np.ndarray) -> np.ndarray:
    """float32 channel(s) in [0, 1] -> uint8, rounded to nearest and clipped."""
    out = np.empty(x.shape, np.uint8)

    def strip(r0: int, r1: int) -> None:
        t = np.multiply(x[r0:r1], np.float32(255.0))
        t += np.float32(0.5)
        np.clip(t, 0.0, 255.0, out=t)
        out[r0:r1] = t  # truncation after + 0.5: round half up

    for_strips(strip, x.shape[0], strip_rows(x[0].size))
    return out


def _finish(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """float32 result in [0, 1] as the plane's kind: uint8 for uint8 planes."""
    if like.dtype == np.uint8:
        return to_u8(out)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def grey(x: np.ndarray, equalise: Equalise) -> np.ndarray:
    return _finish(equalise(x), x)


def lab(x: np.ndarray, equalise: Equalise) -> np.ndarray:
    import cv2

    code_in, code_out = cv2.COLOR_RGB2LAB, cv2.COLOR_LAB2RGB
    if x.dtype == np.uint8:  # L* as round(255 L / 100)
        conv = cv2.cvtColor(x, code_in)
        cv2.insertChannel(to_u8(equalise(cv2.extractChannel(conv, 0))), conv, 0)
        return cv2.cvtColor(conv, code_out)
    conv = cv2.cvtColor(x, code_in)  # float: L in [0, 100]
    L = np.multiply(conv[..., 0], np.float32(0.01))
    conv[..., 0] = np.clip(equalise(L), 0.0, 1.0) * np.float32(100.0)
    return _finish(cv2.cvtColor(conv, code_out), x)


def hsv(x: np.ndarray, equalise: Equalise) -> np.ndarray:
    import cv2

    r, g, b = (cv2.extractChannel(x, c) for c in range(3))
    v = cv2.max(cv2.max(r, g), b)
    v_new = equalise(v)
    top = np.float32(255.0 if x.dtype == np.uint8 else 1.0)
    out = np.empty(x.shape, x.dtype)

    def strip(r0: int, r1: int) -> None:
        vn = np.clip(v_new[r0:r1], 0.0, 1.0) * top  # V' in the plane's units
        vo = v[r0:r1].astype(np.float32)
        black = vo == 0  # no hue: V' grey
        gain = np.divide(vn, vo, out=np.zeros_like(vn), where=~black)
        res = x[r0:r1] * gain[..., None]  # max channel becomes V': no overflow
        res[black] = vn[black][:, None]
        if x.dtype == np.uint8:
            res += np.float32(0.5)
            np.minimum(res, top, out=res)
        else:
            np.clip(res, 0.0, 1.0, out=res)
        out[r0:r1] = res

    for_strips(strip, x.shape[0], strip_rows(x.shape[1] * 3))
    return out


def rgb(x: np.ndarray, equalise: Equalise) -> np.ndarray:
    import cv2

    chans = [_finish(equalise(cv2.extractChannel(x, c)), x) for c in range(3)]
    return cv2.merge(chans)


COLOUR = {"lab": lab, "hsv": hsv, "rgb": rgb}

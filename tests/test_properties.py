"""Property-based bad-input matrix over the public functions (hypothesis).

For every generated case exactly one of two outcomes holds:

(a) a result of the documented shape and dtype, finite, with the input's bytes unchanged; or
(b) a ``ValueError``/``TypeError`` whose message names the offending parameter.

Anything else — ``cv2.error``, ``IndexError``, ``AttributeError``, a library traceback — fails.
Processors backed by native code that can abort the process (bm3d/bm4d, OpenCV) run their
cases in a subprocess, so a crash is reported as a failure instead of killing the suite.
``make test`` runs a modest number of examples; ``make test-deep`` (``NAPARI_RESTORE_DEEP=1``)
runs many more.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import napari_restore as nr

DEEP = bool(os.environ.get("NAPARI_RESTORE_DEEP"))
EXAMPLES = int(os.environ.get("NAPARI_RESTORE_EXAMPLES", 400 if DEEP else 30))

GOOD_DTYPES = ["uint8", "uint16", "int16", "float16", "float32", "float64"]
BAD_DTYPES = ["bool", "complex64"]
KINDS = ["2d", "rgb", "rgba", "3d", "4d"]
LAYOUTS = ["C", "F", "strided", "negative", "readonly"]
VALUES = ["random"] * 4 + ["constant", "extremes", "tiny", "nan", "inf"]

# Cheap parameters so each call stays fast; everything else keeps its default.
FAST: dict[str, dict[str, Any]] = {
    "deep_image_prior": {"iterations": 3, "channels": 8, "depth": 2, "every": 1, "window": 2,
                         "patience": 2},
    "restore_film_grain": {},
}


def _values(kind: str, dtype: np.dtype, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        lo, hi = int(info.min), int(info.max)
    elif dtype.kind == "f":
        lo, hi = 0.0, 1.0
    else:
        lo, hi = 0, 1
    if kind == "constant":
        x = np.full(shape, (lo + hi) / 2)
    elif kind == "extremes":
        x = np.where(rng.random(shape) < 0.5, lo, hi)
    elif kind == "tiny" and dtype.kind == "f":
        x = 0.5 + 1e-4 * rng.random(shape)
    else:
        x = lo + (hi - lo) * rng.random(shape)
        if dtype.kind == "f" and rng.random() < 0.5:
            x = x * 300.0 - 100.0  # floats outside [0, 1]
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(dtype) if dtype.kind != "c" else (x + 1j * x).astype(dtype)


@st.composite
def cases(draw: Any) -> dict[str, Any]:
    # weighted towards valid inputs, so that most cases exercise the processors themselves
    dtype = np.dtype(draw(st.sampled_from(GOOD_DTYPES * 3 + BAD_DTYPES)))
    kind = draw(st.sampled_from(KINDS))
    h = draw(st.one_of(st.integers(1, 7), st.integers(8, 64), st.integers(8, 64)))
    w = draw(st.one_of(st.integers(1, 7), st.integers(8, 64), st.integers(8, 64)))
    shape = {"2d": (h, w), "rgb": (h, w, 3), "rgba": (h, w, 4), "3d": (2, h, w),
             "4d": (2, 2, h, w)}[kind]
    values = draw(st.sampled_from(VALUES))
    layout = draw(st.sampled_from(LAYOUTS))
    seed = draw(st.integers(0, 2**16))
    return {"dtype": dtype.name, "kind": kind, "shape": shape, "values": values,
            "layout": layout, "seed": seed}


def build(case: dict[str, Any]) -> tuple[np.ndarray, int | None]:
    rng = np.random.default_rng(case["seed"])
    dtype = np.dtype(case["dtype"])
    shape = tuple(case["shape"])
    layout = case["layout"]
    base_shape = tuple(2 * s for s in shape[:2]) + shape[2:] if layout == "strided" else shape
    arr = _values(case["values"], dtype, base_shape, rng)
    if layout == "F":
        arr = np.asfortranarray(arr)
    elif layout == "strided":
        arr = arr[::2, ::2]
    elif layout == "negative":
        arr = arr[::-1, ::-1]
    if case["values"] in ("nan", "inf") and dtype.kind in "fc":
        # into the final view (a strided view skips most of its base array)
        arr[np.unravel_index(rng.integers(arr.size), arr.shape)] = (
            np.nan if case["values"] == "nan" else np.inf)
    if layout == "readonly":
        arr.flags.writeable = False
    cax = -1 if case["kind"] in ("rgb", "rgba") else None
    return arr, cax


def must_reject(case: dict[str, Any]) -> bool:
    return case["dtype"] in BAD_DTYPES or (
        case["values"] in ("nan", "inf") and np.dtype(case["dtype"]).kind == "f")


def check_outcome(name: str, call: Callable[[], Any], image: np.ndarray, case: dict[str, Any],
                  expect: Callable[[Any], None], names: tuple[str, ...]) -> str:
    """Run ``call`` and assert that exactly one of the two allowed outcomes holds."""
    before = np.array(image, copy=True)
    try:
        out = call()
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        assert any(n in msg for n in names), f"{name}: error does not name a parameter: {msg!r} ({case})"
        np.testing.assert_array_equal(image, before)
        return "rejected"
    assert not must_reject(case), f"{name} accepted invalid input {case}"
    expect(out)
    np.testing.assert_array_equal(image, before)  # input never modified
    return "result"


def _same_array(image: np.ndarray) -> Callable[[Any], None]:
    def expect(out: Any) -> None:
        outs = out if isinstance(out, tuple) else (out,)
        for o in outs:
            assert isinstance(o, np.ndarray) and o.shape == image.shape, (o.shape, image.shape)
            assert np.isfinite(o).all()
        assert outs[0].dtype == image.dtype
    return expect


def spec_call(name: str, image: np.ndarray, cax: int | None) -> Callable[[], Any]:
    spec = nr.get_processor(name)
    return lambda: spec.apply(image, channel_axis=cax, **FAST.get(name, {}))


def error_names(name: str) -> tuple[str, ...]:
    spec = nr.get_processor(name)
    return ("image", "channel_axis", "volume", *(p.name for p in spec.params))


def run_spec_case(name: str, case: dict[str, Any]) -> str:
    image, cax = build(case)
    return check_outcome(name, spec_call(name, image, cax), image, case, _same_array(image),
                         error_names(name))


# Processors whose native core may abort the process run in a subprocess; the others in-process.
NATIVE = {"bm3d_denoise", "bm3d_deblur", "bm4d_denoise"}
IN_PROCESS = sorted(set(nr.REGISTRY) - NATIVE)


@pytest.mark.parametrize("name", IN_PROCESS)
def test_registry_processor_matrix(name):
    outcomes: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not DEEP,
              suppress_health_check=list(HealthCheck))
    @given(cases())
    def run(case):
        o = run_spec_case(name, case)
        tally(outcomes, case, o)

    run()
    assert outcomes.get("result", 0) > 0, outcomes  # the matrix really exercises the processor
    _record(name, outcomes)


CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[3])
import test_properties as tp
from hypothesis import HealthCheck, given, settings
name, examples = sys.argv[1], int(sys.argv[2])
outcomes = {}
@settings(max_examples=examples, deadline=None, derandomize=not tp.DEEP,
          suppress_health_check=list(HealthCheck), database=None)
@given(tp.cases())
def run(case):
    o = tp.run_spec_case(name, case)
    tp.tally(outcomes, case, o)
run()
print("OUTCOMES " + json.dumps(tp.counts(outcomes)))
"""


@pytest.mark.parametrize("name", sorted(NATIVE & set(nr.REGISTRY)))
def test_native_processor_matrix_in_subprocess(name):
    examples = max(8, EXAMPLES // 2)
    proc = subprocess.run([sys.executable, "-c", CHILD, name, str(examples), str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("OUTCOMES ")][-1]
    outcomes = json.loads(line.split(" ", 1)[1])
    assert outcomes.get("result", 0) > 0, outcomes
    _record(name, outcomes)


def tally(outcomes: dict[str, Any], case: dict[str, Any], outcome: str) -> None:
    """Count an outcome, and remember the case to count distinct cases."""
    outcomes[outcome] = outcomes.get(outcome, 0) + 1
    outcomes.setdefault("_seen", set()).add(json.dumps(case, sort_keys=True))


def counts(outcomes: dict[str, Any]) -> dict[str, int]:
    """Outcome counts plus ``distinct``: how many different cases were generated."""
    out = {k: v for k, v in outcomes.items() if k != "_seen"}
    if "_seen" in outcomes:  # (a child process's counts arrive already counted)
        out["distinct"] = len(outcomes["_seen"])
    return out


def _record(name: str, outcomes: dict[str, Any]) -> None:
    """Append the per-function case counts to a report (for the issue note)."""
    path = os.environ.get("NAPARI_RESTORE_PROPERTY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"function": name, **counts(outcomes)}) + "\n")


# -- public functions outside the registry ---------------------------------------------------

def _expect_profile(out: Any) -> None:
    assert isinstance(out, nr.GrainProfile)
    json.loads(out.to_json()) if hasattr(out, "to_json") else None


def _expect_grain_type(out: Any) -> None:
    assert out in {"minimal_grain", "fine_film_grain", "medium_film_grain", "coarse_film_grain",
                   "digital_noise", "simulated_regular"}


def _expect_clahe_params(out: Any) -> None:
    clip, (r, c) = out
    assert np.isfinite(clip) and clip > 0 and r >= 1 and c >= 1


def _float_same_shape(image: np.ndarray) -> Callable[[Any], None]:
    def expect(out: Any) -> None:
        assert isinstance(out, np.ndarray) and out.shape == image.shape and np.isfinite(out).all()
    return expect


def _drain(gen: Any) -> Any:
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


FUNCTIONS: dict[str, Callable[[np.ndarray, int | None], tuple[Callable[[], Any], Callable]]] = {
    "analyze_grain": lambda im, cax: (lambda: nr.analyze_grain(im, channel_axis=cax), _expect_profile),
    "detect_grain_type": lambda im, cax: (lambda: nr.detect_grain_type(im, channel_axis=cax),
                                          _expect_grain_type),
    "extract_grain": lambda im, cax: (lambda: nr.extract_grain(im, denoiser="wavelet", channel_axis=cax),
                                      _float_same_shape(im)),
    "preserve_grain": lambda im, cax: (lambda: nr.preserve_grain(im, im[::-1] if im.ndim else im,
                                                                 channel_axis=cax), _same_array(im)),
    "predict_clahe_params": lambda im, cax: (lambda: nr.predict_clahe_params(im, channel_axis=cax),
                                             _expect_clahe_params),
    "iter_deep_image_prior": lambda im, cax: (
        lambda: _drain(nr.iter_deep_image_prior(im, channel_axis=cax, **FAST["deep_image_prior"])),
        _same_array(im)),
    "apply_recipe": lambda im, cax: (
        lambda: nr.apply_recipe(nr.Recipe("classic_denoise", {"method": "tv_chambolle"}, channel_axis=cax), im),
        _same_array(im)),
}
NAMES = ("image", "channel_axis", "denoised", "grain", "shape", "profile", "volume")


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_public_function_matrix(name):
    outcomes: dict[str, int] = {}

    @settings(max_examples=max(6, EXAMPLES // 2), deadline=None, derandomize=not DEEP,
              suppress_health_check=list(HealthCheck))
    @given(cases())
    def run(case):
        image, cax = build(case)
        call, expect = FUNCTIONS[name](image, cax)
        o = check_outcome(name, call, image, case, expect, NAMES)
        tally(outcomes, case, o)

    run()
    assert outcomes.get("result", 0) > 0 or outcomes.get("rejected", 0) > 0, outcomes
    _record(name, outcomes)


def test_synthesize_grain_matrix():
    """synthesize_grain takes a shape and a profile: bad shapes / profiles are rejected clearly."""
    from napari_restore._sample_data import film_grain

    _, grainy = film_grain()
    profile = nr.analyze_grain(grainy[:128, :128], channel_axis=-1)
    out = nr.synthesize_grain((32, 40, 3), profile, channel_axis=-1, seed=1)
    assert out.shape == (32, 40, 3) and np.isfinite(out).all()
    for bad, exc in [((0, 5, 3), ValueError), ((5,), ValueError), ("abc", TypeError),
                     ((32, 40, 3), None)]:
        if exc is None:
            with pytest.raises((ValueError, TypeError), match="profile"):
                nr.synthesize_grain(bad, {"not": "a profile"}, channel_axis=-1)
            continue
        with pytest.raises((ValueError, TypeError), match="shape"):
            nr.synthesize_grain(bad, profile, channel_axis=-1)

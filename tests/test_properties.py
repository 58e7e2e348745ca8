"""Property-based bad-input matrix over the public functions (hypothesis).

For every generated case exactly one of two outcomes holds:

(a) a result of the documented shape and dtype, finite, with the input's bytes unchanged; or
(b) a ``ValueError``/``TypeError`` whose message names the offending parameter.

Inputs: every dtype (bool and complex must be rejected), C/F/strided/negative/read-only
layouts, 2-D, RGB(A), stacks and degenerate stacks ((1, H, W), (2, 1, H, W)), random,
constant, extreme, tiny-range, NaN/Inf and finite-extreme values (±3e38 in float32, ±1.7e308
in float64, ±65000 in float16), given as NumPy arrays, nested lists, dask or zarr arrays; odd
objects (None, strings, scalars, ragged lists, dicts); and broadcast views far larger than
memory, which must be refused up front, within seconds. Registry processors are called
through their public function and through ``ProcessorSpec.apply``.

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
OTHER_DTYPES = ["int8", "int32", "uint32", "int64"]  # real dtypes too: accepted
BAD_DTYPES = ["bool", "complex64"]
KINDS = ["2d", "rgb", "rgba", "3d", "4d", "1hw", "21hw"]
LAYOUTS = ["C", "F", "strided", "negative", "readonly"]
VALUES = ["random"] * 4 + ["constant", "extremes", "tiny", "nan", "inf", "finite_max",
                           "finite_max_pos"]
CONTAINERS = ["ndarray"] * 6 + ["list", "dask", "zarr"]
#: Objects that are no image at all: each must be a TypeError/ValueError naming the argument.
ODD: dict[str, Callable[[], Any]] = {
    "none": lambda: None, "string": lambda: "camera.png", "int": lambda: 5,
    "float": lambda: 2.5, "ragged": lambda: [[1, 2, 3], [4, 5]],
    "ragged_deep": lambda: [[[1, 2], [3, 4]], [[5, 6]]], "dict": lambda: {"data": [1, 2]},
    "object": lambda: object(), "empty_list": lambda: [], "bytes": lambda: b"\x00\x01",
    "0d": lambda: np.array(3.0), "strings": lambda: [["a", "b"], ["c", "d"]],
}
#: Broadcast views of one value, far larger than any machine's memory (and than the
#: float64 working copy): refused by the memory check before any data is read.
HUGE_SHAPES = {"2d": (300_000, 300_000), "rgb": (200_000, 200_000, 3),
               "3d": (4096, 8192, 8192), "4d": (64, 64, 4096, 4096)}
HUGE_SECONDS = 10.0

# Cheap parameters so each call stays fast; everything else keeps its default.
FAST: dict[str, dict[str, Any]] = {
    "deep_image_prior": {"iterations": 3, "channels": 8, "depth": 2, "every": 1, "window": 2,
                         "patience": 2},
    "restore_film_grain": {},
    "timelapse_denoise": {"mode": "bm4d"},  # its 2-frame stacks: the aligned window is 3+
}


def _values(kind: str, dtype: np.dtype, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        lo, hi = int(info.min), int(info.max)
    elif dtype.kind == "f":
        lo, hi = 0.0, 1.0
    else:
        lo, hi = 0, 1
    if kind in ("finite_max", "finite_max_pos") and dtype.kind == "f":
        top = float(np.finfo(dtype).max) * 0.99  # 3.4e38 float32, 1.8e308 float64
        r = rng.random(shape)
        x = np.where(r < 0.3, top, r) if kind == "finite_max_pos" else \
            np.where(r < 0.25, -top, np.where(r < 0.5, top, r))
        return x.astype(dtype)
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
    source = draw(st.sampled_from(["array"] * 18 + ["odd", "huge"]))
    entry = draw(st.sampled_from(["public", "spec"]))
    if source == "odd":
        return {"source": "odd", "odd": draw(st.sampled_from(sorted(ODD))), "entry": entry}
    dtype = np.dtype(draw(st.sampled_from(GOOD_DTYPES * 4 + OTHER_DTYPES + BAD_DTYPES)))
    if source == "huge":
        return {"source": "huge", "dtype": dtype.name, "entry": entry,
                "kind": draw(st.sampled_from(sorted(HUGE_SHAPES)))}
    kind = draw(st.sampled_from(KINDS))
    h = draw(st.one_of(st.integers(1, 7), st.integers(8, 64), st.integers(8, 64)))
    w = draw(st.one_of(st.integers(1, 7), st.integers(8, 64), st.integers(8, 64)))
    shape = {"2d": (h, w), "rgb": (h, w, 3), "rgba": (h, w, 4), "3d": (2, h, w),
             "4d": (2, 2, h, w), "1hw": (1, h, w), "21hw": (2, 1, h, w)}[kind]
    values = draw(st.sampled_from(VALUES))
    layout = draw(st.sampled_from(LAYOUTS))
    container = draw(st.sampled_from(CONTAINERS))
    seed = draw(st.integers(0, 2**16))
    return {"source": "array", "dtype": dtype.name, "kind": kind, "shape": shape,
            "values": values, "layout": layout, "container": container, "seed": seed,
            "entry": entry}


def _container(arr: np.ndarray, container: str) -> Any:
    """The same data as a nested list, a dask array or an in-memory zarr array."""
    if container == "list":
        return arr.tolist()
    if container == "dask":
        import dask.array as da

        return da.from_array(np.array(arr), chunks=tuple(max(1, s // 2) for s in arr.shape))
    if container == "zarr":
        import zarr

        z = zarr.create_array(store=zarr.storage.MemoryStore(), shape=arr.shape,
                              dtype=arr.dtype, chunks=tuple(max(1, s // 2) for s in arr.shape))
        z[...] = arr
        return z
    return arr


def build(case: dict[str, Any]) -> tuple[Any, int | None]:
    """The case's input (an array, a list, a lazy array, an odd object) and channel_axis."""
    if case["source"] == "odd":
        return ODD[case["odd"]](), None
    if case["source"] == "huge":
        shape = HUGE_SHAPES[case["kind"]]
        return np.broadcast_to(np.zeros(1, case["dtype"]), shape), (-1 if len(shape) == 3
                                                                     and shape[-1] == 3
                                                                     else None)
    arr, cax = _build_array(case)
    return _container(arr, case.get("container", "ndarray")), cax


def reference(image: Any, case: dict[str, Any]) -> np.ndarray | None:
    """What the input means as a NumPy array (for the expected shape and dtype), or None."""
    if case["source"] != "array":
        return None
    if isinstance(image, list):
        return np.asarray(image)
    return np.asarray(image[...]) if not isinstance(image, np.ndarray) else image


def _build_array(case: dict[str, Any]) -> tuple[np.ndarray, int | None]:
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
    if case["source"] != "array":
        return True  # not an image, or far beyond memory
    return case["dtype"] in BAD_DTYPES or (
        case["values"] in ("nan", "inf") and np.dtype(case["dtype"]).kind == "f")


def _snapshot(image: Any, case: dict[str, Any]) -> Any:
    if case["source"] != "array":
        return None  # odd objects are compared by identity of outcome; huge views are read-only
    if isinstance(image, list):
        import copy

        return copy.deepcopy(image)
    return np.array(image[...] if not isinstance(image, np.ndarray) else image, copy=True)


def _unchanged(image: Any, before: Any) -> None:
    if before is None:
        return
    if isinstance(image, list):
        assert image == before, "the input list was modified"
    else:
        np.testing.assert_array_equal(np.asarray(image[...]), before)


def check_outcome(name: str, call: Callable[[], Any], image: Any, case: dict[str, Any],
                  expect: Callable[[Any], None], names: tuple[str, ...]) -> str:
    """Run ``call`` and assert that exactly one of the two allowed outcomes holds."""
    import time

    before = _snapshot(image, case)
    start = time.perf_counter()
    try:
        out = call()
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        assert any(n in msg for n in names), f"{name}: error does not name a parameter: {msg!r} ({case})"
        if case["source"] == "huge" and case["dtype"] not in BAD_DTYPES:
            took = time.perf_counter() - start
            assert took < HUGE_SECONDS, f"{name}: a huge view took {took:.1f} s to refuse ({case})"
        _unchanged(image, before)
        return "rejected"
    assert not must_reject(case), f"{name} accepted invalid input {case}"
    expect(out)
    _unchanged(image, before)  # input never modified
    return "result"


def _same_array(image: np.ndarray | None) -> Callable[[Any], None]:
    def expect(out: Any) -> None:
        outs = out if isinstance(out, tuple) else (out,)
        for o in outs:
            assert isinstance(o, np.ndarray) and o.shape == image.shape, (o.shape, image.shape)
            assert np.isfinite(o).all()
        assert outs[0].dtype == image.dtype
    return expect


def spec_call(name: str, image: Any, cax: int | None, entry: str = "spec") -> Callable[[], Any]:
    """A registry processor through ``ProcessorSpec.apply`` or through its public function."""
    import inspect

    kwargs = dict(FAST.get(name, {}))
    if entry == "public" and hasattr(nr, name):
        func = getattr(nr, name)
        if "channel_axis" in inspect.signature(func).parameters:
            kwargs["channel_axis"] = cax
        return lambda: func(image, **kwargs)
    spec = nr.get_processor(name)
    return lambda: spec.apply(image, channel_axis=cax, **kwargs)


def error_names(name: str) -> tuple[str, ...]:
    spec = nr.get_processor(name)
    return ("image", "channel_axis", "volume", *(p.name for p in spec.params))


def run_spec_case(name: str, case: dict[str, Any]) -> str:
    image, cax = build(case)
    return check_outcome(name, spec_call(name, image, cax, case.get("entry", "spec")), image,
                         case, _same_array(reference(image, case)), error_names(name))


# Processors whose native core may abort the process run in a subprocess; the others in-process.
NATIVE = {"bm3d_denoise", "bm3d_deblur", "bm4d_denoise", "timelapse_denoise"}
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


def _flipped(im: Any, ref: np.ndarray | None) -> Any:
    """A denoised stand-in of the same kind: the reference reversed (odd inputs as they are)."""
    return im if ref is None or ref.ndim == 0 else ref[::-1]


Factory = Callable[[Any, "int | None", "np.ndarray | None"], tuple[Callable[[], Any], Callable]]
FUNCTIONS: dict[str, Factory] = {
    "analyze_grain": lambda im, cax, ref: (lambda: nr.analyze_grain(im, channel_axis=cax),
                                           _expect_profile),
    "detect_grain_type": lambda im, cax, ref: (lambda: nr.detect_grain_type(im, channel_axis=cax),
                                               _expect_grain_type),
    "extract_grain": lambda im, cax, ref: (
        lambda: nr.extract_grain(im, denoiser="wavelet", channel_axis=cax), _float_same_shape(ref)),
    "preserve_grain": lambda im, cax, ref: (
        lambda: nr.preserve_grain(im, _flipped(im, ref), channel_axis=cax), _same_array(ref)),
    "predict_clahe_params": lambda im, cax, ref: (
        lambda: nr.predict_clahe_params(im, channel_axis=cax), _expect_clahe_params),
    "iter_deep_image_prior": lambda im, cax, ref: (
        lambda: _drain(nr.iter_deep_image_prior(im, channel_axis=cax, **FAST["deep_image_prior"])),
        _same_array(ref)),
    "apply_recipe": lambda im, cax, ref: (
        lambda: nr.apply_recipe(nr.Recipe("classic_denoise", {"method": "tv_chambolle"},
                                          channel_axis=cax), im),
        _same_array(ref)),
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
        call, expect = FUNCTIONS[name](image, cax, reference(image, case))
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


# -- lazy arrays of every dtype, and arguments other than the image ---------------------------

def _lazy_calls() -> dict[str, Callable[[Any, int | None, Any], Any]]:
    """Every public image function (and the spec entry), with cheap parameters."""
    dip = FAST["deep_image_prior"]
    return {
        **{name: (lambda n: lambda im, cax, ref: spec_call(n, im, cax, "public")())(name)
           for name in sorted(nr.REGISTRY) if name != "bm4d_denoise"},
        "bm4d_denoise": lambda im, cax, ref: nr.bm4d_denoise(im),
        "spec.apply": lambda im, cax, ref: spec_call("classic_denoise", im, cax, "spec")(),
        **{name: (lambda n: lambda im, cax, ref: FUNCTIONS[n](im, cax, ref)[0]())(name)
           for name in sorted(FUNCTIONS)},
        "iter_deep_image_prior": lambda im, cax, ref: _drain(
            nr.iter_deep_image_prior(im, channel_axis=cax, **dip)),
    }


@pytest.mark.parametrize("container", ["dask", "zarr"])
@pytest.mark.parametrize("dtype", GOOD_DTYPES + OTHER_DTYPES + BAD_DTYPES)
def test_lazy_arrays_of_every_dtype(container, dtype):
    """dask and zarr arrays of every dtype: a result of the input's dtype or a named error."""
    rng = np.random.default_rng(len(dtype))
    shape = (6, 40, 40) if dtype in ("int8", "float16") else (40, 40)  # volumes too
    arr = _values("random", np.dtype(dtype), shape, rng)
    image = _container(arr, container)
    case = {"source": "array", "dtype": dtype, "values": "random", "shape": shape}
    names = NAMES + tuple({p.name for s in nr.REGISTRY.values() for p in s.params})
    for name, call in _lazy_calls().items():
        if name in ("bm4d_denoise",) and len(shape) == 2:
            continue
        expect = (_expect_profile if name == "analyze_grain" else
                  _expect_grain_type if name == "detect_grain_type" else
                  _expect_clahe_params if name == "predict_clahe_params" else
                  _float_same_shape(arr) if name == "extract_grain" else _same_array(arr))
        check_outcome(name, lambda c=call: c(image, None, arr), image, case, expect, names)


def _param_values() -> dict[str, Callable[[], Any]]:
    """Values of the wrong kind for an array-valued (or callable) argument."""
    import dask.array as da

    return {
        **ODD,
        "nan": lambda: np.full((5, 5), np.nan),
        "inf": lambda: np.full((5, 5), -np.inf, np.float32),
        "complex": lambda: np.ones((5, 5), np.complex64),
        "bool": lambda: np.ones((5, 5), bool),
        "3d": lambda: np.ones((3, 3, 3)),
        "1d": lambda: np.ones(7),
        "empty": lambda: np.ones((0, 5)),
        "huge": lambda: np.broadcast_to(np.float64(1.0), (300_000, 300_000)),
        "lazy_bool": lambda: da.ones((5, 5), dtype=bool),
        "lazy_complex": lambda: _container(np.ones((5, 5), np.complex64), "zarr"),
        "extreme": lambda: np.full((5, 5), 1.7e308),
    }


def _img(n: int = 40) -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.clip(128 + 20 * rng.standard_normal((n, n)), 0, 255).astype(np.uint8)


def _argument_calls() -> dict[str, tuple[str, Callable[[Any], Any]]]:
    img, vol = _img(), np.stack([_img()] * 6)
    grainy = _img(64)
    profile = nr.analyze_grain(grainy)
    dip = FAST["deep_image_prior"]
    return {
        "bm3d_deblur psf": ("psf", lambda v: nr.bm3d_deblur(img, psf=v, sigma=5)),
        "bm3d_denoise psd": ("psd", lambda v: nr.bm3d_denoise(img, 5, psd=v)),
        "bm4d_denoise psd": ("psd", lambda v: nr.bm4d_denoise(vol, 5, psd=v)),
        "analyze_grain denoised": ("denoised", lambda v: nr.analyze_grain(grainy, denoised=v)),
        "extract_grain denoised": ("denoised", lambda v: nr.extract_grain(grainy, v)),
        "preserve_grain denoised": ("denoised", lambda v: nr.preserve_grain(grainy, v)),
        "preserve_grain profile": ("profile", lambda v: nr.preserve_grain(grainy, grainy,
                                                                          profile=v)),
        "synthesize_grain profile": ("profile", lambda v: nr.synthesize_grain((32, 32), v)),
        "synthesize_grain shape": ("shape", lambda v: nr.synthesize_grain(v, profile)),
        "get_processor name": (("name", "processor"), lambda v: nr.get_processor(v)),
        "apply_recipe recipe": ("recipe", lambda v: nr.apply_recipe(v, img)),
        "apply_recipe cancel": ("cancel", lambda v: nr.apply_recipe(
            nr.Recipe("classic_denoise", {"method": "tv_chambolle"}), img, cancel=v)),
        "spec.apply cancel": ("cancel", lambda v: nr.get_processor("lb_clahe").apply(
            img, cancel=v)),
        "iter_deep_image_prior cancel": ("cancel", lambda v: _drain(
            nr.iter_deep_image_prior(img, cancel=v, **dip))),
    }


@pytest.mark.parametrize("target", sorted(_argument_calls()))
def test_arguments_of_the_wrong_kind(target):
    """Every odd value for an argument other than the image: a result (None is a default) or
    a ValueError/TypeError that names the argument — quickly, also for a huge view."""
    import time

    param, call = _argument_calls()[target]
    params = (param,) if isinstance(param, str) else param
    outcomes = {}
    for label, make in _param_values().items():
        value = make()
        start = time.perf_counter()
        try:
            call(value)
            outcomes[label] = "result"
        except (ValueError, TypeError) as exc:
            assert any(p in str(exc) for p in params), \
                f"{target}={label}: error does not name {param}: {exc!r}"
            outcomes[label] = "rejected"
        except FileNotFoundError as exc:  # a recipe given as a path that does not exist
            assert param == "recipe" and isinstance(value, str), (target, label, exc)
            outcomes[label] = "rejected"
        took = time.perf_counter() - start
        assert took < HUGE_SECONDS, f"{target}={label} took {took:.1f} s"
    accepted = {k for k, v in outcomes.items() if v == "result"}
    # None is the default; a kernel of huge equal values is a valid (normalised) box kernel
    valid = {"none", "extreme"} if param in ("psf", "psd") else {"none"}
    if target == "bm4d_denoise psd":
        valid |= {"3d"}  # a volume's noise kernel or 3-D power spectrum
    assert accepted <= valid, f"{target} accepted {sorted(accepted)}"


def test_huge_views_are_refused_by_the_memory_check_quickly():
    """A broadcast view far beyond memory: every public function refuses it for its memory,
    before reading it (a 300 000² view of one value would take hours to scan). Tileable
    processors are tiled by default at that size (``_tiles.needs_tiling``: where tiling can
    serve, the refusal became tiling), and refuse only because even the tiled run cannot
    hold its result."""
    import time

    from napari_restore import _tiles

    flat = np.broadcast_to(np.zeros(1, np.uint8), HUGE_SHAPES["2d"])
    vol = np.broadcast_to(np.zeros(1, np.float32), HUGE_SHAPES["3d"])
    tileable = {n for n, s in nr.REGISTRY.items() if s.footprint is not None} | {"spec.apply"}
    assert {"bm3d_denoise", "bm4d_denoise", "classic_denoise", "deep_image_prior"} <= tileable
    for name, call in _lazy_calls().items():
        image = vol if name in ("bm4d_denoise", "timelapse_denoise") else flat  # (t, y, x)
        if name in nr.REGISTRY and name in tileable:
            spec = nr.REGISTRY[name]
            assert _tiles.needs_tiling(spec, image.shape[-spec.plane_ndim:], image.dtype,
                                       spec.defaults())
        start = time.perf_counter()
        with pytest.raises(ValueError, match="memory") as info:
            call(image, None, None)
        took = time.perf_counter() - start
        assert took < HUGE_SECONDS, f"{name} took {took:.1f} s to refuse a huge view"
        if name in tileable:
            assert "even in tiles" in str(info.value), (name, str(info.value))

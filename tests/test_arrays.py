"""The array boundary: dtypes × strides × shapes, alpha, planes, validation, no mutation."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import digest

from napari_restore._arrays import (
    Cancelled,
    check_image,
    from_working,
    iter_planes,
    run_to_completion,
    to_working,
    value_scale,
)

DTYPES = [np.uint8, np.uint16, np.int16, np.int32, np.float16, np.float32, np.float64]


def make(dtype, shape, seed=0, span="unit"):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        lo, hi = max(info.min, -30000), min(info.max, 60000)
        return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    x = rng.random(shape)
    if span == "wide":
        x = x * 400.0 - 100.0
    return x.astype(dtype)


LAYOUTS = {
    "C": lambda a: a,
    "F": lambda a: np.asfortranarray(a),
    "strided": lambda a: np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)[::2, ::2],
    "negative": lambda a: a[::-1, ::-1],
    "readonly": lambda a: _readonly(a),
}


def _readonly(a):
    b = a.copy()
    b.flags.writeable = False
    return b


def identity(plane):
    return plane


def run(image, **kw):
    return run_to_completion(iter_planes(identity, image, **kw))


SHAPES = [((17, 23), None), ((9, 11, 3), -1), ((9, 11, 4), -1), ((3, 9, 11), None),
          ((2, 3, 9, 11), None), ((3, 9, 11), 0), ((2, 9, 11, 4), -1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("shape,cax", SHAPES)
def test_identity_round_trip(dtype, layout, shape, cax):
    base = make(dtype, shape)
    image = LAYOUTS[layout](base)
    before = digest(image)
    out = run(image, channel_axis=cax)
    assert digest(image) == before  # input bytes unchanged
    assert out.dtype == image.dtype and out.shape == image.shape
    assert out.flags.c_contiguous
    assert not np.shares_memory(out, image)
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_float_outside_unit_range_round_trip(dtype):
    image = make(dtype, (12, 13), span="wide")
    out = run(image)
    assert out.dtype == image.dtype
    np.testing.assert_allclose(out, image, rtol=1e-6 if dtype != np.float16 else 1e-3)


def test_working_plane_is_contiguous_float_in_unit_range():
    seen = []

    def spy(plane):
        seen.append((plane.dtype, plane.flags.c_contiguous, plane.min(), plane.max()))
        return plane

    image = make(np.uint16, (20, 30))[::-1, ::2]
    run_to_completion(iter_planes(spy, image))
    dtype, contig, lo, hi = seen[0]
    assert dtype == np.float32 and contig and 0.0 <= lo and hi <= 1.0


def test_float64_keeps_float64_working_precision():
    seen = []
    run_to_completion(iter_planes(lambda p: seen.append(p.dtype) or p, np.zeros((8, 8))))
    assert seen == [np.float64]


def test_value_scale_rules():
    assert value_scale(np.zeros((2, 2), np.uint8)).high == 255
    s = value_scale(np.array([[0.2, 0.9]], np.float32))
    assert (s.low, s.high) == (0.0, 1.0)
    s = value_scale(np.array([[-5.0, 15.0]]))
    assert (s.low, s.high) == (-5.0, 15.0)
    w = to_working(np.array([[-5.0, 15.0]]), s)
    np.testing.assert_array_equal(w, [[0.0, 1.0]])
    np.testing.assert_array_equal(from_working(w, s), [[-5.0, 15.0]])


def test_integer_results_are_rounded_and_clipped():
    image = np.array([[0, 128, 255]], np.uint8).repeat(4, 0)

    def overshoot(plane):
        return plane * 2.0 - 0.25

    out = run_to_completion(iter_planes(overshoot, image))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], [0, 192, 255])


def test_alpha_passes_through_untouched():
    image = make(np.uint8, (10, 12, 4))
    out = run_to_completion(iter_planes(lambda p: 1.0 - p, image, channel_axis=-1))
    np.testing.assert_array_equal(out[..., 3], image[..., 3])
    np.testing.assert_array_equal(out[..., :3], 255 - image[..., :3])


def test_colour_plane_reaches_processor_with_three_channels_and_channel_axis_moved():
    seen = []
    image = make(np.float32, (3, 10, 12))  # channels first
    run_to_completion(iter_planes(lambda p: seen.append(p.shape) or p, image, channel_axis=0))
    assert seen == [(10, 12, 3)]


@pytest.mark.parametrize("per_channel", [False, True])
def test_planewise_over_4d_stack_equals_manual_loop(per_channel):
    image = make(np.uint16, (2, 3, 16, 15))

    def func(plane):
        return np.sqrt(plane) * (0.5 + plane.mean())

    out = run_to_completion(iter_planes(func, image, per_channel=per_channel))
    manual = np.empty_like(image)
    scale = value_scale(image)
    for i in range(2):
        for j in range(3):
            manual[i, j] = from_working(func(to_working(image[i, j], scale)), scale)
    np.testing.assert_array_equal(out, manual)


def test_volume_processor_runs_per_volume():
    seen = []
    image = make(np.float32, (2, 4, 8, 9))
    out = run_to_completion(iter_planes(lambda v: seen.append(v.shape) or v, image, plane_ndim=3))
    assert seen == [(4, 8, 9)] * 2
    np.testing.assert_array_equal(out, image)


def test_progress_reports_every_plane_in_order():
    image = make(np.uint8, (5, 8, 8))
    reports = []
    run_to_completion(iter_planes(identity, image), reports.append)
    done = [r.done for r in reports]
    assert done == [1, 2, 3, 4, 5] and all(r.total == 5 for r in reports)
    assert reports[-1].fraction == 1.0


def test_sub_plane_progress_from_generator_processor():
    def gen(plane):
        for k in range(4):
            yield k / 4
        return plane

    reports = []
    run_to_completion(iter_planes(gen, make(np.uint8, (2, 8, 8))), reports.append)
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and 0 < fractions[1] < 0.5


def test_cancellation_between_planes():
    cancel = threading.Event()
    calls = []

    def func(plane):
        calls.append(1)
        if len(calls) == 2:
            cancel.set()
        return plane

    with pytest.raises(Cancelled):
        run_to_completion(iter_planes(func, make(np.uint8, (6, 8, 8)), cancel=cancel))
    assert len(calls) == 2


def test_cancel_accepts_a_callable():
    with pytest.raises(Cancelled):
        run_to_completion(iter_planes(identity, make(np.uint8, (3, 8, 8)), cancel=lambda: True))


@pytest.mark.parametrize(
    "image,kw,exc,words",
    [
        (np.zeros((4, 4), bool), {}, TypeError, "bool"),
        (np.zeros((4, 4), complex), {}, TypeError, "complex"),
        (np.array([["a", "b"]], dtype=object), {}, TypeError, "image"),
        (np.float64(3.0), {}, ValueError, "0-D"),
        (np.zeros(5), {}, ValueError, "spatial dimensions"),
        (np.zeros((0, 5)), {}, ValueError, "empty"),
        (np.array([[0.0, np.nan]]), {}, ValueError, "NaN"),
        (np.array([[0.0, np.inf]]), {}, ValueError, "infinite"),
        (np.zeros((4, 4, 3)), {"channel_axis": 3}, ValueError, "channel_axis=3 is out of range"),
        (np.zeros((4, 4, 2)), {"channel_axis": -1}, ValueError, "channel_axis"),
        (np.zeros((4, 4, 3)), {"channel_axis": 1.0}, TypeError, "channel_axis"),
        (np.zeros((4, 3)), {"channel_axis": -1}, ValueError, "spatial dimensions"),
        (np.zeros((4, 4)), {"min_size": 8}, ValueError, "too small"),
        (None, {}, TypeError, "None"),
    ],
)
def test_bad_input_is_rejected_with_named_parameter(image, kw, exc, words):
    with pytest.raises(exc, match=words):
        check_image(image, **kw)


def test_shape_changing_processor_is_caught():
    with pytest.raises(RuntimeError, match="returned shape"):
        run_to_completion(iter_planes(lambda p: p[1:], make(np.uint8, (8, 8))))


def test_lazy_dask_stack_is_read_plane_by_plane():
    da = pytest.importorskip("dask.array")
    base = make(np.uint16, (4, 16, 16))
    lazy = da.from_array(base, chunks=(1, 16, 16))
    out = run(lazy)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, base)


def test_non_finite_processor_output_is_an_error_not_a_silent_zero():
    with pytest.raises(RuntimeError, match="NaN"):
        run_to_completion(iter_planes(lambda p: p * np.nan, make(np.uint8, (8, 8))))


def test_iterative_processor_may_finish_early_on_cancel():
    cancel = threading.Event()

    def iterative(plane):
        best = plane
        try:
            for k in range(1000):
                best = plane * 0 + k / 1000
                if k == 3:
                    cancel.set()
                yield k / 1000
        except Cancelled:
            return best
        return best

    out = run_to_completion(iter_planes(iterative, np.zeros((8, 8)), cancel=cancel))
    assert np.allclose(out, 3 / 1000)
    cancel.clear()
    with pytest.raises(Cancelled, match="no partial stack"):
        run_to_completion(iter_planes(iterative, np.zeros((2, 8, 8)), cancel=cancel))


def test_value_range_scales_a_part_like_the_whole():
    stack = make(np.float32, (3, 12, 12), span="wide")
    whole = run_to_completion(iter_planes(lambda p: np.sqrt(p), stack))
    lo, hi = float(stack.min()), float(stack.max())
    part = run_to_completion(iter_planes(lambda p: np.sqrt(p), stack[1], value_range=(lo, hi)))
    np.testing.assert_array_equal(part, whole[1])
    with pytest.raises(ValueError, match="value_range"):
        value_scale(stack, (1.0, 0.0))


def test_memory_is_checked_up_front(monkeypatch):
    import napari_restore._arrays as A

    monkeypatch.setattr(A, "available_memory", lambda: 10 << 20)  # pretend 10 MiB are free
    huge = np.broadcast_to(np.zeros((1, 1, 1, 3), np.uint8), (50, 512, 512, 3))  # 39 MiB view
    with pytest.raises(ValueError, match=r"needs about .* GiB .* only 0.0 GiB are available"):
        run_to_completion(iter_planes(identity, huge, channel_axis=-1))


def test_processor_memory_estimate_refuses_dip_on_a_huge_image(monkeypatch):
    import napari_restore._arrays as A
    from napari_restore import deep_image_prior

    monkeypatch.setattr(A, "available_memory", lambda: 2 << 30)
    big = np.broadcast_to(np.zeros((1, 1), np.uint8), (4096, 4096))
    with pytest.raises(ValueError, match="GiB"):
        deep_image_prior(big, iterations=1, channels=128)


# -- native planes (8-bit fast paths) -------------------------------------------------------
@pytest.mark.parametrize("layout", ["C", "F", "negative"])
@pytest.mark.parametrize("shape,cax", [((40, 30), None), ((2, 40, 30, 3), -1), ((4, 40, 30), 0)])
def test_native_planes_are_read_only_views_and_native_results_are_kept(layout, shape, cax):
    img = make(np.uint8, shape, seed=3)
    if layout == "F":
        img = np.asfortranarray(img)
    elif layout == "negative":
        img = img[..., ::-1, :] if cax == -1 else img[..., ::-1]
    before = digest(img)
    seen = []

    def func(plane):
        seen.append((plane.dtype, plane.flags.c_contiguous))
        if np.may_share_memory(plane, img):  # a view of the caller's data is read-only
            with pytest.raises(ValueError):
                plane[...] = 0
        else:
            plane[...] = plane  # a copy may be written
        return (255 - plane).astype(np.uint8)  # a native result, used as it is

    out = run_to_completion(iter_planes(func, img, channel_axis=cax, native_dtypes=("uint8",)))
    assert digest(img) == before
    assert all(s[0] == np.uint8 and s[1] for s in seen)
    expect = 255 - img
    if cax == 0:  # RGBA: alpha passes through
        expect[3] = img[3]
    np.testing.assert_array_equal(out, expect)


def test_native_path_converts_float_results_and_ignores_other_dtypes():
    img = make(np.uint8, (20, 24), seed=4)
    out = run_to_completion(iter_planes(lambda p: p / np.float32(255), img, native_dtypes=("uint8",)))
    np.testing.assert_array_equal(out, img)  # a float result is a working array: scaled back
    u16 = make(np.uint16, (20, 24), seed=4)
    seen = []
    run_to_completion(iter_planes(lambda p: seen.append(p.dtype) or p, u16, native_dtypes=("uint8",)))
    assert seen == [np.float32]


def test_native_result_that_is_the_input_itself_is_copied():
    img = make(np.uint8, (20, 24), seed=5)
    out = run_to_completion(iter_planes(lambda p: p, img, native_dtypes=("uint8",)))
    np.testing.assert_array_equal(out, img)
    assert not np.shares_memory(out, img)


def test_single_plane_result_is_not_a_view_of_a_shared_buffer():
    img = make(np.float32, (16, 16), seed=6)
    out = run_to_completion(iter_planes(lambda p: p, img))
    assert not np.shares_memory(out, img)
    out[...] = 0
    assert img.any()


# -- strips on the shared pool --------------------------------------------------------------
def test_for_strips_covers_every_row_once_and_reraises():
    from napari_restore import _parallel

    hits = np.zeros(1003, np.int64)
    threads = set()

    def mark(r0, r1):
        threads.add(threading.get_ident())
        hits[r0:r1] += 1

    _parallel.for_strips(mark, 1003, 17)
    assert (hits == 1).all()
    if _parallel.workers() > 1:
        assert threading.get_ident() not in threads  # ran on the pool

    def boom(r0, r1):
        if r0 >= 500:
            raise ValueError(f"strip {r0}")

    with pytest.raises(ValueError, match="strip"):
        _parallel.for_strips(boom, 1000, 100)

    nested = np.zeros(100, np.int64)

    def outer(r0, r1):
        _parallel.for_strips(lambda a, b: nested.__setitem__(slice(a, b), nested[a:b] + 1), 100, 7)

    _parallel.for_strips(outer, 4, 1)  # nested use runs in the calling pool thread: no deadlock
    assert (nested == 4).all()


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"),
                    reason="this platform has no fork() (Windows): nothing to inherit")
def test_strip_pool_works_in_a_forked_child():
    """The shared pool's threads do not survive fork: a child must not wait on them forever."""
    import multiprocessing as mp

    from napari_restore import _parallel

    _parallel.for_strips(lambda a, b: None, 100, 10)  # the parent's pool exists now
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        res = pool.apply_async(_strip_sum, (1000,))
        assert res.get(timeout=60) == sum(range(1000))


def _strip_sum(n):
    from napari_restore import _parallel

    out = np.zeros(n, np.int64)

    def fill(a, b):
        out[a:b] = np.arange(a, b)

    _parallel.for_strips(fill, n, 37)
    return int(out.sum())

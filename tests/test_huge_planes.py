"""Huge planes (issue 19, item 3): LB-CLAHE in strips, streamed CLI runs, partial-output safety.

Small planes with small strips and tiles forced stand in for the huge ones; the memory floor
itself is measured by ``benchmarks/bench_huge_planes.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from napari_restore import Recipe, _stream, batch
from napari_restore._arrays import from_working, to_working, value_scale
from napari_restore.processors import get_processor
from napari_restore.processors.clahe import lb_clahe
from napari_restore.processors.clahe_strips import clahe_strips

zarr = pytest.importorskip("zarr")
tifffile = pytest.importorskip("tifffile")


def _pattern(shape=(300, 260), dtype=np.uint16, top=60000, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:shape[0], :shape[1]]
    v = np.sin(x / 23.0) * np.cos(y / 31.0) * 0.3 + 0.5 + 0.2 * ((x // 64 + y // 64) % 2)
    v = np.clip(v * 0.8 + rng.normal(0, 0.04, shape), 0, 1)
    if np.dtype(dtype).kind == "f":
        return (v * top).astype(dtype)
    return np.round(v * top).astype(dtype)


def _zarr(path: Path, img: np.ndarray, chunks=(64, 64)) -> Path:
    z = zarr.open_array(str(path), mode="w", shape=img.shape, dtype=img.dtype, chunks=chunks)
    z[:] = img
    return path


def _collect(gen, shape, dtype) -> np.ndarray:
    out = np.zeros(shape, dtype)
    rows_seen = np.zeros(shape[:-1], int)
    for item in gen:
        if isinstance(item, tuple):
            idx, r0, rows = item
            out[idx + (slice(r0, r0 + rows.shape[0]),)] = rows
            rows_seen[idx + (slice(r0, r0 + rows.shape[0]),)] += 1
    assert (rows_seen == 1).all()  # every row exactly once
    return out


@pytest.mark.parametrize("dtype,top", [(np.uint16, 4095), (np.uint8, 255), (np.float32, 3.0)])
@pytest.mark.parametrize("refine", [True, False])
def test_clahe_strips_bit_identical(dtype, top, refine):
    img = _pattern((203, 157), dtype, top)
    ref = lb_clahe(img, clip_limit=2.5, tile_grid=(5, 4), refine=refine)
    scale = value_scale(img, detect_bits=True)
    native = img.dtype == np.uint8
    reads = []

    def read(r0, r1):
        reads.append(r1 - r0)
        return img[r0:r1] if native else to_working(img[r0:r1], scale)

    out = np.zeros_like(img)
    for item in clahe_strips(read, img.shape, clip_limit=2.5, tile_grid=(5, 4), refine=refine,
                             strip=29):
        if isinstance(item, tuple):
            r0, rows = item
            out[r0:r0 + rows.shape[0]] = rows if native else from_working(rows, scale)
    np.testing.assert_array_equal(out, ref)
    assert max(reads) <= 29 + (8 if refine else 0)  # never more than a strip and its halo


def test_stream_mode_rules(monkeypatch):
    tv = get_processor("classic_denoise")
    clahe = get_processor("lb_clahe")
    p = {"method": "tv_chambolle", "sigma": 1.0}
    assert _stream.stream_mode(tv, {**p, "tile": (128, 128)}, (512, 512), np.uint16) == "tiles"
    assert _stream.stream_mode(tv, {**p, "tile": "auto"}, (512, 512), np.uint16) == "tiles"
    assert _stream.stream_mode(tv, p, (512, 512), np.uint16) is None  # untiled: as before
    assert _stream.stream_mode(tv, {**p, "tile": "auto"}, (512, 512, 3), np.uint8,
                               channel_axis=-1) is None  # colour is not streamed
    assert _stream.stream_mode(clahe, {}, (4096, 4096), np.uint16) is None
    assert _stream.stream_mode(clahe, {}, (4097, 4096), np.uint16) == "strips"


@pytest.mark.parametrize("name,params,tile", [
    ("classic_denoise", {"method": "tv_chambolle", "sigma": 2000.0}, (128, 112)),
    ("classic_denoise", {"method": "nl_means", "sigma": 2000.0}, (128, 112)),
])
def test_streamed_tiles_equal_in_memory(tmp_path, name, params, tile):
    img = _pattern((300, 260))
    spec = get_processor(name)
    ref = spec.apply(img, tile=tile, **params)
    z = zarr.open_array(str(_zarr(tmp_path / "a.zarr", img)), mode="r")
    res = {}
    out = _collect(_stream.iter_stream(spec, z, {**params, "tile": tile}, resolved=res, workers=1),
                   img.shape, img.dtype)
    np.testing.assert_array_equal(out, ref)
    assert res["tiles"] > 4 and res["tile"] == tile


def test_streamed_auto_sigma_whole_plane_or_refused(tmp_path, monkeypatch):
    img = _pattern((200, 180))
    spec = get_processor("classic_denoise")
    params = {"method": "tv_chambolle", "sigma": None}
    ref_res: dict = {}
    ref = spec.apply(img, tile=(96, 96), resolved=ref_res, **params)
    z = zarr.open_array(str(_zarr(tmp_path / "a.zarr", img)), mode="r")
    res: dict = {}
    out = _collect(_stream.iter_stream(spec, z, {**params, "tile": (96, 96)}, resolved=res,
                                       workers=1), img.shape, img.dtype)
    np.testing.assert_array_equal(out, ref)
    assert res["sigma"] == pytest.approx(ref_res["sigma"])  # grey levels, once per plane
    monkeypatch.setattr(_stream, "WHOLE_BYTES", 1000)
    with pytest.raises(ValueError, match="give sigma"):
        list(_stream.iter_stream(spec, z, {**params, "tile": (96, 96)}, workers=1))


def _sidecars(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_batch_streams_clahe_and_tiles_to_zarr_and_tiff(tmp_path, monkeypatch):
    img = _pattern((260, 300))
    src_z = _zarr(tmp_path / "in" / "a.zarr", img)
    tifffile.imwrite(tmp_path / "in" / "b.tif", img, tile=(64, 64))
    monkeypatch.setattr(_stream, "STRIP_PLANE_BYTES", 1000)  # this small plane "is huge"
    monkeypatch.setattr("napari_restore.processors.clahe_strips.STRIP_BYTES", 40 * 4 * 300)
    clahe = Recipe("lb_clahe", {"clip_limit": 2.0, "tile_grid": [4, 4]})
    rep = batch.apply(clahe, [src_z, tmp_path / "in" / "b.tif"], tmp_path / "c", isolate=False)
    assert rep.ok, rep.summary()
    ref = lb_clahe(img, clip_limit=2.0, tile_grid=(4, 4))
    out_z = zarr.open_array(str(tmp_path / "c" / "a.zarr"), mode="r")
    assert out_z.chunks != out_z.shape or out_z.shape[0] <= _stream.OUT_CHUNK
    np.testing.assert_array_equal(out_z[:], ref)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "c" / "b.tif"), ref)
    assert out_z.attrs["napari_restore"]["streamed"] == "strips"

    tv = Recipe("classic_denoise", {"method": "tv_chambolle", "sigma": 2000.0, "tile": [128, 128]})
    rep = batch.apply(tv, [src_z], tmp_path / "t", isolate=False)
    assert rep.ok, rep.summary()
    ref = get_processor("classic_denoise").apply(img, tile=(128, 128), method="tv_chambolle",
                                                  sigma=2000.0)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "t" / "a.zarr"), mode="r")[:], ref)
    assert not [n for n in _sidecars(tmp_path / "t") if n.endswith(".partial")]


def test_stack_of_planes_streams_each(tmp_path):
    stack = np.stack([_pattern((160, 150), seed=s) for s in range(2)])
    spec = get_processor("classic_denoise")
    p = {"method": "tv_chambolle", "sigma": 2000.0}
    ref = spec.apply(stack, tile=(96, 96), **p)
    z = zarr.open_array(str(_zarr(tmp_path / "s.zarr", stack, (1, 64, 64))), mode="r")
    out = _collect(_stream.iter_stream(spec, z, {**p, "tile": (96, 96)}, workers=1),
                   stack.shape, stack.dtype)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("ext", [".zarr", ".tif"])
def test_failure_mid_run_leaves_no_complete_looking_output(tmp_path, monkeypatch, ext):
    img = _pattern((300, 260))
    if ext == ".zarr":
        src = _zarr(tmp_path / "in" / f"a{ext}", img)
    else:
        (tmp_path / "in").mkdir()
        src = tmp_path / "in" / f"a{ext}"
        tifffile.imwrite(src, img, tile=(64, 64))
    out_dir = tmp_path / "out"
    seen = {}
    real = _stream._Source.work
    calls = {"n": 0}

    def failing(self, rs, cs=slice(None)):
        calls["n"] += 1
        if calls["n"] == 3:  # rows already written by now: the output is half done
            seen["during"] = _sidecars(out_dir)
            raise RuntimeError("disk pulled out mid-run")
        return real(self, rs, cs)

    monkeypatch.setattr(_stream._Source, "work", failing)
    tv = Recipe("classic_denoise", {"method": "tv_chambolle", "sigma": 2000.0, "tile": [96, 96]})
    rep = batch.apply(tv, [src], out_dir, isolate=False)
    assert not rep.ok and "disk pulled out mid-run" in rep.files[0].error
    during = seen["during"]
    assert during and all(n.endswith(".partial") for n in during)  # only a temporary name
    assert f"a{ext}" not in during
    assert _sidecars(out_dir) == []  # nothing left: no output, no sidecar, no partial


def test_cli_tile_option_streams(tmp_path):
    """``napari-restore apply --tile`` through the CLI (its isolating file worker)."""
    from napari_restore import cli

    img = _pattern((200, 190))
    src = _zarr(tmp_path / "a.zarr", img)
    rpath = tmp_path / "r.json"
    Recipe("classic_denoise", {"method": "tv_chambolle", "sigma": 2000.0}).save(rpath)
    rc = cli.main(["apply", str(rpath), str(src), "-o", str(tmp_path / "o"), "--tile", "96x96"])
    assert rc == 0
    ref = get_processor("classic_denoise").apply(img, tile=(96, 96), method="tv_chambolle",
                                                  sigma=2000.0)
    out = zarr.open_array(str(tmp_path / "o" / "a.zarr"), mode="r")
    np.testing.assert_array_equal(out[:], ref)
    assert out.attrs["napari_restore"]["streamed"] == "tiles"
    assert os.path.exists(tmp_path / "o" / "a.zarr.json")


# -- the viewer: a tiled result fills its layer as rows of tiles finish ---------------------
def test_panel_tiled_run_fills_the_layer_row_by_row(qtbot, make_napari_viewer):
    pytest.importorskip("napari")
    da = pytest.importorskip("dask.array")
    from napari.utils import progress as napari_progress

    from napari_restore.widgets import ProcessorPanel

    img = _pattern((1100, 240))
    viewer = make_napari_viewer()
    viewer.add_image(da.from_array(img, chunks=(128, 128)), name="big")
    panel = ProcessorPanel(viewer, get_processor("classic_denoise"))
    viewer.window.add_dock_widget(panel, name="Classic denoise")
    panel.set_params({"method": "tv_chambolle", "sigma": 2000.0, "tile": "auto"})
    fills: list[int] = []

    def watch(event):
        layer = event.value
        real = layer.refresh

        def refresh(*a, **k):
            fills.append(int(np.asarray(layer.data).any(axis=1).sum()))
            return real(*a, **k)

        layer.refresh = refresh

    viewer.layers.events.inserted.connect(watch)
    n = len(viewer.layers)
    assert panel.start() is not None
    assert len(viewer.layers) == n + 1  # the result layer is there from the start
    bars = [p for p in napari_progress._all_instances if "Classic denoise on big" in (p.desc or "")]
    assert len(bars) == 1  # in the activity dock
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=60_000)
    result = viewer.layers[-1]
    assert result.name.startswith("big [classic_denoise")
    assert len(fills) >= 3 and fills == sorted(fills) and fills[0] < img.shape[0]
    assert fills[-1] == img.shape[0]
    ref = get_processor("classic_denoise").apply(img, tile="auto", method="tv_chambolle",
                                                  sigma=2000.0)
    np.testing.assert_array_equal(np.asarray(result.data), ref)
    meta = result.metadata["napari_restore"]
    assert meta["resolved"]["tiles"] == 3 and "filling" not in meta


def test_panel_tiled_run_stopped_leaves_no_layer(qtbot, make_napari_viewer, monkeypatch):
    pytest.importorskip("napari")
    from napari_restore.widgets import ProcessorPanel

    img = _pattern((1600, 200))
    viewer = make_napari_viewer()
    viewer.add_image(img, name="big")
    panel = ProcessorPanel(viewer, get_processor("classic_denoise"))
    panel.set_params({"method": "tv_chambolle", "sigma": 2000.0, "tile": "auto"})
    real = _stream._Source.work

    def slow(self, rs, cs=slice(None)):
        import time

        time.sleep(0.3)
        return real(self, rs, cs)

    monkeypatch.setattr(_stream._Source, "work", slow)
    n = len(viewer.layers)
    panel.start()
    assert len(viewer.layers) == n + 1
    qtbot.waitUntil(lambda: np.asarray(viewer.layers[-1].data).any(), timeout=30_000)
    panel.stop()
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=30_000)
    assert len(viewer.layers) == n  # the half-filled layer is gone
    assert "stopped" in panel.status.value


@pytest.mark.parametrize("whole", [True, False])
def test_streamed_clahe_auto_parameters_equal_in_memory(tmp_path, monkeypatch, whole):
    from napari_restore.processors import clahe_strips as cs

    img = _pattern((420, 380), np.uint16, 4095)
    if not whole:  # this plane "is huge": predicted on every 2nd pixel, in memory too
        monkeypatch.setattr(cs, "PREDICT_WHOLE_BYTES", 1000)
        monkeypatch.setattr(cs, "PREDICT_SIDE", 210)
        assert cs.predict_step(img.shape) == 2
    ref_res: dict = {}
    ref = get_processor("lb_clahe").apply(img, resolved=ref_res)
    z = zarr.open_array(str(_zarr(tmp_path / "a.zarr", img)), mode="r")
    res: dict = {}
    out = _collect(_stream.iter_stream(get_processor("lb_clahe"), z, {}, strip=50, resolved=res,
                                       mode="strips"), img.shape, img.dtype)
    np.testing.assert_array_equal(out, ref)
    assert res["clip_limit"] == ref_res["clip_limit"]
    assert tuple(res["tile_grid"]) == tuple(ref_res["tile_grid"])
    assert ("predicted_on" in res) is (not whole)

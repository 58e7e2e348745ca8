"""Batch runner: formats, bit-identity with in-memory runs, failures, interruption, clusters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_restore import Recipe, apply_recipe, batch
from napari_restore.batch_io import open_lazy, output_path

EXE = Path(sys.executable).with_name("napari-restore")
WAVELET = Recipe("classic_denoise", {"method": "wavelet", "sigma": 0.08})


@pytest.fixture
def stack(camera_pair):
    _, noisy = camera_pair
    return np.stack([np.roll(noisy, 7 * k, axis=1) for k in range(6)]).reshape(2, 3, *noisy.shape)


def test_multipage_tiff_4d_round_trip_equals_in_memory(tmp_path, stack):
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack", metadata={"axes": "TZYX"})
    report = batch.apply(WAVELET, [tmp_path / "s.tif"], tmp_path / "out")
    assert report.ok and report.files[0].planes == 6
    out = tifffile.imread(tmp_path / "out" / "s.tif")
    assert out.shape == stack.shape and out.dtype == stack.dtype
    np.testing.assert_array_equal(out, apply_recipe(WAVELET, stack))


def test_ome_tiff_zarr_npy_png_jpeg(tmp_path, camera_pair):
    from imageio.v3 import imread, imwrite

    _, noisy = camera_pair
    u16 = (noisy.astype(np.uint16) * 257)[None].repeat(3, 0)
    tifffile.imwrite(tmp_path / "o.ome.tif", u16, ome=True)
    np.save(tmp_path / "n.npy", u16)
    import zarr

    z = zarr.open_array(str(tmp_path / "z.zarr"), mode="w", shape=u16.shape, chunks=(1, 64, 64), dtype=u16.dtype)
    z[:] = u16
    imwrite(tmp_path / "p.png", noisy)
    imwrite(tmp_path / "j.jpg", noisy)
    inputs = [tmp_path / n for n in ("o.ome.tif", "n.npy", "z.zarr", "p.png", "j.jpg")]
    report = batch.apply(WAVELET, inputs, tmp_path / "out")
    assert report.ok, report.summary()
    expected16 = apply_recipe(WAVELET, u16)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "o.ome.tif"), expected16)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "n.npy"), expected16)
    zout = zarr.open_array(str(tmp_path / "out" / "z.zarr"), mode="r")
    np.testing.assert_array_equal(zout[:], expected16)
    assert zout.attrs["napari_restore"]["recipe"]["processor"] == "classic_denoise"
    np.testing.assert_array_equal(imread(tmp_path / "out" / "p.png"), apply_recipe(WAVELET, noisy))
    jpg_out = tmp_path / "out" / "j.png"  # lossless output for a lossy input
    assert jpg_out.exists() and imread(jpg_out).dtype == np.uint8
    for name in ("o.ome.tif", "n.npy", "z.zarr", "p.png", "j.png"):
        assert (tmp_path / "out" / f"{name}.json").exists()
    assert not list((tmp_path / "out").glob(".*partial"))


def test_float_stack_is_scaled_by_the_whole_stack(tmp_path):
    rng = np.random.default_rng(3)
    data = (rng.random((4, 48, 40)) * 100.0 - 50.0).astype(np.float32)
    data[3] *= 10  # the range lives in one plane: per-chunk scaling would differ
    tifffile.imwrite(tmp_path / "f.tif", data, photometric="minisblack")
    recipe = Recipe("classic_denoise", {"method": "tv_chambolle", "sigma": 0.05})
    assert batch.apply(recipe, [tmp_path / "f.tif"], tmp_path / "out").ok
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "f.tif"), apply_recipe(recipe, data))


@pytest.mark.parametrize("params", [
    {"sigma": 20.0},  # BM3D maps 12-bit data in uint16 by the bit depth the whole file uses
    {"noise_model": "poisson-gaussian(gain=4.0, bias=-300.0)"},  # the transformed range
], ids=["bit-depth", "poisson-gaussian"])
def test_uint16_stack_chunks_are_scaled_as_the_whole_stack(tmp_path, params):
    """A chunk of 12-bit counts whose own maximum is below 1024 (10 bits) is scaled as the
    whole 12-bit file: chunk by chunk equals the in-memory run on the whole stack. Before,
    only float and 32/64-bit stacks were given the whole file's range."""
    from skimage import data as skdata

    rng = np.random.default_rng(8)
    cam = skdata.camera()[100:164, 200:264] / 255.0
    photons = np.stack([60.0 * cam + 40.0, 700.0 * cam + 200.0])  # a dim and a bright plane
    counts = 4.0 * rng.poisson(photons) + 75.0 + rng.normal(0.0, 3.0, photons.shape)
    data = np.clip(np.rint(counts), 0, 4095).astype(np.uint16)
    assert data[0].max() < 1024 <= data[1].max() < 4096
    np.save(tmp_path / "u.npy", data)
    recipe = Recipe("bm3d_denoise", params)
    assert batch.apply(recipe, [tmp_path / "u.npy"], tmp_path / "out", planes_per_chunk=1).ok
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "u.npy"), apply_recipe(recipe, data))


def test_rgb_recipe_and_planes_per_chunk(tmp_path):
    from napari_restore._sample_data import astronaut

    _, noisy = astronaut()
    rgb = np.stack([noisy[:96, :96], noisy[100:196, 100:196], noisy[200:296, :96]])
    np.save(tmp_path / "rgb.npy", rgb)
    recipe = Recipe("classic_denoise", {"method": "tv_chambolle"}, channel_axis=-1)
    assert batch.apply(recipe, [tmp_path / "rgb.npy"], tmp_path / "out", planes_per_chunk=2).ok
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "rgb.npy"), apply_recipe(recipe, rgb))


def test_one_corrupt_file_fails_alone(tmp_path, camera_pair):
    _, noisy = camera_pair
    np.save(tmp_path / "good1.npy", noisy)
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    np.save(tmp_path / "tiny.npy", noisy[:3, :3])  # too small for the processor
    np.save(tmp_path / "good2.npy", noisy[::-1])
    names = ["good1.npy", "bad.tif", "missing.tif", "tiny.npy", "good2.npy"]
    report = batch.apply(WAVELET, [tmp_path / n for n in names], tmp_path / "out")
    assert [f.status for f in report.files] == ["done", "failed", "failed", "failed", "done"]
    assert "too small" in report.files[3].error and "does not exist" in report.files[2].error
    summary = report.summary()
    assert "bad.tif" in summary and "missing.tif" in summary and "3 failed" in summary
    assert (tmp_path / "out" / "good2.npy").exists() and not (tmp_path / "out" / "tiny.npy").exists()


def test_bad_arguments(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        batch.apply(WAVELET, [], tmp_path / "file")
    with pytest.raises(ValueError, match="unknown processor"):
        batch.apply({"processor": "nope"}, [], tmp_path / "o")
    with pytest.raises(ValueError, match="unsupported input"):
        output_path(Path("x.bmp"), tmp_path)
    with pytest.raises(FileNotFoundError):
        open_lazy(tmp_path / "none.tif")


SLOW = """
import time
import numpy as np
from napari_restore.processors.registry import ProcessorSpec, register
def slow(plane):
    time.sleep(0.4)
    return plane
register(ProcessorSpec(name="slow_batch", title="slow", plane_func=slow, params=()))
"""


def test_sigterm_leaves_no_partial_file_and_a_rerun_completes(tmp_path, camera_pair):
    _, noisy = camera_pair
    inputs = []
    for k in range(4):
        tifffile.imwrite(tmp_path / f"in{k}.tif", np.stack([noisy] * 4), photometric="minisblack")
        inputs.append(str(tmp_path / f"in{k}.tif"))
    (tmp_path / "slowmod.py").write_text(SLOW)
    Recipe("classic_denoise", {"method": "wavelet"}).save(tmp_path / "r.json")
    recipe = {"format": "napari-restore-recipe/1", "processor": "slow_batch", "params": {}}
    (tmp_path / "slow.json").write_text(json.dumps(recipe))
    code = ("import sys, slowmod; from napari_restore.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    cmd = [sys.executable, "-c", code, "apply", str(tmp_path / "slow.json"), *inputs, "-o", str(tmp_path / "out")]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = tmp_path / "out"
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "in0.tif").exists():
        time.sleep(0.05)
    assert (out / "in0.tif").exists(), proc.communicate(timeout=10)
    time.sleep(0.5)  # in the middle of in1.tif
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    finals = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    for name in finals:  # everything under a final name is complete
        if name.endswith(".tif"):
            assert tifffile.imread(out / name).shape == (4, *noisy.shape)
    assert "in3.tif" not in finals
    assert not list(out.glob(".*partial"))  # the handler removed its temporary file
    rerun = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "skipped" in rerun.stdout
    for k in range(4):
        np.testing.assert_array_equal(tifffile.imread(out / f"in{k}.tif"), np.stack([noisy] * 4))


def test_local_cluster_equals_single_process(tmp_path):
    pytest.importorskip("distributed")
    from dask.distributed import Client, LocalCluster

    from napari_restore._sample_data import camera

    _, noisy = camera()
    planes = np.stack([noisy[(k % 4) * 96:(k % 4) * 96 + 64, (k // 4) * 96:(k // 4) * 96 + 64] for k in range(16)])
    tifffile.imwrite(tmp_path / "s.tif", planes)
    recipes = [Recipe("bm3d_denoise", {"sigma": 0.1}), Recipe("lb_clahe", {}),
               Recipe("classic_denoise", {"method": "opencv_nlm"})]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        for k, r in enumerate(recipes):
            report = batch.apply(r, [tmp_path / "s.tif"], tmp_path / f"dist{k}", client=client)
            assert report.ok, report.summary()
    for k, r in enumerate(recipes):
        assert batch.apply(r, [tmp_path / "s.tif"], tmp_path / f"local{k}").ok
        dist = tifffile.imread(tmp_path / f"dist{k}" / "s.tif")
        local = tifffile.imread(tmp_path / f"local{k}" / "s.tif")
        assert dist.shape == (16, 64, 64)
        for p in range(16):
            np.testing.assert_array_equal(dist[p], local[p])


@pytest.mark.parametrize("suffix", [".tif", ".zarr", ".npy"])
def test_the_task_graph_holds_paths_not_pixels(tmp_path, suffix):
    """Cluster workers read their own planes: the graph does not grow with the planes."""
    import pickle

    import zarr

    sizes = []
    for side in (32, 256):
        planes = np.random.default_rng(0).integers(0, 255, (4, side, side), dtype=np.uint8)
        path = tmp_path / f"s{side}{suffix}"
        if suffix == ".tif":
            tifffile.imwrite(path, planes, photometric="minisblack")
        elif suffix == ".npy":
            np.save(path, planes)
        else:
            zarr.open(str(path), mode="w", shape=planes.shape, chunks=(1, side, side),
                      dtype=planes.dtype)[:] = planes
        result, _ = batch.plan(WAVELET, open_lazy(path))
        sizes.append(len(pickle.dumps(dict(result.__dask_graph__()))))
        np.testing.assert_array_equal(result.blocks[1].compute(scheduler="sync")[0],
                                      apply_recipe(WAVELET, planes[1]))
    assert sizes[1] - sizes[0] < 200, sizes  # 4 × (256² − 32²) bytes more if pixels travelled

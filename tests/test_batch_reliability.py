"""Batch reliability: the batch never destroys, loses or silently skips data, never hangs, and
a native crash fails one file. Each case checks: no crash of the runner (a summary and an exit
status), no hang (every subprocess has a timeout), no silent-wrong result (outputs compared
with the expected arrays, statuses with what really happened), no file lost (inputs and
foreign files byte for byte), and one-line errors that name the file (no traceback).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil  # installed with distributed (testing extra)
import pytest
import tifffile

from napari_restore import Recipe, apply_recipe, batch
from napari_restore.batch_io import _host, clean_stale_partials, temp_path
from napari_restore.recipes import FORMAT

TV = Recipe("classic_denoise", {"method": "tv_chambolle"})
TV2 = Recipe("classic_denoise", {"method": "tv_chambolle", "strength": 2.0})

HELPERS = '''
import ctypes, os, signal, time
import numpy as np
from napari_restore.processors.registry import ProcessorSpec, register

def slow(plane):
    time.sleep(float(os.environ.get("NR_TEST_SLOW_S", "0.25")))
    return plane

def crashy(plane):
    if float(np.min(plane)) >= 1.0:  # an all-white plane: crash as a C library would
        if os.environ.get("NR_TEST_CRASH") == "null":
            ctypes.string_at(0)
        os.kill(os.getpid(), signal.SIGSEGV)
    return plane

register(ProcessorSpec(name="slow_batch", title="slow", plane_func=slow, params=()), replace=True)
register(ProcessorSpec(name="crash_batch", title="crash", plane_func=crashy, params=()),
         replace=True)
'''
MAIN = "import sys, nr_batch_helpers; from napari_restore.cli import main; sys.exit(main(sys.argv[1:]))"
TIMEOUT = 180  # seconds: a run that takes longer is a hang


@pytest.fixture(scope="module")
def helpers(tmp_path_factory):
    d = tmp_path_factory.mktemp("helpers")
    (d / "nr_batch_helpers.py").write_text(HELPERS)
    return d


def _env(helpers: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(helpers), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def _cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-c", MAIN, "apply", *map(str, args)]


def cli(helpers: Path, *args: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """The CLI in a subprocess; TimeoutExpired (a hang) fails the test."""
    return subprocess.run(_cmd(*args), cwd=cwd, env=_env(helpers, **env), capture_output=True,
                          text=True, timeout=TIMEOUT)


def recipe_file(path: Path, processor: str) -> Path:
    path.write_text(json.dumps({"format": FORMAT, "processor": processor, "params": {}}))
    return path


def image(seed: int, shape=(40, 48), hi=200) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, hi, shape, dtype=np.uint8)


def partials(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*") if p.name.endswith(".partial"))


def assert_clear(text: str) -> None:
    """Errors are lines that say what is wrong; never a traceback."""
    assert "Traceback" not in text, text
    for bad in ("IndexError", "list index out of range", "pip install", "no len()",
                "unhashable"):
        assert bad not in text, text


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


# -- collisions --------------------------------------------------------------------------
def test_same_name_in_two_folders_is_mirrored_never_merged(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = image(1), image(2)
    tifffile.imwrite(tmp_path / "a" / "same.tif", a)
    tifffile.imwrite(tmp_path / "b" / "same.tif", b)
    out = tmp_path / "out"
    srcs = [tmp_path / "a" / "same.tif", tmp_path / "b" / "same.tif"]
    report = batch.apply(TV, srcs, out)
    assert [f.status for f in report.files] == ["done", "done"], report.summary()
    np.testing.assert_array_equal(tifffile.imread(out / "a" / "same.tif"), apply_recipe(TV, a))
    np.testing.assert_array_equal(tifffile.imread(out / "b" / "same.tif"), apply_recipe(TV, b))
    again = batch.apply(TV, srcs, out)
    assert [f.status for f in again.files] == ["skipped", "skipped"]
    assert all("from this input with this recipe" in f.note for f in again.files)
    redo = batch.apply(TV, srcs, out, overwrite=True)
    assert [f.status for f in redo.files] == ["done", "done"]
    np.testing.assert_array_equal(tifffile.imread(out / "b" / "same.tif"), apply_recipe(TV, b))
    # inputs from one folder keep a flat output folder
    flat = batch.apply(TV, [tmp_path / "a" / "same.tif"], tmp_path / "flat")
    assert flat.ok and (tmp_path / "flat" / "same.tif").is_file()


def test_colliding_outputs_refuse_the_batch_before_anything_is_written(tmp_path, capsys):
    from imageio.v3 import imwrite

    from napari_restore.cli import main

    imwrite(tmp_path / "pair.png", image(3))
    imwrite(tmp_path / "pair.jpg", image(4))
    r = TV.save(tmp_path / "r.json")
    before = snapshot(tmp_path)
    png, jpg = str(tmp_path / "pair.png"), str(tmp_path / "pair.jpg")
    for inputs, words in [([png, jpg], "would both be written to"),
                          ([png, os.path.relpath(png)], "listed twice")]:
        for extra in ([], ["--overwrite"]):
            code = main(["apply", str(r), *inputs, "-o", str(tmp_path / "out"), *extra])
            err = capsys.readouterr().err
            assert code == 2 and words in err and err.count("\n") == 1, err
            assert "pair.png" in err
            assert_clear(err)
    assert not (tmp_path / "out").exists()  # refused before the output folder was made
    assert snapshot(tmp_path) == before


# -- output equal to input ---------------------------------------------------------------
@pytest.mark.parametrize("overwrite", [False, True])
def test_an_output_that_is_an_input_is_refused(tmp_path, overwrite):
    data = tmp_path / "data"
    data.mkdir()
    tifffile.imwrite(data / "x.tif", image(5))
    import zarr

    z = zarr.open_array(str(data / "z.zarr"), mode="w", shape=(2, 32, 32), dtype="u1")
    z[:] = image(6, (2, 32, 32))
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "x.tif").symlink_to(data / "x.tif")
    (tmp_path / "hard").mkdir()
    os.link(data / "x.tif", tmp_path / "hard" / "x.tif")
    before = snapshot(tmp_path)
    cases = [([data / "x.tif"], data), ([data / "x.tif"], tmp_path / "links"),
             ([data / "x.tif"], tmp_path / "hard"), ([data / "z.zarr"], data),
             ([data / "x.tif", data / "z.zarr"], data / "z.zarr" / "inside")]
    for srcs, outdir in cases:
        with pytest.raises(ValueError, match="would replace the input") as info:
            batch.apply(TV, srcs, outdir, overwrite=overwrite)
        assert str(srcs[0]) in str(info.value) or str(srcs[-1]) in str(info.value)
    assert snapshot(tmp_path) == before  # nothing lost, nothing written


# -- directories and foreign files in the way ---------------------------------------------
@pytest.mark.parametrize("overwrite", [False, True])
def test_directories_links_and_foreign_files_are_never_replaced(tmp_path, overwrite):
    data = tmp_path / "data"
    data.mkdir()
    names = ["dir.tif", "user.tif", "link.tif", "side.tif", "store.npy", "ok.tif"]
    arrays = {n: image(10 + k) for k, n in enumerate(names)}
    for n, a in arrays.items():
        if n.endswith(".npy"):
            np.save(data / n, a)
        else:
            tifffile.imwrite(data / n, a)
    out = tmp_path / "out"
    (out / "dir.tif").mkdir(parents=True)
    (out / "dir.tif" / "notes.txt").write_text("user data")
    (out / "user.tif").write_bytes(b"the user's own file")
    (tmp_path / "elsewhere.txt").write_text("link target")
    (out / "link.tif").symlink_to(tmp_path / "elsewhere.txt")
    (out / "side.tif.json").write_text('{"mine": true}')  # a user's JSON at the sidecar's name
    (out / "store.npy.json").mkdir()  # a directory at a sidecar's name
    before = snapshot(tmp_path)
    report = batch.apply(TV, [data / n for n in names], out, overwrite=overwrite)
    status = {Path(f.input).name: f for f in report.files}
    assert status["ok.tif"].status == "done"
    for n in names[:-1]:
        f = status[n]
        assert f.status == "failed", (n, f)
        assert "--overwrite replaces only outputs napari-restore wrote" in f.error, f.error
        assert "\n" not in f.error
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("out/ok.tif")} == before
    assert (out / "link.tif").is_symlink() and (out / "store.npy.json").is_dir()
    assert not partials(tmp_path)


def test_an_output_changed_by_the_user_becomes_theirs(tmp_path):
    tifffile.imwrite(tmp_path / "x.tif", image(20))
    out = tmp_path / "out"
    assert batch.apply(TV, [tmp_path / "x.tif"], out).ok
    with open(out / "x.tif", "ab") as fh:  # the user edits our output
        fh.write(b"edited")
    edited = (out / "x.tif").read_bytes()
    report = batch.apply(TV, [tmp_path / "x.tif"], out, overwrite=True)
    assert report.files[0].status == "failed" and "was changed after" in report.files[0].error
    assert (out / "x.tif").read_bytes() == edited


def test_skipped_only_when_written_from_this_input_with_this_recipe(tmp_path):
    for d, seed in (("one", 30), ("two", 31)):
        (tmp_path / d).mkdir()
        tifffile.imwrite(tmp_path / d / "x.tif", image(seed))
    one, two, out = tmp_path / "one" / "x.tif", tmp_path / "two" / "x.tif", tmp_path / "out"
    assert batch.apply(TV, [one], out).ok
    first = (out / "x.tif").read_bytes()
    cases = [(TV, two, "written from another input"), (TV2, one, "different recipe")]
    for recipe, src, words in cases:
        f = batch.apply(recipe, [src], out).files[0]
        assert f.status == "failed" and words in f.error and "--overwrite" in f.error, f
        assert (out / "x.tif").read_bytes() == first  # not touched, and not called "skipped"
    time.sleep(0.01)
    tifffile.imwrite(one, image(32))  # the input changes
    f = batch.apply(TV, [one], out).files[0]
    assert f.status == "failed" and "input changed" in f.error
    for recipe, src in ((TV, one), (TV, two), (TV2, one)):  # ours: --overwrite replaces them
        f = batch.apply(recipe, [src], out, overwrite=True).files[0]
        assert f.status == "done", f
        np.testing.assert_array_equal(tifffile.imread(out / "x.tif"),
                                      apply_recipe(recipe, tifffile.imread(src)))
    side = json.loads((out / "x.tif.json").read_text())
    assert side["input"] == os.path.realpath(one) and side["recipe"]["params"]["strength"] == 2.0


def test_zarr_outputs_are_replaced_only_when_ours(tmp_path):
    import zarr

    stack = image(40, (2, 32, 32))
    z = zarr.open_array(str(tmp_path / "in.zarr"), mode="w", shape=stack.shape, dtype="u1")
    z[:] = stack
    out = tmp_path / "out"
    assert batch.apply(TV, [tmp_path / "in.zarr"], out).ok
    assert batch.apply(TV, [tmp_path / "in.zarr"], out).files[0].status == "skipped"
    f = batch.apply(TV, [tmp_path / "in.zarr"], out, overwrite=True).files[0]
    assert f.status == "done", f
    np.testing.assert_array_equal(zarr.open_array(str(out / "in.zarr"), mode="r")[:],
                                  apply_recipe(TV, stack))
    user = tmp_path / "user"
    (user / "in.zarr").mkdir(parents=True)  # a user's folder at the store's name
    (user / "in.zarr" / "data.bin").write_bytes(b"x")
    f = batch.apply(TV, [tmp_path / "in.zarr"], user, overwrite=True).files[0]
    assert f.status == "failed" and (user / "in.zarr" / "data.bin").read_bytes() == b"x"
    assert not partials(tmp_path)


# -- partial files -----------------------------------------------------------------------
def test_only_partials_of_dead_processes_are_cleaned(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    host = _host()

    def named(pid, host=host, role=""):
        return tmp_path / f".x.tif.{host}-{pid}-0123abcd{'.' + role if role else ''}.partial"

    mine = temp_path(tmp_path / "x.tif")  # this process: live
    live = named(os.getppid())  # another live process (whoever started the tests)
    stale, foreign_host = named(dead.pid), named(dead.pid, host="otherhost")
    legacy = tmp_path / f".x.tif.{dead.pid}.partial"  # earlier versions' names
    unnamed = tmp_path / ".x.tif.partial"  # no process id: never guessed at
    for p in (mine, live, stale, foreign_host, legacy, unnamed):
        p.write_text("x")
    stale_dir = named(dead.pid, role="old")
    stale_dir.mkdir()
    (stale_dir / "chunk").write_text("x")
    target = tmp_path / "kept"
    target.mkdir()
    (target / "file").write_text("keep me")
    link = named(dead.pid, role="lnk")
    link.symlink_to(target)
    removed = set(clean_stale_partials(tmp_path))
    assert removed == {stale, legacy, stale_dir, link}
    for p in (mine, live, foreign_host, unnamed):
        assert p.exists()
    assert (target / "file").read_text() == "keep me"  # a link is removed, not followed


def _slow_inputs(folder: Path, prefix: str, n: int, planes: int = 3) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for k in range(n):
        p = folder / f"{prefix}{k}.tif"
        tifffile.imwrite(p, image(100 + k + 10 * ord(prefix[0]), (planes, 24, 24)),
                         photometric="minisblack")
        paths.append(p)
    return paths


def test_two_concurrent_runs_on_one_output_folder(tmp_path, helpers):
    r = recipe_file(tmp_path / "slow.json", "slow_batch")
    a = _slow_inputs(tmp_path / "in", "a", 3)
    b = _slow_inputs(tmp_path / "in", "b", 3)
    shared = _slow_inputs(tmp_path / "in", "s", 2)
    out = tmp_path / "out"
    env = _env(helpers)
    runs = []
    for srcs in (a + shared, b + shared):  # B starts (and cleans up) while A writes
        runs.append(subprocess.Popen(_cmd(r, *srcs, "-o", out), cwd=tmp_path, env=env,
                                     text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        deadline = time.time() + TIMEOUT
        while len(runs) == 1 and not partials(out) and time.time() < deadline:
            assert runs[0].poll() is None, runs[0].communicate(timeout=10)
            time.sleep(0.02)
    results = [p.communicate(timeout=TIMEOUT) for p in runs]
    for p, (so, se) in zip(runs, results, strict=True):
        assert p.returncode == 0, (so, se)
        assert "0 failed" in so
        assert_clear(so + se)
    for src in a + b + shared:  # every output complete and right
        np.testing.assert_array_equal(tifffile.imread(out / src.name), tifffile.imread(src))
    done_twice = sum(so.count(f"{s.name} -> ") for s in shared for so, _ in results)
    assert 2 <= done_twice <= 4  # a shared input done by one run, done or skipped by the other
    assert not partials(out)


# -- SIGKILL mid-file, then a re-run -----------------------------------------------------
def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = TIMEOUT) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not path.exists():
        assert proc.poll() is None, proc.communicate(timeout=10)
        time.sleep(0.05)
    assert path.exists()


def _worker_of(pid: int) -> psutil.Process:
    deadline = time.time() + 60
    while time.time() < deadline:
        for c in psutil.Process(pid).children():
            if "spawn_main" in " ".join(c.cmdline()):
                return c
        time.sleep(0.05)
    raise AssertionError("no worker process")


@pytest.mark.parametrize("victim", ["everything", "worker", "ctrl-c"])
def test_sigkill_mid_file_then_a_rerun_completes(tmp_path, helpers, victim):
    r = recipe_file(tmp_path / "slow.json", "slow_batch")
    srcs = _slow_inputs(tmp_path / "in", "k", 3, planes=4)
    out = tmp_path / "out"
    # SIGINT at its default, as for a terminal's foreground job: a test run started in the
    # background of a non-interactive shell inherits SIGINT ignored, and Python then keeps it so
    proc = subprocess.Popen(_cmd(r, *srcs, "-o", out), cwd=tmp_path, env=_env(helpers),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=_default_sigint)
    try:
        _wait_for(out / "k0.tif", proc)
        time.sleep(0.4)  # in the middle of k1.tif
        if victim == "everything":
            os.killpg(proc.pid, signal.SIGKILL)
        elif victim == "ctrl-c":  # SIGINT to the whole process group, as a terminal does
            os.killpg(proc.pid, signal.SIGINT)
        else:
            _worker_of(proc.pid).send_signal(signal.SIGKILL)
        so, se = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if victim == "worker":  # that file fails alone; the batch goes on and reports it
        assert proc.returncode == 1, (so, se)
        assert "2 done, 0 skipped, 1 failed" in se and "killed by SIGKILL" in se, se
        assert not partials(out)
    elif victim == "ctrl-c":
        assert proc.returncode == 130 and se.startswith("interrupted"), (so, se)
        assert_clear(se)
        assert not partials(out)
    else:
        assert proc.returncode == -signal.SIGKILL
    for p in out.iterdir():  # whatever has a final name is complete
        if p.suffix == ".tif" and not p.name.startswith("."):
            assert tifffile.imread(p).shape == (4, 24, 24)
    rerun = cli(helpers, r, *srcs, "-o", out, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "k0.tif: skipped" in rerun.stdout and "0 failed" in rerun.stdout
    assert_clear(rerun.stdout + rerun.stderr)
    for src in srcs:
        np.testing.assert_array_equal(tifffile.imread(out / src.name), tifffile.imread(src))
    assert not partials(out)


# -- a native crash in the middle of a batch ---------------------------------------------
@pytest.mark.parametrize("how", ["signal", "null"])
def test_native_crash_fails_that_file_alone(tmp_path, helpers, how):
    r = recipe_file(tmp_path / "crash.json", "crash_batch")
    arrays = {"ok0.npy": image(50), "white.npy": np.full((40, 48), 255, np.uint8),
              "ok1.npy": image(51), "white2.npy": np.full((2, 40, 48), 255, np.uint8),
              "ok2.npy": image(52, (3, 40, 48))}
    for n, a in arrays.items():
        np.save(tmp_path / n, a)
    out = tmp_path / "out"
    res = cli(helpers, r, *arrays, "-o", out, cwd=tmp_path, NR_TEST_CRASH=how)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "3 done, 0 skipped, 2 failed" in res.stderr, res.stderr
    for n in ("white.npy", "white2.npy"):
        line = next(ln for ln in res.stderr.splitlines() if ln.startswith(f"FAILED {n}"))
        assert "killed by SIGSEGV (a crash inside a library)" in line, line
        assert not (out / n).exists()
    assert_clear(res.stdout + res.stderr)
    for n in ("ok0.npy", "ok1.npy", "ok2.npy"):
        np.testing.assert_array_equal(np.load(out / n), arrays[n])
    assert not partials(out)


def test_isolate_in_python(tmp_path, helpers, monkeypatch):
    """``batch.apply(isolate=True)``: the same guard from Python (progress still arrives)."""
    from napari_restore.processors.registry import unregister

    monkeypatch.syspath_prepend(str(helpers))
    import nr_batch_helpers  # noqa: F401 - registers the test processors here too

    try:
        np.save(tmp_path / "ok.npy", image(60, (2, 16, 16)))
        np.save(tmp_path / "white.npy", np.full((16, 16), 255, np.uint8))
        seen = []
        report = batch.apply({"processor": "crash_batch"}, [tmp_path / "white.npy",
                                                           tmp_path / "ok.npy"],
                             tmp_path / "out", isolate=True,
                             progress=lambda d, t, n: seen.append((d, t, n)))
        assert [f.status for f in report.files] == ["failed", "done"]
        assert "SIGSEGV" in report.files[0].error
        assert seen[-1] == (2, 2, "ok.npy")
        np.testing.assert_array_equal(np.load(tmp_path / "out" / "ok.npy"),
                                      np.load(tmp_path / "ok.npy"))
    finally:
        unregister("slow_batch")
        unregister("crash_batch")
        sys.modules.pop("nr_batch_helpers", None)


# -- FIFOs and device files --------------------------------------------------------------
def test_fifos_and_devices_are_refused_without_hanging(tmp_path, helpers):
    tv = TV.save(tmp_path / "r.json")
    os.mkfifo(tmp_path / "fifo.json")
    for bad in (tmp_path / "fifo.json", "/dev/zero", "/dev/urandom", tmp_path):
        res = cli(helpers, bad, "x.tif", "-o", tmp_path / "o", cwd=tmp_path)
        assert res.returncode == 2 and res.stderr.startswith("error: recipe "), res.stderr
        assert res.stderr.count("\n") == 1, res.stderr
        assert_clear(res.stderr)
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, image(70))
    for name in ("fifo.tif", "fifo.npy", "fifo.png", "fifo.zarr"):
        os.mkfifo(tmp_path / name)
    (tmp_path / "dev.npy").symlink_to("/dev/zero")
    (tmp_path / "meta.zarr").mkdir()
    os.mkfifo(tmp_path / "meta.zarr" / "zarr.json")
    (tmp_path / "out").mkdir()
    os.mkfifo(tmp_path / "out" / "taken.tif")  # a FIFO at an output's name
    tifffile.imwrite(tmp_path / "taken.tif", image(71))
    os.mkfifo(tmp_path / "out" / "sided.tif.json")  # and at a sidecar's name
    tifffile.imwrite(tmp_path / "sided.tif", image(72))
    bad = ["fifo.tif", "fifo.npy", "fifo.png", "fifo.zarr", "dev.npy", "meta.zarr", "taken.tif",
           "sided.tif"]
    for extra in ([], ["--overwrite"]):
        res = cli(helpers, tv, *bad, good, "-o", tmp_path / "out", *extra, cwd=tmp_path)
        assert res.returncode == 1, (res.stdout, res.stderr)
        assert f"0 skipped, {len(bad)} failed" in res.stderr
        assert_clear(res.stdout + res.stderr)
        failed = [ln for ln in res.stderr.splitlines() if ln.startswith("FAILED")]
        assert len(failed) == len(bad)
        for name, line in zip(bad, failed, strict=True):
            assert name in line and ("FIFO" in line or "character device" in line), line
    assert (tmp_path / "out" / "good.tif").is_file()
    assert (tmp_path / "out" / "taken.tif").is_fifo()


# -- messages that name the problem --------------------------------------------------------
def test_unreadable_inputs_are_named_on_one_line(tmp_path):
    from imageio.v3 import imwrite

    (tmp_path / "corrupt.tif").write_bytes(b"II*\x00garbage")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY junk")
    np.save(tmp_path / "flat.npy", np.zeros(5))
    (tmp_path / "dir.tif").mkdir()
    imwrite(tmp_path / "good.png", image(80))
    names = ["corrupt.tif", "empty.png", "empty.tif", "junk.png", "junk.npy", "flat.npy",
             "dir.tif", "good.png"]
    report = batch.apply(TV, [tmp_path / n for n in names], tmp_path / "out")
    assert [f.status for f in report.files] == ["failed"] * 7 + ["done"]
    for f in report.failed:
        assert Path(f.input).name in f.error and "\n" not in f.error, f.error
        assert any(w in f.error for w in ("not a readable", "empty", "dimensions",
                                          "directory")), f.error
    assert_clear(report.summary())


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
    from napari_restore.cli import main
    from napari_restore.processors.registry import get_processor

    r = TV.save(tmp_path / "r.json")
    tifffile.imwrite(tmp_path / "x.tif", image(90))
    for args, words in [
        ([str(r), str(tmp_path / "x.tif"), "-o", str(r / "sub")], "r.json is a file"),
        ([str(tmp_path), str(tmp_path / "x.tif"), "-o", str(tmp_path / "o")], "is a directory"),
        ([str(tmp_path / "none.json"), "x.tif", "-o", str(tmp_path / "o")], "does not exist"),
    ]:
        assert main(["apply", *args]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
        assert_clear(err)
    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit) as info:
            main(["apply", str(r), "x.tif", "-o", str(tmp_path / "o"), "--workers", bad])
        assert info.value.code == 2 and "must be an integer >= 1" in capsys.readouterr().err
    for kw in ({"workers": 0}, {"workers": -1}, {"planes_per_chunk": 0}, {"workers": True}):
        with pytest.raises(ValueError, match="must be an integer >= 1"):
            batch.apply(TV, [tmp_path / "x.tif"], tmp_path / "o", **kw)
    assert not (tmp_path / "o").exists()
    with pytest.raises(TypeError, match="processor name must be a string"):
        get_processor(["lb_clahe"])
    with pytest.raises(TypeError, match="must be a str or bytes; got NoneType"):
        Recipe.from_json(None)
    with pytest.raises(ValueError, match="is a directory; a regular file is needed"):
        apply_recipe(str(tmp_path), image(91))
    assert Recipe("classic_denoise", {}, channel_axis=np.int64(-1)).channel_axis == -1


def test_a_worker_that_cannot_start_is_one_clear_error(tmp_path):
    """A script read from stdin cannot be re-imported by a spawned worker: said once, clearly,
    instead of failing every file."""
    np.save(tmp_path / "a.npy", image(95))
    script = ("from napari_restore import batch, Recipe\n"
              "try:\n"
              "    batch.apply(Recipe('classic_denoise', {'method': 'tv_chambolle'}),"
              " ['a.npy'], 'out', isolate=True)\n"
              "except batch.WorkerStartError as exc:\n"
              "    print('REFUSED', exc)\n")
    res = subprocess.run([sys.executable, "-"], input=script, cwd=tmp_path, text=True,
                         capture_output=True, timeout=TIMEOUT)
    assert res.stdout.startswith("REFUSED the batch worker process could not start"), res
    assert "__main__" in res.stdout
    assert not partials(tmp_path) and not (tmp_path / "out" / "a.npy").exists()

"""Which volume shapes bm4d 4.2.5 takes: the crashing ones are refused up front, no working one.

bm4d segfaults on a volume that is exactly one block: (5, 5, 5), and (1, 8, 8) for the profiles
that fall back to in-plane 8x8 blocks ("np", "refilter"); shapes smaller than a block make it
raise. ``_check_volume`` refuses exactly those. The library runs only in child processes here,
so a crash fails a test instead of killing the suite.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest

from napari_restore.processors.bm3d import _check_volume

# (profile, (Z, H, W)): around both one-block shapes, thin volumes, and too-small ones
ACCEPTED = [("np", (1, 8, 9)), ("np", (2, 8, 8)), ("np", (5, 5, 6)), ("refilter", (1, 9, 8)),
            ("lc", (6, 5, 5))]
CRASHING = [("np", (1, 8, 8)), ("refilter", (1, 8, 8)), ("np", (5, 5, 5)),
            ("refilter", (5, 5, 5)), ("lc", (5, 5, 5))]
TOO_SMALL = [("np", (1, 7, 8)), ("lc", (4, 8, 8)), ("refilter", (6, 5, 4))]

# As bm4d_plane calls the library: the volume (Z, H, W) goes in as (H, W, Z).
_RAW_CALL = r"""
import sys, json, numpy as np
from napari_restore import _compat
from napari_restore.processors.bm3d import _check_volume
bm4d = _compat.bm4d_module()
def raw(profile, shape):
    z = np.ascontiguousarray(np.moveaxis(np.random.default_rng(0).random(shape), 0, -1))
    noise = _compat.refilter_sigma(0.1, z.shape, profile == "refilter")
    return bm4d.bm4d(z, noise, _compat.bm4d_profile(profile, 1, z))
"""

_CHECK_THEN_RUN = _RAW_CALL + r"""
for profile, shape in json.loads(sys.argv[1]):
    shape = tuple(shape)
    print("START", profile, shape, flush=True)
    try:
        _check_volume(shape, profile)
    except ValueError:
        try:  # refused: the library must not work on it either (here: too small, it raises)
            raw(profile, shape)
            print("refused-but-works", profile, shape, flush=True)
        except ValueError:
            print("refused", profile, shape, flush=True)
        continue
    out = raw(profile, shape)
    print("ok" if np.isfinite(out).all() else "nonfinite", profile, shape, flush=True)
print("DONE", flush=True)
"""


def _child(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          timeout=300)


def test_every_shape_is_refused_or_runs():
    """Accepted shapes run in the library; too-small ones are refused (the library raises on
    them too). A shape that got through the check and crashed kills only the child: the last
    START line names it."""
    import json

    cases = ACCEPTED + TOO_SMALL
    proc = _child(_CHECK_THEN_RUN, json.dumps(cases))
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[-1:] == ["DONE"], (
        f"exit {proc.returncode}; last lines:\n" + "\n".join(lines[-3:]) + proc.stderr[-600:])
    for profile, shape in ACCEPTED:
        assert f"ok {profile} {shape}" in lines
    for profile, shape in TOO_SMALL:
        assert f"refused {profile} {shape}" in lines


@pytest.mark.parametrize("profile,shape", CRASHING)
def test_one_block_volumes_are_refused_up_front(profile, shape):
    with pytest.raises(ValueError, match=r"BM4D"):
        _check_volume(shape, profile)


@pytest.mark.parametrize("profile,shape", [("np", (1, 8, 8)), ("refilter", (5, 5, 5)),
                                           ("lc", (5, 5, 5))])
def test_refused_one_block_volumes_really_crash_bm4d(profile, shape):
    """The refusal is needed: bm4d itself segfaults on these (once this fails, bm4d fixed the
    crash and the one-block rule in _check_volume can go)."""
    proc = _child(_RAW_CALL + f"raw({profile!r}, {shape!r})\nprint('survived')")
    assert proc.returncode == -signal.SIGSEGV, (proc.returncode, proc.stdout, proc.stderr[-400:])


PUBLIC = r"""
import numpy as np
from napari_restore import bm4d_denoise
for shape, profile in [((1, 8, 8), "np"), ((2, 1, 8, 8), "np"), ((1, 8, 8), "refilter"),
                       ((5, 5, 5), "lc"), ((3, 5, 5, 5), "refilter")]:
    try:
        bm4d_denoise(np.random.rand(*shape).astype("f4"), 0.1, profile=profile)
        print("ran", shape, profile, flush=True)
    except ValueError as exc:
        print("ValueError", shape, profile, str(exc), flush=True)
print("DONE")
"""


def test_public_function_refuses_them_with_a_clear_error():
    """bm4d_denoise on the issue's shapes (single volumes and stacks): a ValueError naming the
    shape and what works, never a dead process."""
    proc = _child(PUBLIC)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[-1:] == ["DONE"], (proc.returncode, proc.stdout,
                                                            proc.stderr[-400:])
    errors = [ln for ln in lines if ln.startswith("ValueError")]
    assert len(errors) == 5, lines
    assert "volume of shape (1, 8, 8) is exactly one BM4D block" in errors[0]
    assert "(2, 8, 8) or (1, 8, 9) work" in errors[0]
    assert "volume of shape (1, 8, 8)" in errors[1]  # a stack: the volume that is refused
    assert "volume of shape (5, 5, 5) is too small for BM4D" in errors[3]


def test_check_volume_follows_the_library_block_sizes():
    """In-process (nothing runs the library): over depth 1-7 x sides 4-12 x every profile,
    _check_volume refuses exactly the shapes smaller than the block bm4d picks for them, or
    exactly that block — with the block sizes read from bm4d's own profile objects."""
    from napari_restore import _compat

    bm4d = _compat.bm4d_module()
    for profile in ("np", "refilter", "lc"):
        for d in range(1, 8):
            for h in range(4, 13):
                for w in range(4, 13):
                    z = np.zeros((h, w, d))  # bm4d's axis order
                    pro = _compat.bm4d_profile(profile, 1, z)
                    block = tuple(max(a, b) for a, b in zip(pro.bs_ht, pro.bs_wiener))
                    refused = any(n < b for n, b in zip(z.shape, block)) or z.shape == block
                    try:
                        _check_volume((d, h, w), profile)
                        got = False
                    except ValueError:
                        got = True
                    assert got == refused, (profile, (d, h, w), block)

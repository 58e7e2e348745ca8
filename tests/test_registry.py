"""Specs: validation generated from the registry, and public signatures matching their specs."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import napari_restore
from napari_restore.processors import REGISTRY
from napari_restore.processors.registry import Param, get_processor

PUBLIC = {
    "classic_denoise": napari_restore.classic_denoise,
    "bm3d_denoise": napari_restore.bm3d_denoise,
    "bm3d_deblur": napari_restore.bm3d_deblur,
    "bm4d_denoise": napari_restore.bm4d_denoise,
    "lb_clahe": napari_restore.lb_clahe,
    "deep_image_prior": napari_restore.deep_image_prior,
    "restore_film_grain": napari_restore.restore_film_grain,
    "timelapse_denoise": napari_restore.timelapse_denoise,
}
# Array arguments of public functions (not spec parameters: they cannot go in a recipe).
ARRAY_ARGS = {"bm3d_denoise": ("psd",), "bm3d_deblur": ("psf",), "bm4d_denoise": ("psd",)}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_signature_matches_spec(name):
    spec = get_processor(name)
    sig = inspect.signature(PUBLIC[name])
    kw = {k: p.default for k, p in sig.parameters.items() if p.default is not p.empty}
    kw.pop("channel_axis", None)
    for name_ in ARRAY_ARGS.get(name, ()):
        assert kw.pop(name_) is None  # optional arrays: None = not given
    assert kw == spec.defaults()


def test_every_spec_is_complete():
    for spec in REGISTRY.values():
        assert spec.title and spec.summary and spec.references
        for p in spec.params:
            assert p.doc, f"{spec.name}.{p.name} has no doc"
            p.validate(p.default)  # defaults are valid


@pytest.mark.parametrize(
    "param,value,exc,words",
    [
        (Param("sigma", float, None, "d", min=0.0, max=1.0, optional=True), -0.1, ValueError, r"sigma=-0.1 is out of range; allowed \[0, 1\]"),
        (Param("sigma", float, None, "d", min=0.0, max=1.0, optional=True), float("nan"), ValueError, "sigma must be finite"),
        (Param("sigma", float, 0.1, "d", min=0.0), None, TypeError, "sigma must not be None"),
        (Param("n", int, 3, "d", min=1, max=9), 2.5, TypeError, "n must be an integer"),
        (Param("n", int, 3, "d", min=1, max=9), "3", TypeError, "n must be a int"),
        (Param("n", int, 3, "d", min=1, max=9), True, TypeError, "n must be a int"),
        (Param("m", str, "a", "d", choices=("a", "b")), "c", ValueError, "m='c' is not allowed; choose one of 'a', 'b'"),
        (Param("flag", bool, True, "d"), 1, TypeError, "flag must be True or False"),
        (Param("size", tuple, (9, 9), "d", min=1), (9,), ValueError, "size must have 2 entries"),
        (Param("size", tuple, (9, 9), "d", min=1), (9, 0), ValueError, "size=0 is out of range"),
    ],
)
def test_param_validation_names_the_parameter(param, value, exc, words):
    with pytest.raises(exc, match=words):
        param.validate(value)


def test_param_coercion():
    assert Param("n", int, 3, "d").validate(np.int64(4)) == 4
    assert Param("n", int, 3, "d").validate(4.0) == 4
    assert Param("s", tuple, (1, 2), "d").validate([3, 4]) == (3, 4)


def test_unknown_parameter_and_processor_are_rejected():
    with pytest.raises(TypeError, match="unknown parameter"):
        napari_restore.get_processor("classic_denoise").validate_params({"sigmaa": 0.1})
    with pytest.raises(ValueError, match="unknown processor 'nope'; known processors: .*classic_denoise"):
        get_processor("nope")


def test_public_function_enforces_spec_ranges():
    img = np.zeros((16, 16), np.uint8)
    with pytest.raises(ValueError, match="sigma"):
        napari_restore.classic_denoise(img, sigma=-1.0)
    with pytest.raises(ValueError, match="method"):
        napari_restore.classic_denoise(img, method="median")


def test_key_text():
    spec = get_processor("classic_denoise")
    assert spec.key_text(spec.defaults()) == "nl_means σ=auto"
    assert spec.key_text({**spec.defaults(), "sigma": 0.1, "method": "wavelet"}) == "wavelet σ=0.1"


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, napari_restore; "
            "print(','.join(m for m in ('torch','bm3d','bm4d','cv2','napari','qtpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

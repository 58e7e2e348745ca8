from __future__ import annotations

import hashlib
import numpy as np
import pytest



@pytest.fixture(autouse=True)
def _isolated_config(tmp_path_factory, monkeypatch):
    """Remembered panel parameters go to a fresh folder per test, never the user's config."""
    monkeypatch.setenv("NAPARI_RESTORE_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))


def digest(arr) -> str:
    arr = np.asarray(arr)
    return hashlib.sha256(arr.tobytes() + str((arr.dtype, arr.shape)).encode()).hexdigest()


@pytest.fixture
def camera_pair():
    from napari_restore._sample_data import camera

    clean, noisy = camera()
    return clean[80:208, 180:308], noisy[80:208, 180:308]


@pytest.fixture
def temp_processor():
    """Register throw-away processors for a test; removed afterwards."""
    from napari_restore.processors.registry import ProcessorSpec, register, unregister

    names = []

    def make(name, plane_func, params=(), **kw):
        spec = register(ProcessorSpec(name=name, title=name.replace("_", " "),
                                      plane_func=plane_func, params=tuple(params), **kw),
                        replace=True)
        names.append(name)
        return spec

    yield make
    for n in names:
        unregister(n)

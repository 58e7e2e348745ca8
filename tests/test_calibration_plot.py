"""The Suggest plot (drawn with matplotlib, no Qt): readable parameter axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure

from napari_restore import calibrate
from napari_restore.widgets.calibrate_extras import LOG_TICKS, draw_calibration


@pytest.fixture(scope="module")
def noisy():
    rng = np.random.default_rng(3)
    clean = np.tile(np.linspace(40, 200, 48), (48, 1))
    return np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("grid", [np.geomspace(12.0, 60.0, 7), np.geomspace(0.02, 30.0, 9)])
def test_log_axis_labels_are_few_plain_numbers(noisy, grid):
    cal = calibrate(noisy, "classic_denoise", fixed={"method": "tv_chambolle"},
                    grid={"sigma": tuple(float(g) for g in grid)}, workers=1)
    fig = Figure()
    ax = fig.add_subplot()
    draw_calibration(ax, cal, fig)
    fig.canvas.draw()
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    minor = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    assert 2 <= len(labels) <= LOG_TICKS and not minor
    values = [float(v) for v in labels]  # plain numbers, not "2×10¹" mathtext
    lo, hi = ax.get_xlim()
    assert all(lo <= v <= hi for v in values)
    assert values[0] <= grid[0] * 1.05 and values[-1] >= grid[-1] * 0.95

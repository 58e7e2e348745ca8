"""Deep Image Prior's estimates: fair averages, the first one early, what Stop keeps, and an
automatic precision that is the same in every process.

Small crops and tiny nets: these test the mechanisms. The quality floor over many images
(returned estimate within 1 dB of the best one reported) is ``benchmarks/bench_dip_es.py``.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from napari_restore import Cancelled, DIPStep, DIPSummary, deep_image_prior, iter_deep_image_prior
from napari_restore.processors import dip as D

torch = pytest.importorskip("torch")

TINY = {"channels": 8, "depth": 3, "device": "cpu"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _schedule_by_iterations(monkeypatch):
    """The first estimate also comes early on a slow machine (FIRST_SECONDS); here the
    schedule must not depend on how loaded the test machine is."""
    monkeypatch.setattr(D, "FIRST_SECONDS", float("inf"))


def drain(gen, cancel_at=None, flag=None):
    steps = []
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value, steps
        steps.append(step)
        if cancel_at is not None and isinstance(step, DIPStep) and step.iteration == cancel_at:
            flag.set()


def noisy_crop(size=40, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    clean = 128 + 80 * np.sin(6 * x) * np.cos(4 * y)
    return np.clip(np.rint(clean + rng.normal(0, 25, clean.shape)), 0, 255).astype(np.uint8)


def plane_params(**kw):
    params = D.DEEP_IMAGE_PRIOR.defaults()
    params.pop("tile")  # the registry's (tiles of the plane), not a plane-function parameter
    params.update(channels=8, depth=3, device="cpu", precision="fp32")
    params.update(kw)
    return params


# -- the estimates are fair averages ------------------------------------------------------------
def _tensors(values, shape=(1, 4, 4)):
    return [torch.full(shape, float(v)) for v in values]


def test_window_mean_weighs_every_output_alike():
    win = D.OutputWindow(100)
    outs = _tensors([0.0] + [1.0] * 149)  # a bad first output, then the true value
    for k, out in enumerate(outs, start=1):
        win.add(out)
        mean = float(win.mean().mean())
        if k <= 100:  # the mean of all outputs so far, each with weight 1/k
            assert mean == pytest.approx((k - 1) / k, abs=1e-6)
        else:  # the first output has left the window
            assert mean == 1.0
    assert win.full and win.count == 150
    # a constant sequence is its own estimate at every iteration; the variance is 0
    const = D.OutputWindow(7)
    for k, out in enumerate(_tensors([0.3] * 12), start=1):
        const.add(out)
        assert torch.allclose(const.mean(), out) and const.variance() < 1e-12


def test_bias_corrected_average_is_fair_where_the_paper_average_is_not():
    beta = 0.99
    avg = D.ExponentialAverage(beta)
    seq = [0.0] + [1.0] * 299
    for out in _tensors(seq):
        avg.add(out)
    n = len(seq)
    weights = beta ** np.arange(n - 1, -1, -1.0)
    expected = float(np.dot(weights, seq) / weights.sum())
    got = float(avg.mean().mean())
    assert got == pytest.approx(expected, abs=1e-5)
    assert got > 0.999  # the first output weighs (1 - beta) beta**299 / (1 - beta**300)
    # the paper's average started at the first output keeps beta**299 = 5 % of it
    paper = seq[0]
    for x in seq[1:]:
        paper = beta * paper + (1 - beta) * x
    assert paper < 0.96
    # a constant sequence: exactly that constant from the first output on (no bias to 0)
    avg = D.ExponentialAverage(beta)
    for k, out in enumerate(_tensors([0.4] * 5)):
        avg.add(out)
        assert float(avg.mean().mean()) == pytest.approx(0.4, abs=1e-6)
    # ema = 0 is the last output
    last = D.ExponentialAverage(0.0)
    for out in _tensors([0.1, 0.7, 0.2]):
        last.add(out)
    assert float(last.mean().mean()) == pytest.approx(0.2)


def test_the_rule_never_chooses_before_the_window_is_full():
    win, es = D.OutputWindow(10), D.WindowVariance(patience=3)
    rng = np.random.default_rng(0)
    chosen, stopped = [], None
    for k in range(1, 40):
        spread = 1.0 / k  # steadier and steadier: every full window is a new minimum ...
        if k > 20:
            spread = 1.0  # ... until the outputs scatter again
        win.add(torch.from_numpy(rng.normal(0, spread, (1, 6, 6)).astype(np.float32)))
        stat, improved = es.update(win, k)
        assert np.isnan(stat) == (k < 10)
        if improved:
            chosen.append(k)
        if es.should_stop:
            stopped = k
            break
    assert chosen[0] == 10  # the first full window, not before
    assert stopped is not None and stopped == es.best_iteration + 3 >= 10 + 3


class _Window:
    """Stands in for an OutputWindow with a given statistic."""

    full = True

    def __init__(self):
        self.stat = 0.0

    def variance(self):
        return self.stat


def test_a_variance_that_only_creeps_down_is_a_plateau():
    """Fine texture under weak noise: the variance keeps falling a little, for ever (the net
    memorises the noise slowly). A new minimum counts only 2 % below the last one."""
    win = _Window()
    stops = {}
    for min_decrease in (0.0, None):  # None: the default, MIN_DECREASE
        es = D.WindowVariance(patience=50, min_decrease=min_decrease)
        for k in range(1, 1001):
            win.stat = 1.0 - 1e-5 * k  # a new minimum every iteration, 0.001 % lower
            es.update(win, k)
            if es.should_stop:
                stops[min_decrease] = (k, es.best_iteration)
                break
    assert 0.0 not in stops  # the rule of the paper never stops
    assert stops[None] == (51, 1)
    assert D.MIN_DECREASE == 0.02
    # a real drop still counts
    es = D.WindowVariance(patience=5)
    for k, stat in enumerate([1.0, 0.99, 0.985, 0.97, 0.969, 0.9], start=1):
        win.stat = stat
        es.update(win, k)
    assert es.best_iteration == 6 and es.best == 0.9
    assert es.since_best == 0


def test_first_estimate_early_then_every_25_and_it_is_the_running_mean():
    plane = noisy_crop().astype(np.float32) / 255
    params = plane_params(iterations=60, early_stopping=False)
    gen = D.dip_plane(plane, **params)
    _, items = drain(gen)
    steps = [s for s in items if isinstance(s, DIPStep)]
    assert [s.iteration for s in steps if s.estimate is not None] == [10, 25, 50, 60]
    assert [s.iteration for s in steps] == list(range(1, 61))
    # the first estimate is the mean of the first 10 outputs (the same kind as the later
    # ones), not the raw output of an iteration
    fit = D.DIPFit(plane, preset=D.preset_for("cpu", 8, 3, 4), reg_noise_std=1 / 30,
                   learning_rate=0.01, ema=None, device="cpu", precision="fp32", seed=0)
    outs = []
    for _ in range(10):
        fit.step()
        outs.append(fit.output.numpy()[0].copy())
    first = steps[9].estimate
    np.testing.assert_allclose(first, np.clip(np.mean(outs, axis=0), 0, 1), atol=1e-6)
    assert np.abs(first - outs[0]).max() > 1e-3 and np.abs(first - outs[-1]).max() > 1e-3
    # a smaller interval reports from its own first multiple; the public iterator agrees
    _, items = drain(iter_deep_image_prior(noisy_crop(), iterations=12, every=4,
                                           early_stopping=False, **TINY))
    assert [s.iteration for s in items if isinstance(s, DIPStep) and s.estimate is not None] \
        == [4, 8, 12]


def test_first_estimate_comes_sooner_on_a_slow_run(monkeypatch):
    monkeypatch.setattr(D, "FIRST_SECONDS", 0.0)  # as if every iteration took ages
    _, items = drain(D.dip_plane(noisy_crop().astype(np.float32) / 255,
                                 **plane_params(iterations=30, early_stopping=False)))
    reported = [s.iteration for s in items if isinstance(s, DIPStep) and s.estimate is not None]
    assert reported == [2, 10, 25, 30]  # from the second iteration: an average, not one output


# -- what a Stop keeps ------------------------------------------------------------------------
def test_stop_before_the_first_estimate_keeps_nothing():
    flag = threading.Event()
    seen = []
    with pytest.raises(Cancelled):
        gen = iter_deep_image_prior(noisy_crop(), iterations=500, cancel=flag, **TINY)
        while True:
            step = next(gen)
            seen.append(step)
            if isinstance(step, DIPStep) and step.iteration == 4:
                flag.set()
    steps = [s for s in seen if isinstance(s, DIPStep)]
    assert steps[-1].iteration == 4 and all(s.returned_iteration == 0 for s in steps)
    assert all(s.estimate is None for s in steps)


def test_stop_keeps_the_last_reported_estimate_until_the_window_is_full():
    flag = threading.Event()
    out, items = drain(iter_deep_image_prior(noisy_crop(), iterations=500, cancel=flag,
                                             **TINY), cancel_at=30, flag=flag)
    steps = [s for s in items if isinstance(s, DIPStep)]
    last = steps[-1]
    assert last.iteration == 30 and last.returned_iteration == 25  # window of 100: not full
    np.testing.assert_array_equal(out, steps[24].estimate)
    assert not any(isinstance(s, DIPSummary) for s in items)


def test_returned_iteration_replays_as_the_budget():
    """The iteration an estimate comes from is a budget that gives the same pixels: what the
    panel names and records a result with."""
    img = noisy_crop()
    kw = dict(window=5, patience=15, **TINY)
    out, items = drain(iter_deep_image_prior(img, iterations=400, **kw))
    summary = items[-1]
    assert isinstance(summary, DIPSummary) and summary.reason == "early_stopping"
    r = summary.returned_iteration
    assert 5 <= r == summary.stopped_iteration - 15
    np.testing.assert_array_equal(deep_image_prior(img, iterations=r, **kw), out)
    # and a Stop with the window full keeps the variance minimum, which replays too
    flag = threading.Event()
    kept, items = drain(iter_deep_image_prior(img, iterations=400, cancel=flag, **kw),
                        cancel_at=r + 3, flag=flag)
    last = [s for s in items if isinstance(s, DIPStep)][-1]
    assert last.returned_iteration == r
    np.testing.assert_array_equal(kept, out)


# -- precision="auto" is a function of the machine, not of a timing --------------------------
def test_auto_precision_depends_on_the_device_capabilities_only(monkeypatch):
    assert D.resolve_precision("auto", "cpu") == "fp32"
    assert D.resolve_precision("auto", "mps") == "fp32"
    for forced in ("fp32", "fp16", "bf16"):
        assert D.resolve_precision(forced, "cpu") == forced
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))
    assert D.resolve_precision("auto", "cuda") == "fp16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (6, 1))
    assert D.resolve_precision("auto", "cuda") == "fp32"
    assert not hasattr(D, "_probe_bf16")  # no timing probe left to consult


_RUN = """
import hashlib, numpy as np
from napari_restore import iter_deep_image_prior, DIPSummary
img = (np.random.default_rng(5).random((40, 40)) * 255).astype(np.uint8)
gen = iter_deep_image_prior(img, iterations=8, channels=8, depth=3)
while True:
    try:
        item = next(gen)
    except StopIteration as stop:
        out = stop.value
        break
    if isinstance(item, DIPSummary):
        precision = item.precision
print(precision, hashlib.sha256(out.tobytes()).hexdigest())
"""


def test_auto_precision_gives_the_same_bits_in_two_processes():
    procs = [subprocess.Popen([sys.executable, "-c", _RUN], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    runs = []
    for proc in procs:  # side by side: two processes at the same time, as two users would
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        runs.append(out.split())
    assert runs[0] == runs[1], runs
    if not torch.cuda.is_available():
        assert runs[0][0] == "fp32"

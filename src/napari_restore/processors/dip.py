"""Deep Image Prior denoising with ES-WMV early stopping (Ulyanov et al. 2018; Wang et al. 2023).

A randomly initialised encoder–decoder (:mod:`.dip_net`) is fitted to the noisy image from a
fixed noise input. Its structure makes it reproduce image content long before it reproduces
the noise, so the fit has to be stopped in time. The training loss cannot tell when: it keeps
falling while the net memorises the noise. ES-WMV watches the outputs instead. It keeps the
last ``window`` outputs and their mean per-pixel variance, and stops when that variance has not
reached a new minimum (by :data:`MIN_DECREASE`) for ``patience`` iterations. The estimate is
the mean of that same window (:class:`OutputWindow`): at the variance minimum it averages the
steadiest ``window`` outputs of the run, and it is returned.

The plane function :func:`dip_plane` is a generator. Every iteration it yields the fraction
of the iteration budget (for progress and ETA) and a :class:`DIPStep`; the step carries the
running estimate at iteration :data:`FIRST_ESTIMATE`, then every ``every`` iterations. When a
run ends normally it also yields a :class:`DIPSummary` (the iteration it stopped at and the one
it returned). If :class:`~napari_restore._arrays.Cancelled` is thrown in (Stop in the panel), it
returns the estimate its last step named (``stop_keeps_result=True``), or lets ``Cancelled``
through when it had reported no estimate yet.

torch is imported inside functions only.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._arrays import Cancelled, check_image, drain, from_working, value_scale
from .dip_net import CPU, PAPER, NetPreset, build_skip_net
from .registry import (
    TILE,
    Param,
    ProcessorSpec,
    params_docstring,
    public_signature,
    register,
)

#: Channels of the U(0, 0.1) noise input (the paper's denoising setting).
INPUT_CHANNELS = 32
#: A loss this many times the last good loss (a 5 dB PSNR drop, as in the official notebook)
#: counts as divergence: the last good weights are restored.
DIVERGENCE_FACTOR = 10 ** 0.5
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
#: Iteration of the first running estimate a run reports (then every ``every``), so that
#: the panel shows one within seconds ...
FIRST_ESTIMATE = 10
#: ... or sooner on a slow machine or a large plane: the first iteration (from the second
#: on, so that it averages outputs) that ends this many seconds after the run started.
FIRST_SECONDS = 3.0
#: ES-WMV counts a new minimum of the window variance only when it is this fraction below
#: the last one: a variance that keeps creeping down (fine texture under weak noise, where
#: the net memorises the noise slowly) is a plateau, not a reason to go on.
MIN_DECREASE = 0.02
#: CUDA compute capability from which ``precision="auto"`` uses fp16 autocast (tensor cores).
FP16_CAPABILITY = (7, 0)


@dataclass(frozen=True)
class DIPStep:
    """One Deep Image Prior iteration, as yielded by :func:`iter_deep_image_prior`.

    Attributes
    ----------
    iteration : int
        1-based iteration number.
    loss : float
        MSE between the net's output and the noisy image.
    stop_statistic : float
        ES-WMV statistic: mean per-pixel variance of the last ``window`` outputs (NaN until
        the window is full, or with early stopping off).
    estimate : ndarray or None
        The running estimate (bias-corrected exponential average of the outputs, see
        :attr:`DIPFit.estimate`) at iteration ``min(FIRST_ESTIMATE, every)``, then every
        ``every`` iterations and at the end of the budget; else None. Working range [0, 1]
        from the plane function; the input's dtype, range and channel layout from
        :func:`iter_deep_image_prior`.
    returned_iteration : int
        Iteration whose estimate a Stop after this step keeps (the ES-WMV variance minimum
        so far, else the last reported estimate); 0 before the first estimate, when a Stop
        keeps nothing.
    plane : int
        Index of the plane of an nD stack (0 for a single image).
    """

    iteration: int
    loss: float
    stop_statistic: float
    estimate: np.ndarray | None = field(repr=False)
    returned_iteration: int = 0
    plane: int = 0


@dataclass(frozen=True)
class DIPSummary:
    """How a plane's run ended (yielded once, after the last :class:`DIPStep` of a plane).

    ``reason`` is "early_stopping" or "budget". A run ended by Stop yields no summary: its
    last step's ``iteration`` / ``returned_iteration`` say the same.
    """

    stopped_iteration: int
    returned_iteration: int
    reason: str
    device: str
    precision: str
    seconds_per_iteration: float
    restores: int = 0
    plane: int = 0


# ---------------------------------------------------------------------------------------
# device and precision
# ---------------------------------------------------------------------------------------
def _mps_available(torch: Any) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str) -> str:
    """``"auto"`` -> "cuda", else "mps", else "cpu"; an unavailable device raises ValueError."""
    import torch

    if device not in DEVICES:
        allowed = ", ".join(repr(d) for d in DEVICES)
        raise ValueError(f"device={device!r} is not allowed; choose one of {allowed}")
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available(torch) else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' is not available here (torch.cuda.is_available() is "
                         "False); use device='auto' or 'cpu'")
    if device == "mps" and not _mps_available(torch):
        raise ValueError("device='mps' is not available here; use device='auto' or 'cpu'")
    return device


def preset_for(device: str, channels: int | None, depth: int, skip_channels: int) -> NetPreset:
    """The net size: ``channels=None`` picks the paper's 128 on a GPU, the CPU preset on a CPU."""
    if channels is None:
        channels = CPU.channels if device == "cpu" else PAPER.channels
    return NetPreset(channels=channels, depth=depth, skip_channels=skip_channels)


def resolve_precision(precision: str, device: str) -> str:
    """The precision a run uses on ``device`` (a resolved device, not "auto").

    ``"auto"`` depends only on the device and what it supports, never on a timing, so the
    same call gives the same bits in every process: fp16 autocast with a GradScaler on a
    CUDA GPU with tensor cores (compute capability >= :data:`FP16_CAPABILITY`), fp32
    otherwise (older GPUs, MPS, and the CPU, where bf16 would be faster on CPUs with
    AVX512-BF16 but rounds the outputs to steps of up to 1/256; ``precision="bf16"`` asks
    for it).
    """
    if precision != "auto":
        return precision
    if device == "cuda":
        import torch

        if tuple(torch.cuda.get_device_capability()) >= FP16_CAPABILITY:
            return "fp16"
    return "fp32"


# ---------------------------------------------------------------------------------------
# the fit
# ---------------------------------------------------------------------------------------
def _padded_shape(h: int, w: int, depth: int) -> tuple[int, int]:
    """Smallest size >= (h, w) divisible by 2**depth whose deepest feature map is >= 2 pixels
    (reflection padding needs 2)."""
    m = 2 ** depth
    return tuple(max(math.ceil(n / m) * m, 2 * m) for n in (h, w))  # type: ignore[return-value]


class OutputWindow:
    """The last ``size`` outputs of a fit (a ring on the fit's device).

    Its mean is the running estimate (:attr:`DIPFit.estimate`); its mean per-pixel
    variance is ES-WMV's statistic. Both come from one ``torch.var_mean`` pass per
    iteration: the estimate at the variance minimum costs nothing more.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.ring: Any = None
        self.count = 0
        self._cached: tuple[int, Any, Any] | None = None  # (count, variance map, mean)

    def add(self, out: Any) -> None:
        if self.ring is None:
            self.ring = out.new_empty((self.size, *out.shape))
        self.ring[self.count % self.size] = out
        self.count += 1

    @property
    def full(self) -> bool:
        return self.count >= self.size

    def _stats(self) -> tuple[Any, Any]:
        if self._cached is None or self._cached[0] != self.count:
            import torch

            outs = self.ring if self.full else self.ring[: self.count]
            var, mean = torch.var_mean(outs, dim=0, correction=0)
            self._cached = (self.count, var, mean)
        return self._cached[1], self._cached[2]

    def mean(self) -> Any:
        """Mean of the outputs in the window (all outputs so far until it is full)."""
        return None if self.count == 0 else self._stats()[1]

    def variance(self) -> float:
        """Mean over pixels of the per-pixel variance of the outputs in the window."""
        return float(self._stats()[0].mean())


class ExponentialAverage:
    """Exponential average of outputs with Adam's bias correction.

    ``sum = beta * sum + (1 - beta) * x`` from a zero start, divided by its total weight
    ``1 - beta**n``: output ``k`` of ``n`` counts ``beta**(n - k)`` times as much as the
    last, and no output stands in for the missing history (an average started at the first
    output gives that one the weight ``beta**(n - 1)`` of all the history before it).
    """

    def __init__(self, beta: float) -> None:
        self.beta = beta
        self._sum: Any = None
        self._weight = 0.0

    def add(self, out: Any) -> None:
        if self._sum is None:
            self._sum = out.new_zeros(out.shape)
        self._sum.mul_(self.beta).add_(out, alpha=1.0 - self.beta)
        self._weight = self.beta * self._weight + (1.0 - self.beta)

    def mean(self) -> Any:
        return None if self._sum is None else self._sum / self._weight


class DIPFit:
    """One Deep Image Prior fit of a working plane: net, noise input, optimiser, estimate.

    The noise input is a registered *buffer* of ``self.model`` (``model.noise``): it has no
    gradient and is not among the optimiser's parameters. Each :meth:`step` feeds it with a
    fresh perturbation of standard deviation ``reg_noise_std``. ``self.window`` keeps the
    last ``window`` outputs (see :class:`OutputWindow`).
    """

    def __init__(self, plane: np.ndarray, *, preset: NetPreset, reg_noise_std: float,
                 learning_rate: float, ema: float | None, device: str, precision: str,
                 seed: int, window: int = 100) -> None:
        import torch
        from torch import nn

        self.torch = torch
        self.h, self.w = plane.shape[:2]
        self.out_ch = 1 if plane.ndim == 2 else plane.shape[2]
        self.device = torch.device(device)
        ph, pw = _padded_shape(self.h, self.w, preset.depth)
        # The net ends in a sigmoid and fits the plane's own range: data sitting in a small
        # part of the working range (12-bit data in uint16, floats of ~1e-3 kept in [0, 1])
        # would otherwise be fitted far slower and worse than the same values given in
        # another dtype. to_numpy maps back. A constant plane sits at the sigmoid's centre
        # of a span of 1e-6: whatever the net outputs, the result is that constant.
        low, high = float(np.min(plane)), float(np.max(plane))
        self.span = high - low if high > low else 1e-6
        self.low = low if high > low else low - 0.5e-6
        plane = (np.asarray(plane, dtype=np.float64) - self.low) / self.span
        chw = plane[None] if plane.ndim == 2 else np.moveaxis(plane, -1, 0)
        padded = np.pad(chw, ((0, 0), (0, ph - self.h), (0, pw - self.w)), mode="reflect")
        self.precision = resolve_precision(precision, device)
        self.reg_noise_std = reg_noise_std
        self.window = OutputWindow(window)
        self.average = ExponentialAverage(ema) if ema is not None else None

        class DIPModel(nn.Module):
            def __init__(self, net: nn.Module, noise: torch.Tensor) -> None:
                super().__init__()
                self.net = net
                self.register_buffer("noise", noise)

            def forward(self, perturbation: torch.Tensor | None = None) -> torch.Tensor:
                x = self.noise if perturbation is None else self.noise + perturbation
                return self.net(x)

        with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left alone
            torch.manual_seed(seed)
            net = build_skip_net(INPUT_CHANNELS, self.out_ch, preset)
            noise = torch.rand(1, INPUT_CHANNELS, ph, pw) * 0.1
        self.model = DIPModel(net, noise).to(self.device)
        self.model.train()
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed + 1)
        self.target = torch.from_numpy(np.array(padded[None], dtype=np.float32)).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.net.parameters(), lr=learning_rate)
        self._params = [p for p in self.model.net.parameters()]
        self._good = [p.detach().clone() for p in self._params]
        self._good_loss = math.inf
        self.restores = 0
        amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)
        self._amp_dtype = amp_dtype
        self.scaler = None
        if self.precision == "fp16":
            self.scaler = torch.amp.GradScaler(self.device.type)
        self.output: torch.Tensor | None = None
        self.last_ok = False

    def step(self) -> float:
        """One Adam step; returns the loss. Updates ``self.output`` and the running estimate."""
        torch = self.torch
        self.optimizer.zero_grad(set_to_none=True)
        pert = None
        if self.reg_noise_std > 0:
            pert = torch.randn(self.model.noise.shape, generator=self.generator,
                               device=self.device) * self.reg_noise_std
        if self._amp_dtype is None:
            out = self.model(pert)
        else:
            with torch.autocast(self.device.type, dtype=self._amp_dtype):
                out = self.model(pert)
        out = out.float()[..., : self.h, : self.w]
        loss = torch.nn.functional.mse_loss(out, self.target[..., : self.h, : self.w])
        value = float(loss.detach())
        self.last_ok = math.isfinite(value) and value <= DIVERGENCE_FACTOR * self._good_loss
        if not self.last_ok:
            # divergence guard: back to the last good weights, skip this output
            with torch.no_grad():
                torch._foreach_copy_(self._params, self._good)
            self.restores += 1
            return value * self.span ** 2
        with torch.no_grad():
            torch._foreach_copy_(self._good, [p.detach() for p in self._params])
        self._good_loss = value
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        out = out.detach()[0]
        self.output = out
        self.window.add(out)
        if self.average is not None:
            self.average.add(out)
        return value * self.span ** 2  # the MSE in working units

    @property
    def estimate(self) -> Any:
        """The running estimate (a ``(C, H, W)`` tensor; None before the first output).

        With ``ema=None``: the mean of the last ``window`` outputs (of all outputs until
        the window is full), each output with the same weight. With a weight ``ema``: the
        bias-corrected exponential average of all outputs (:class:`ExponentialAverage`);
        ``ema=0`` gives the last output. Either way a fair average of the outputs it
        covers, at any iteration.
        """
        if self.average is None:
            return self.window.mean()
        return self.average.mean()

    def to_numpy(self, t: Any) -> np.ndarray:
        """(C, H, W) tensor -> working plane of the input's layout, clipped to [0, 1]."""
        arr = t.detach().float().cpu().numpy()
        arr = arr[0] if self.out_ch == 1 else np.moveaxis(arr, 0, -1)
        arr = (arr * self.span + self.low).astype(np.float32)  # back from the plane's range
        return np.clip(arr, 0.0, 1.0)


class WindowVariance:
    """ES-WMV's stop rule on an :class:`OutputWindow`.

    Stop when the window variance has not reached a new minimum, at least ``min_decrease``
    (:data:`MIN_DECREASE`) below the last one, for ``patience`` iterations; the iteration of
    that minimum is the one whose estimate is returned. The statistic exists once the window
    is full, so that iteration is never before ``window`` outputs, and a stop never before
    ``window + patience`` iterations: the estimate then always averages a full window.
    """

    def __init__(self, patience: int, min_decrease: float | None = None) -> None:
        self.patience = patience
        self.min_decrease = MIN_DECREASE if min_decrease is None else min_decrease
        self.best = math.inf
        self.best_iteration = 0
        self.since_best = 0
        self.full = False

    def update(self, window: OutputWindow, iteration: int) -> tuple[float, bool]:
        """After an output was added: ``(statistic, improved)`` (NaN until the window is
        full)."""
        self.full = window.full
        if not self.full:
            return math.nan, False
        stat = window.variance()
        if stat < self.best * (1.0 - self.min_decrease):
            self.best, self.best_iteration, self.since_best = stat, iteration, 0
            return stat, True
        self.since_best += 1
        return stat, False

    @property
    def should_stop(self) -> bool:
        return self.full and self.since_best >= self.patience


def dip_footprint(params: dict[str, Any]) -> int:
    """Tile halo: the skip net's receptive field, taken as 2**(depth + 1) px, at most 64.

    Each tile is its own fit (its own net, the same seed), so tiles agree only as well as
    two fits do; the tiled result is within 0.5 dB of the untiled one
    (``benchmarks/bench_tiles.py``).
    """
    return min(64, 2 ** (int(params.get("depth", 5)) + 1))


def dip_memory(params: dict[str, Any], shape: tuple[int, ...]) -> int:
    """Rough bytes for one plane (checked up front): network activations and gradients, and
    the window of the last outputs (three colour channels assumed)."""
    channels = params.get("channels") or 32
    window = params.get("window") or 100
    pixels = int(np.prod(shape[-2:]))
    # ~20 float32 maps of `channels` at full size, incl. backward; the float32 output ring
    return (80 * channels + 12 * window) * pixels


def _is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's out-of-memory errors (CUDA, MPS and the CPU allocator)."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text
                                              or "can't allocate memory" in text)


def _out_of_memory_error(device: str, shape: tuple[int, ...], channels: int,
                         detail: str) -> MemoryError:
    h, w = shape[:2]
    return MemoryError(
        f"Deep Image Prior ran out of {device} memory on a {h}×{w} plane with {channels} "
        f"channels per scale ({detail}). Process a smaller field of view (the panel's "
        "'view' target, or a crop), use fewer channels, or choose device='cpu'."
    )


def check_device_memory(device: str, shape: tuple[int, ...], channels: int,
                        window: int = 100) -> None:
    """Refuse up front a fit whose activations would not fit in the GPU's free memory.

    System memory is checked by the array boundary (``ProcessorSpec.memory``); this is the
    CUDA counterpart, from ``torch.cuda.mem_get_info`` before anything is allocated.
    """
    if device != "cuda":
        return
    import torch

    free, _total = torch.cuda.mem_get_info()
    need = dip_memory({"channels": channels, "window": window}, shape)
    if need > free:
        gib = 1 << 30
        raise _out_of_memory_error(
            device, shape, channels,
            f"needs about {need / gib:.1f} GiB, {free / gib:.1f} GiB free on the GPU")


@contextlib.contextmanager
def _clear_out_of_memory(device: str, shape: tuple[int, ...], channels: int):
    """Turn torch's out-of-memory error into a clear ``MemoryError`` and free the cache."""
    try:
        yield
    except Exception as exc:
        if not _is_out_of_memory(exc):
            raise
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if device == "cuda":
            import torch

            torch.cuda.empty_cache()
        raise _out_of_memory_error(device, shape, channels, detail) from None


def dip_plane(
    plane: np.ndarray,
    **params: Any,
) -> Generator[Any, None, np.ndarray]:
    """Fit Deep Image Prior to one working plane (``(H, W)`` or ``(H, W, 3)`` in [0, 1]).

    Yields a :class:`DIPStep` every iteration (and the fraction of the iteration budget done
    whenever it grows by 0.1 %), then a :class:`DIPSummary`. A step carries the running
    estimate at iteration ``min(FIRST_ESTIMATE, every)`` (or at the first iteration from the
    second on that ends :data:`FIRST_SECONDS` after the start, if that comes sooner), then
    every ``every`` iterations and at the last iteration of the budget. Returns the
    estimate at the ES-WMV variance minimum (the estimate after the budget with
    ``early_stopping=False``, or when the window never filled).

    On :class:`Cancelled` (Stop) it returns what the last step it reported names in
    ``returned_iteration``: the estimate at the variance minimum so far, else the last
    estimate it reported. Stopped before it reported any estimate, it raises
    :class:`Cancelled` (nothing to keep). A fit too large for the GPU is refused before
    allocating, and torch's out-of-memory error becomes a ``MemoryError`` suggesting a
    smaller field of view.
    """
    # the parameters are the spec's (validated and resolved by the registry): named once there
    iterations, early_stopping, window, patience = (
        params["iterations"], params["early_stopping"], params["window"], params["patience"])
    every, reg_noise_std, learning_rate = (
        params["every"], params["reg_noise_std"], params["learning_rate"])
    ema, precision, seed = params["ema"], params["precision"], params["seed"]
    t_start = time.perf_counter()
    dev = resolve_device(params["device"])
    preset = preset_for(dev, params["channels"], params["depth"], params["skip_channels"])
    check_device_memory(dev, plane.shape, preset.channels, window)
    with _clear_out_of_memory(dev, plane.shape, preset.channels):
        fit = DIPFit(plane, preset=preset, reg_noise_std=reg_noise_std,
                     learning_rate=learning_rate, ema=ema, device=dev, precision=precision,
                     seed=seed, window=window)
    es = WindowVariance(patience) if early_stopping else None
    first = min(FIRST_ESTIMATE, every)
    best: Any = None  # estimate at the variance minimum (a tensor)
    best_it = 0
    shown: np.ndarray | None = None  # the last estimate the consumer received
    shown_it = 0
    it = 0
    t0 = time.perf_counter()
    try:
        reason = "budget"
        for it in range(1, iterations + 1):
            if (it - 1) * 1000 // iterations != it * 1000 // iterations or it == 1:
                yield (it - 1) / iterations  # progress (per mille: a long run floods nobody)
            with _clear_out_of_memory(dev, plane.shape, preset.channels):
                loss = fit.step()
            stat = math.nan
            before = best, best_it
            if es is not None and fit.last_ok:
                stat, improved = es.update(fit.window, it)
                if improved:
                    best, best_it = fit.estimate, it
            report = it == first or it % every == 0 or it == iterations or (
                shown is None and it >= 2
                and time.perf_counter() - t_start >= FIRST_SECONDS)
            est = fit.to_numpy(fit.estimate) if report else None
            if shown is None and not report:
                returned = 0  # a Stop now keeps nothing
            else:
                returned = best_it if best is not None else (it if report else shown_it)
            try:
                yield DIPStep(it, loss, stat * fit.span ** 2, est, returned)  # working units
            except Cancelled:
                # a Stop at this step drops it (it is never reported), so keep what the
                # last reported step describes
                best, best_it = before
                raise
            if report:
                shown, shown_it = est, it
            if es is not None and es.should_stop:
                reason = "early_stopping"
                break
        if best is not None:
            result, returned = fit.to_numpy(best), best_it
        else:
            result, returned = fit.to_numpy(fit.estimate), it
        yield DIPSummary(it, returned, reason, dev, fit.precision,
                         (time.perf_counter() - t0) / max(it, 1), fit.restores)
        return result
    except Cancelled:
        if shown is None:
            raise  # stopped before the first estimate: nothing to keep
        return fit.to_numpy(best) if best is not None else shown


def _check(params: dict[str, Any], image: Any) -> None:
    resolve_device(params["device"])
    if params["precision"] == "fp16" and params["device"] == "cpu":
        import torch

        if not hasattr(torch.amp, "GradScaler"):  # pragma: no cover - old torch
            raise ValueError("precision='fp16' on the CPU needs torch >= 2.3; use 'bf16' or 'fp32'")


def _prepare(params: dict[str, Any], image: Any) -> dict[str, Any]:
    # What runs: the concrete device, net width and precision. Each is a function of the
    # machine's capabilities only (never of a timing), so every process resolves them alike.
    params["device"] = resolve_device(params["device"])
    preset = preset_for(params["device"], params["channels"], params["depth"],
                        params["skip_channels"])
    params["channels"] = preset.channels
    params["precision"] = resolve_precision(params["precision"], params["device"])
    return params


DEEP_IMAGE_PRIOR = register(
    ProcessorSpec(
        name="deep_image_prior",
        title="Deep Image Prior",
        plane_func=dip_plane,
        input_kind="rgb",
        min_size=8,
        check=_check,
        prepare=_prepare,
        stop_keeps_result=True,
        memory=lambda params, shape: dip_memory(params, shape),
        footprint=lambda params, shape: dip_footprint(params),
        default_target="view",
        summary=(
            "Deep Image Prior: a randomly initialised encoder-decoder is fitted to the noisy "
            "image and stopped by ES-WMV (the variance of its recent outputs) before it learns "
            "the noise. Slow (seconds to minutes per plane); Stop keeps the best estimate so far."
        ),
        references=(
            "Ulyanov, Vedaldi & Lempitsky, 'Deep Image Prior', CVPR 2018 / IJCV 128, 2020.",
            "Wang, Li, Zhuang, Jin & Sun, 'Early Stopping for Deep Image Prior', TMLR 2023.",
        ),
        params=(
            Param("iterations", int, 3000, "Iteration budget (early stopping usually ends sooner).",
                  min=1, max=100_000, key=True, label="it"),
            Param("early_stopping", bool, True,
                  "Stop by ES-WMV and return the estimate at the variance minimum."),
            Param("window", int, 100, "Number of recent outputs whose mean is the estimate and "
                  "whose per-pixel variance is the ES-WMV statistic.", min=2, max=1000),
            Param("patience", int, 200, "Stop when the windowed variance has not reached a new "
                  f"minimum ({MIN_DECREASE:.0%} below the last) for this many iterations.",
                  min=1, max=100_000),
            Param("channels", int, None, "Channels per scale; empty = 128 (paper) on a GPU, "
                  f"{CPU.channels} on the CPU.", min=1, max=512, optional=True, key=True,
                  label="ch"),
            Param("depth", int, 5, "Scales of the encoder-decoder (each halves the size).",
                  min=1, max=8),
            Param("skip_channels", int, 4, "Channels of each skip connection (0 = none).",
                  min=0, max=128),
            Param("reg_noise_std", float, 1 / 30, "Std of the fresh perturbation added to the "
                  "noise input every iteration.", min=0.0, max=1.0, step=0.005),
            Param("learning_rate", float, 0.01, "Adam learning rate.", min=1e-6, max=1.0,
                  step=0.001),
            Param("ema", float, None, "Estimate: empty = mean of the last 'window' outputs; a "
                  "weight = bias-corrected exponential average of all outputs (0 = the last "
                  "output).", min=0.0, max=0.9999, step=0.01, optional=True),
            Param("device", str, "auto", "Where to run: auto = CUDA, else MPS, else CPU.",
                  choices=DEVICES),
            Param("precision", str, "auto", "auto = fp16 AMP on a CUDA GPU with tensor cores, "
                  "else fp32 (by the device's capabilities, never by a timing).",
                  choices=PRECISIONS),
            Param("seed", int, 0, "Seed of the net, the noise input and the perturbations.",
                  min=0, max=2**31 - 1),
            Param("every", int, 25, "Report the current estimate (live preview) every N "
                  f"iterations, the first at iteration {FIRST_ESTIMATE} (or N if smaller); "
                  "does not change the result.", min=1, max=100_000),
            TILE,
        ),
    )
)


def iter_deep_image_prior(image: Any, *, channel_axis: int | None = None, cancel: Any = None,
                          **params: Any) -> Generator[DIPStep | DIPSummary, None, np.ndarray]:
    """Deep Image Prior as a generator: yields :class:`DIPStep` / :class:`DIPSummary`,
    returns the denoised image.

    Parameters are those of :func:`deep_image_prior`, plus ``cancel`` (a
    ``threading.Event`` or callable, checked every iteration). When it is set, a single
    image's run ends and returns the estimate the last step names in
    ``returned_iteration`` (the variance minimum so far, else the last reported estimate);
    :class:`~napari_restore.Cancelled` is raised for a stack, and before the first
    reported estimate (nothing to keep). Estimates are reported at iteration
    ``min(FIRST_ESTIMATE, every)`` (10), then every ``every`` iterations and at the end of
    the budget, in the input's dtype, value range and channel layout.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_restore import iter_deep_image_prior
    >>> noisy = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    >>> gen = iter_deep_image_prior(noisy, iterations=3, every=1, depth=2, channels=4)
    >>> [step.iteration for step in gen if hasattr(step, "loss")]
    [1, 2, 3]
    """
    DEEP_IMAGE_PRIOR.validate_params(params)  # names and values checked at the call
    return _iter_dip(image, channel_axis, cancel, params)


def _iter_dip(image: Any, channel_axis: int | None, cancel: Any,
              params: dict[str, Any]) -> Generator[DIPStep | DIPSummary, None, np.ndarray]:
    arr, cax = check_image(image, channel_axis=channel_axis, min_size=DEEP_IMAGE_PRIOR.min_size)
    scale = value_scale(arr)
    gen = DEEP_IMAGE_PRIOR.iter_apply(image, channel_axis=channel_axis, cancel=cancel, **params)
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        info = item.info
        if isinstance(info, DIPStep):
            est = info.estimate
            if est is not None:
                est = from_working(est, scale)
                if cax is not None and arr.ndim == 3:  # one colour image: its own layout
                    est = np.moveaxis(est, -1, cax)
            yield replace(info, estimate=est, plane=item.done)
        elif isinstance(info, DIPSummary):
            yield replace(info, plane=item.done)


def deep_image_prior(image: Any, *, channel_axis: int | None = None, **params: Any) -> np.ndarray:
    """Denoise with Deep Image Prior, stopped early by ES-WMV.

    Parameters
    ----------
    image : ndarray
        2-D image, RGB/RGBA image (with ``channel_axis``) or nD stack of either (plane by
        plane); any real dtype and strides; not modified. Planes smaller than the net's
        ``2**(depth+1)`` are reflection-padded.
{params}
    channel_axis : int or None
        Colour axis of an RGB/RGBA image (alpha passes through); None for greyscale.

    Returns
    -------
    ndarray
        Denoised image, same shape and dtype (and value range) as ``image``.

    Notes
    -----
    Each parameter is written once, in the spec (``DEEP_IMAGE_PRIOR.params``): this
    signature, the parameter list above, the panel and the docs' table are made from it.

    - ES-WMV (``early_stopping``) stops when the mean per-pixel variance of the last
      ``window`` outputs has not reached a new minimum (2 % below the last,
      :data:`MIN_DECREASE`) for ``patience`` iterations, and returns the estimate at that
      minimum: never a stop before ``window + patience`` iterations. Without it, the estimate
      after ``iterations`` is returned.
    - ``channels=None`` is 128 (the paper) on a GPU and a narrow CPU preset on the CPU (see
      ``benchmarks/bench_dip.py``); ``depth`` and ``skip_channels`` are the paper's 5 and 4.
    - ``ema=None`` is the mean of the ES-WMV window; a weight in [0, 1) is the exponential
      average of all outputs with Adam's bias correction (0: the last output). Either is a fair
      average at every iteration.
    - ``precision="auto"`` is fp16 autocast with a GradScaler on a CUDA GPU of compute
      capability 7.0 or newer, fp32 otherwise: by the device's capabilities, never a timing, so
      the same call gives the same bits in every process. ``seed`` fixes the weights, the noise
      input and the perturbations: CPU runs repeat exactly.
    - ``tile``: overlapping tiles, blended, each its own fit, in parallel worker processes (one
      CPU thread each); "auto" = strips about 512 rows high, at most about 2048 px wide; whole planes otherwise (tiled anyway
      only when a plane cannot fit; see ``docs/large-images.md``).
    - Planes smaller than the net's ``2**(depth+1)`` are reflection-padded.

    References
    ----------
    .. [1] Ulyanov, Vedaldi & Lempitsky, "Deep Image Prior", CVPR 2018.
    .. [2] Wang, Li, Zhuang, Jin & Sun, "Early Stopping for Deep Image Prior", TMLR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_restore import deep_image_prior
    >>> noisy = (np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8)
    >>> deep_image_prior(noisy, iterations=2, depth=2, channels=4).dtype
    dtype('uint8')
    """
    return drain(iter_deep_image_prior(image, channel_axis=channel_axis, **params))


# The public signatures and the parameter list of the docstring, made from the spec.
iter_deep_image_prior.__signature__ = public_signature(  # type: ignore[attr-defined]
    DEEP_IMAGE_PRIOR, after=(("channel_axis", None), ("cancel", None)),
    returns="Generator[DIPStep | DIPSummary, None, np.ndarray]")
deep_image_prior.__signature__ = public_signature(  # type: ignore[attr-defined]
    DEEP_IMAGE_PRIOR, after=(("channel_axis", None),))
if deep_image_prior.__doc__:  # None under python -OO
    deep_image_prior.__doc__ = deep_image_prior.__doc__.replace(
        "{params}", params_docstring(DEEP_IMAGE_PRIOR))

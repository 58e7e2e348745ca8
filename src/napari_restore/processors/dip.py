"""Deep Image Prior denoising with ES-WMV early stopping (Ulyanov et al. 2018; Wang et al. 2023).

A randomly initialised encoder–decoder (:mod:`.dip_net`) is fitted to the noisy image from a
fixed noise input. Its structure makes it reproduce image content long before it reproduces
the noise, so the fit has to be stopped in time. The training loss cannot tell when: it keeps
falling while the net memorises the noise. ES-WMV watches the outputs instead. It keeps the
last ``window`` outputs and their mean per-pixel variance, and stops when that variance has not
reached a new minimum for ``patience`` iterations. The estimate kept at the variance minimum is
returned.

The plane function :func:`dip_plane` is a generator. Every iteration it yields the fraction
of the iteration budget (for progress and ETA) and a :class:`DIPStep`; the step carries the
current estimate every ``every`` iterations. When a run ends normally it also yields a
:class:`DIPSummary` (the iteration it stopped at and the one it returned). If
:class:`~napari_restore._arrays.Cancelled` is thrown in (Stop in the panel), it returns the best
estimate so far, so the spec sets ``stop_keeps_result=True``.

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

from .._arrays import Cancelled, check_image, from_working, value_scale
from .dip_net import CPU, PAPER, NetPreset, build_skip_net
from .registry import Param, ProcessorSpec, register

#: Channels of the U(0, 0.1) noise input (the paper's denoising setting).
INPUT_CHANNELS = 32
#: A loss this many times the last good loss (a 5 dB PSNR drop, as in the official notebook)
#: counts as divergence: the last good weights are restored.
DIVERGENCE_FACTOR = 10 ** 0.5
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


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
        The current estimate (exponential average of outputs) every ``every`` iterations,
        else None. Working range [0, 1] from the plane function; the input's dtype, range and
        channel layout from :func:`iter_deep_image_prior`.
    returned_iteration : int
        Iteration whose estimate would be returned if the run ended now.
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


_PROBES: dict[tuple, str] = {}


def _probe_bf16(preset: NetPreset, shape: tuple[int, int], out_ch: int) -> str:
    """Time a few fp32 and bf16-autocast iterations on the CPU; "bf16" only if clearly faster.

    Runs on at most a 256² tile and is cached per (preset, tile shape); the resolved precision
    is recorded in the run's parameters, so a recipe replays it. Uses its own net and input: the caller's random state is untouched.
    """
    # a 256² tile tells the same ratio as a huge image, at a fraction of the cost
    shape = _padded_shape(min(shape[0], 256), min(shape[1], 256), preset.depth)
    key = (preset, shape, out_ch)
    if key in _PROBES:
        return _PROBES[key]
    import torch

    choice = "fp32"
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = build_skip_net(INPUT_CHANNELS, out_ch, preset)
            x = torch.rand(1, INPUT_CHANNELS, *shape) * 0.1
            y = torch.rand(1, out_ch, *shape)

            def timed(dtype: Any) -> float:
                best = math.inf
                for k in range(3):
                    t0 = time.perf_counter()
                    ctx = (torch.autocast("cpu", dtype=dtype) if dtype is not None
                           else contextlib.nullcontext())
                    with ctx:
                        out = net(x)
                    loss = torch.nn.functional.mse_loss(out.float(), y)
                    loss.backward()
                    if k:  # the first call warms up
                        best = min(best, time.perf_counter() - t0)
                    net.zero_grad(set_to_none=True)
                return best

            fp32, bf16 = timed(None), timed(torch.bfloat16)
            if bf16 < 0.8 * fp32:
                choice = "bf16"
    except RuntimeError:  # bf16 autocast unsupported for some layer on this build
        choice = "fp32"
    _PROBES[key] = choice
    return choice


def resolve_precision(precision: str, device: str, preset: NetPreset,
                      shape: tuple[int, int], out_ch: int) -> str:
    """``"auto"``: fp16 (with GradScaler) on CUDA, bf16 on CPU when the probe finds it
    faster, fp32 otherwise."""
    if precision != "auto":
        return precision
    if device == "cuda":
        return "fp16"
    if device == "cpu":
        return _probe_bf16(preset, shape, out_ch)
    return "fp32"


# ---------------------------------------------------------------------------------------
# the fit
# ---------------------------------------------------------------------------------------
def _padded_shape(h: int, w: int, depth: int) -> tuple[int, int]:
    """Smallest size >= (h, w) divisible by 2**depth whose deepest feature map is >= 2 pixels
    (reflection padding needs 2)."""
    m = 2 ** depth
    return tuple(max(math.ceil(n / m) * m, 2 * m) for n in (h, w))  # type: ignore[return-value]


class DIPFit:
    """One Deep Image Prior fit of a working plane: net, noise input, optimiser, EMA.

    The noise input is a registered *buffer* of ``self.model`` (``model.noise``): it has no
    gradient and is not among the optimiser's parameters. Each :meth:`step` feeds it with a
    fresh perturbation of standard deviation ``reg_noise_std``.
    """

    def __init__(self, plane: np.ndarray, *, preset: NetPreset, reg_noise_std: float,
                 learning_rate: float, ema: float, device: str, precision: str, seed: int) -> None:
        import torch
        from torch import nn

        self.torch = torch
        self.h, self.w = plane.shape[:2]
        self.out_ch = 1 if plane.ndim == 2 else plane.shape[2]
        self.device = torch.device(device)
        ph, pw = _padded_shape(self.h, self.w, preset.depth)
        chw = plane[None] if plane.ndim == 2 else np.moveaxis(plane, -1, 0)
        padded = np.pad(chw, ((0, 0), (0, ph - self.h), (0, pw - self.w)), mode="reflect")
        self.precision = resolve_precision(precision, device, preset, (ph, pw), self.out_ch)
        self.reg_noise_std = reg_noise_std
        self.ema_weight = ema

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
        self.ema: torch.Tensor | None = None
        self.output: torch.Tensor | None = None
        self.last_ok = False

    def step(self) -> float:
        """One Adam step; returns the loss. Updates ``self.output`` and ``self.ema``."""
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
            return value
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
        if self.ema is None:
            self.ema = out.clone()
        else:
            self.ema.mul_(self.ema_weight).add_(out, alpha=1.0 - self.ema_weight)
        return value

    def to_numpy(self, t: Any) -> np.ndarray:
        """(C, H, W) tensor -> working plane of the input's layout, clipped to [0, 1]."""
        arr = t.detach().float().cpu().numpy()
        arr = arr[0] if self.out_ch == 1 else np.moveaxis(arr, 0, -1)
        return np.clip(arr, 0.0, 1.0)


class WindowVariance:
    """ES-WMV: mean per-pixel variance of the last ``window`` outputs, and the stop rule."""

    def __init__(self, window: int, patience: int) -> None:
        self.window, self.patience = window, patience
        self.ring: Any = None
        self.count = 0
        self.best = math.inf
        self.best_iteration = 0
        self.since_best = 0

    def update(self, out: Any, iteration: int) -> tuple[float, bool]:
        """Add an output; return ``(statistic, improved)`` (NaN until the window is full)."""
        if self.ring is None:
            self.ring = out.new_empty((self.window, *out.shape))
        self.ring[self.count % self.window] = out
        self.count += 1
        if self.count < self.window:
            return math.nan, False
        stat = float(self.ring.var(dim=0, unbiased=False).mean())
        if stat < self.best:
            self.best, self.best_iteration, self.since_best = stat, iteration, 0
            return stat, True
        self.since_best += 1
        return stat, False

    @property
    def should_stop(self) -> bool:
        return self.count >= self.window and self.since_best >= self.patience


def dip_memory(params: dict[str, Any], shape: tuple[int, ...]) -> int:
    """Rough bytes of network activations + gradients for one plane (checked up front)."""
    channels = params.get("channels") or 32
    pixels = int(np.prod(shape[-2:]))
    return 80 * channels * pixels  # ~20 float32 maps of `channels` at full size, incl. backward


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


def check_device_memory(device: str, shape: tuple[int, ...], channels: int) -> None:
    """Refuse up front a fit whose activations would not fit in the GPU's free memory.

    System memory is checked by the array boundary (``ProcessorSpec.memory``); this is the
    CUDA counterpart, from ``torch.cuda.mem_get_info`` before anything is allocated.
    """
    if device != "cuda":
        return
    import torch

    free, _total = torch.cuda.mem_get_info()
    need = dip_memory({"channels": channels}, shape)
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
    *,
    iterations: int,
    early_stopping: bool,
    window: int,
    patience: int,
    channels: int | None,
    depth: int,
    skip_channels: int,
    reg_noise_std: float,
    learning_rate: float,
    ema: float,
    device: str,
    precision: str,
    seed: int,
    every: int,
) -> Generator[Any, None, np.ndarray]:
    """Fit Deep Image Prior to one working plane (``(H, W)`` or ``(H, W, 3)`` in [0, 1]).

    Yields a :class:`DIPStep` every iteration (and the fraction of the iteration budget done
    whenever it grows by 0.1 %), then a
    :class:`DIPSummary`; returns the estimate at the ES-WMV variance minimum (the final
    estimate with ``early_stopping=False``). On :class:`Cancelled` returns the best estimate
    so far. A fit too large for the GPU is refused before allocating, and torch's
    out-of-memory error becomes a ``MemoryError`` suggesting a smaller field of view.
    """
    dev = resolve_device(device)
    preset = preset_for(dev, channels, depth, skip_channels)
    check_device_memory(dev, plane.shape, preset.channels)
    with _clear_out_of_memory(dev, plane.shape, preset.channels):
        fit = DIPFit(plane, preset=preset, reg_noise_std=reg_noise_std,
                     learning_rate=learning_rate, ema=ema, device=dev, precision=precision,
                     seed=seed)
    es = WindowVariance(window, patience) if early_stopping else None
    best: Any = None  # estimate at the variance minimum
    best_it = 0
    it = 0
    t0 = time.perf_counter()

    def current() -> tuple[np.ndarray, int]:
        if best is not None:
            return fit.to_numpy(best), best_it
        if fit.ema is not None:
            return fit.to_numpy(fit.ema), it
        return plane.copy(), 0  # cancelled before the first step

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
                stat, improved = es.update(fit.output, it)
                if improved:
                    best, best_it = fit.ema.clone(), it  # type: ignore[union-attr]
            returned = best_it if best is not None else it
            est = fit.to_numpy(fit.ema) if (it % every == 0 or it == iterations) else None
            try:
                yield DIPStep(it, loss, stat, est, returned)
            except Cancelled:
                # a Stop at this step drops it (it is never reported), so return the best
                # estimate as the last reported step describes it
                if before[0] is not None:
                    best, best_it = before
                raise
            if es is not None and es.should_stop:
                reason = "early_stopping"
                break
        result, returned = current()
        yield DIPSummary(it, returned, reason, dev, fit.precision,
                         (time.perf_counter() - t0) / max(it, 1), fit.restores)
        return result
    except Cancelled:
        return current()[0]


def _check(params: dict[str, Any], image: Any) -> None:
    resolve_device(params["device"])
    if params["precision"] == "fp16" and params["device"] == "cpu":
        import torch

        if not hasattr(torch.amp, "GradScaler"):  # pragma: no cover - old torch
            raise ValueError("precision='fp16' on the CPU needs torch >= 2.3; use 'bf16' or 'fp32'")


def _prepare(params: dict[str, Any], image: Any) -> dict[str, Any]:
    # Record what runs: the concrete device, net width and precision, so that a recipe (and a
    # second run with the same seed) replays exactly, whatever a later speed probe would say.
    params["device"] = resolve_device(params["device"])
    preset = preset_for(params["device"], params["channels"], params["depth"],
                        params["skip_channels"])
    params["channels"] = preset.channels
    shape = tuple(getattr(image, "shape", None) or np.shape(image))
    hw = shape[-3:-1] if len(shape) >= 3 and shape[-1] in (3, 4) else shape[-2:]
    if params["precision"] == "auto" and len(hw) == 2 and min(hw) > 0:
        params["precision"] = resolve_precision(
            "auto", params["device"], preset, _padded_shape(*hw, preset.depth), 1)
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
        default_target="view",
        panel_extras="napari_restore.widgets.dip_extras:build",
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
            Param("window", int, 100, "ES-WMV window: number of recent outputs whose per-pixel "
                  "variance is averaged.", min=2, max=1000),
            Param("patience", int, 200, "Stop when the windowed variance has not reached a new "
                  "minimum for this many iterations.", min=1, max=100_000),
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
            Param("ema", float, 0.99, "Weight of the exponential average of outputs (0 = use "
                  "the last output).", min=0.0, max=0.9999, step=0.01),
            Param("device", str, "auto", "Where to run: auto = CUDA, else MPS, else CPU.",
                  choices=DEVICES),
            Param("precision", str, "auto", "auto = fp16 AMP on CUDA, bf16 on CPU only when a "
                  "quick probe finds it faster, else fp32.", choices=PRECISIONS),
            Param("seed", int, 0, "Seed of the net, the noise input and the perturbations.",
                  min=0, max=2**31 - 1),
            Param("every", int, 25, "Report the current estimate (live preview) every N "
                  "iterations; does not change the result.", min=1, max=100_000),
        ),
    )
)


def iter_deep_image_prior(
    image: Any,
    *,
    iterations: int = 3000,
    early_stopping: bool = True,
    window: int = 100,
    patience: int = 200,
    channels: int | None = None,
    depth: int = 5,
    skip_channels: int = 4,
    reg_noise_std: float = 1 / 30,
    learning_rate: float = 0.01,
    ema: float = 0.99,
    device: str = "auto",
    precision: str = "auto",
    seed: int = 0,
    every: int = 25,
    channel_axis: int | None = None,
    cancel: Any = None,
) -> Generator[DIPStep | DIPSummary, None, np.ndarray]:
    """Deep Image Prior as a generator: yields :class:`DIPStep` / :class:`DIPSummary`,
    returns the denoised image.

    Parameters are those of :func:`deep_image_prior`, plus ``cancel`` (a
    ``threading.Event`` or callable, checked every iteration; when set, the run ends and the
    best estimate so far is returned for a single image, :class:`Cancelled` is raised for a
    stack). Step estimates are in the input's dtype, value range and channel layout.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_restore import iter_deep_image_prior
    >>> noisy = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    >>> gen = iter_deep_image_prior(noisy, iterations=3, every=1, depth=2, channels=4)
    >>> [step.iteration for step in gen if hasattr(step, "loss")]
    [1, 2, 3]
    """
    params = dict(iterations=iterations, early_stopping=early_stopping, window=window,
                  patience=patience, channels=channels, depth=depth, skip_channels=skip_channels,
                  reg_noise_std=reg_noise_std, learning_rate=learning_rate, ema=ema,
                  device=device, precision=precision, seed=seed, every=every)
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


def deep_image_prior(
    image: Any,
    *,
    iterations: int = 3000,
    early_stopping: bool = True,
    window: int = 100,
    patience: int = 200,
    channels: int | None = None,
    depth: int = 5,
    skip_channels: int = 4,
    reg_noise_std: float = 1 / 30,
    learning_rate: float = 0.01,
    ema: float = 0.99,
    device: str = "auto",
    precision: str = "auto",
    seed: int = 0,
    every: int = 25,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Denoise with Deep Image Prior, stopped early by ES-WMV.

    Parameters
    ----------
    image : ndarray
        2-D image, RGB/RGBA image (with ``channel_axis``) or nD stack of either (plane by
        plane); any real dtype and strides; not modified. Planes smaller than the net's
        ``2**(depth+1)`` are reflection-padded.
    iterations : int
        Iteration budget; early stopping usually ends sooner.
    early_stopping : bool
        ES-WMV: stop when the mean per-pixel variance of the last ``window`` outputs has not
        reached a new minimum for ``patience`` iterations, and return the estimate at that
        minimum. With False, the estimate after ``iterations`` is returned.
    window, patience : int
        ES-WMV window and patience.
    channels : int or None
        Channels per scale of the skip net; None = 128 (the paper) on a GPU and a narrow CPU
        preset on the CPU (see ``benchmarks/bench_dip.py``).
    depth, skip_channels : int
        Scales of the net and channels of each skip connection (paper: 5 and 4).
    reg_noise_std : float
        Std of the perturbation of the noise input drawn every iteration (paper: 1/30).
    learning_rate : float
        Adam learning rate (paper: 0.01).
    ema : float
        Weight of the exponential average of the outputs (paper: 0.99).
    device : {"auto", "cpu", "cuda", "mps"}
        "auto" picks CUDA, then MPS, then the CPU. An unavailable device raises ValueError.
    precision : {"auto", "fp32", "fp16", "bf16"}
        "auto": fp16 autocast with a GradScaler on CUDA; bf16 autocast on the CPU only when a
        quick probe shows it is faster; fp32 otherwise.
    seed : int
        Seed of the weights, the noise input and the perturbations: CPU runs repeat exactly.
    every : int
        Interval of the estimates reported by :func:`iter_deep_image_prior`; no effect here.
    channel_axis : int or None
        Colour axis of an RGB/RGBA image (alpha passes through); None for greyscale.

    Returns
    -------
    ndarray
        Denoised image, same shape and dtype (and value range) as ``image``.

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
    gen = iter_deep_image_prior(
        image, iterations=iterations, early_stopping=early_stopping, window=window,
        patience=patience, channels=channels, depth=depth, skip_channels=skip_channels,
        reg_noise_std=reg_noise_std, learning_rate=learning_rate, ema=ema, device=device,
        precision=precision, seed=seed, every=every, channel_axis=channel_axis,
    )
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value

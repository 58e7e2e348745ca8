"""Deep Image Prior: the paper's net (128 channels) vs our CPU preset, fp32 vs bf16 autocast.

1. Seconds per iteration at 256² for each preset and precision (the fastest of a few timed
   iterations after a warm-up), plus fp16 AMP vs fp32 on CUDA when a GPU is present.
2. The PSNR each preset reaches at its ES-WMV stop on the 128² camera crop (σ = 25/255), with
   the default settings (``--psnr-size`` to change the crop; ``--no-psnr`` to skip: the
   paper's net needs about 1000+ iterations of ~1 s each on a CPU core).

Run: ``.venv/bin/python benchmarks/bench_dip.py`` (``DIP_BENCH_THREADS`` sets torch's
intra-op threads, 1 by default so that figures on a shared machine are stable). Prints a
table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def seconds_per_iteration(preset, precision: str, size: int, device: str = "cpu",
                          warmup: int = 2, timed: int = 4) -> float:
    from napari_restore.processors.dip import DIPFit

    plane = np.random.default_rng(0).random((size, size)).astype(np.float32)
    fit = DIPFit(plane, preset=preset, reg_noise_std=1 / 30, learning_rate=0.01, ema=0.99,
                 device=device, precision=precision, seed=0)
    for _ in range(warmup):
        fit.step()
    sync = _sync(device)
    times = []
    for _ in range(timed):  # the fastest iteration: robust to other load on a shared machine
        sync()
        t0 = time.perf_counter()
        fit.step()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def _sync(device: str):
    import torch

    if device == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def psnr_at_stop(channels: int, precision: str, size: int, device: str = "cpu") -> dict:
    from napari_restore import DIPSummary, iter_deep_image_prior
    from napari_restore._sample_data import camera
    from napari_restore.metrics import psnr

    clean, noisy = camera()
    clean, noisy = clean[80:80 + size, 180:180 + size], noisy[80:80 + size, 180:180 + size]
    t0 = time.perf_counter()
    gen = iter_deep_image_prior(noisy, channels=channels, precision=precision, device=device,
                                every=100_000)
    summary = None
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            out = stop.value
            break
        if isinstance(item, DIPSummary):
            summary = item
    assert summary is not None
    return {"noisy": psnr(noisy, clean), "psnr": psnr(out, clean),
            "stopped": summary.stopped_iteration, "returned": summary.returned_iteration,
            "s_per_it": summary.seconds_per_iteration, "seconds": time.perf_counter() - t0,
            "precision": summary.precision}


def main(argv: list[str] | None = None) -> dict:
    import torch

    from napari_restore.processors.dip_net import CPU, PAPER

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="side for the speed table")
    parser.add_argument("--psnr-size", type=int, default=128, help="camera crop for PSNR")
    parser.add_argument("--no-psnr", action="store_true", help="speed table only")
    parser.add_argument("--no-speed", action="store_true", help="PSNR table only")
    parser.add_argument("--psnr-precision", default="auto", help="precision of the PSNR runs")
    args = parser.parse_args(argv if argv is not None else [])
    threads = int(os.environ.get("DIP_BENCH_THREADS", "1"))
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {threads} CPU thread(s)")
    out: dict = {"speed": {}, "psnr": {}}
    if not args.no_speed:
        print(f"\nseconds per iteration at {args.size}²")
        print(f"{'preset':<22}{'fp32 (s)':>10}{'bf16 (s)':>10}{'bf16/fp32':>11}")
        for name, preset in (("paper (128 ch)", PAPER), (f"cpu ({CPU.channels} ch)", CPU)):
            fp32 = seconds_per_iteration(preset, "fp32", args.size)
            bf16 = seconds_per_iteration(preset, "bf16", args.size)
            out["speed"][name] = (fp32, bf16)
            print(f"{name:<22}{fp32:>10.3f}{bf16:>10.3f}{bf16 / fp32:>11.2f}")
        (p32, p16), (c32, c16) = out["speed"].values()
        print(f"CPU preset speed-up over the paper net: fp32 {p32 / c32:.1f}x, "
              f"bf16 {p16 / c16:.1f}x, best vs best {min(p32, p16) / min(c32, c16):.1f}x")
        if torch.cuda.is_available():
            print(f"\nCUDA, paper net, seconds per iteration at {args.size}²")
            for prec in ("fp32", "fp16"):
                s = seconds_per_iteration(PAPER, prec, args.size, device="cuda", timed=20)
                out["speed"][f"cuda {prec}"] = s
                print(f"{prec:<22}{s:>10.4f}")
    if not args.no_psnr:
        print(f"\nPSNR at the ES-WMV stop, camera {args.psnr_size}² crop, σ=25/255, "
              f"precision={args.psnr_precision}")
        print(f"{'preset':<22}{'prec':>6}{'noisy':>8}{'PSNR':>8}{'stop':>7}{'return':>8}"
              f"{'s/it':>8}{'total s':>9}")
        for name, ch in ((f"cpu ({CPU.channels} ch)", CPU.channels), ("paper (128 ch)", 128)):
            r = psnr_at_stop(ch, args.psnr_precision, args.psnr_size)
            out["psnr"][name] = r
            print(f"{name:<22}{r['precision']:>6}{r['noisy']:>8.2f}{r['psnr']:>8.2f}{r['stopped']:>7}"
                  f"{r['returned']:>8}{r['s_per_it']:>8.3f}{r['seconds']:>9.0f}", flush=True)
    return out


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])

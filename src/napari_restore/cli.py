"""``napari-restore`` console entry point: ``demo``, ``info`` and ``apply``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def has_display() -> bool:
    """True when a GUI can open (X11/Wayland on Linux; always elsewhere)."""
    if os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def versions() -> dict[str, str]:
    """Versions of the libraries napari-restore stands on, plus the torch device."""
    from importlib import metadata

    import numpy as np

    from . import __version__

    out = {"napari-restore": __version__, "python": sys.version.split()[0], "numpy": np.__version__}
    for dist, label in [("napari", "napari"), ("opencv-python-headless", "opencv"),
                        ("scikit-image", "scikit-image"), ("bm3d", "bm3d"), ("bm4d", "bm4d"),
                        ("torch", "torch"), ("magicgui", "magicgui"), ("dask", "dask")]:
        try:
            out[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[label] = "not installed"
    try:
        import cv2

        out["opencv"] = cv2.__version__
    except ImportError:
        pass
    out["torch device"] = torch_device()
    return out


def torch_device() -> str:
    try:
        import torch
    except ImportError:
        return "unavailable (torch not installed)"
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return f"cpu ({torch.get_num_threads()} threads)"


def cmd_info(_args: argparse.Namespace) -> int:
    for k, v in versions().items():
        print(f"{k:>15}: {v}")
    return 0


def headless_demo(outdir: Path) -> list[Path]:
    """Restore the bundled noisy camera with every classic method; write TIFFs and a PNG."""
    import numpy as np
    import tifffile
    from imageio.v3 import imwrite

    from ._sample_data import camera
    from .metrics import psnr
    from .processors.classic import METHODS, classic_denoise

    outdir.mkdir(parents=True, exist_ok=True)
    clean, noisy = camera()
    written = []
    tiles = [noisy]
    rows = [f"noisy: PSNR {psnr(noisy, clean):.2f} dB"]
    tifffile.imwrite(outdir / "camera_noisy.tif", noisy)
    written.append(outdir / "camera_noisy.tif")
    for method in METHODS:
        out = classic_denoise(noisy, method=method)
        path = outdir / f"camera_{method}.tif"
        tifffile.imwrite(path, out, description=f"napari-restore classic_denoise method={method}")
        written.append(path)
        tiles.append(out)
        rows.append(f"{method}: PSNR {psnr(out, clean):.2f} dB")
    gap = np.full((noisy.shape[0], 8), 255, np.uint8)
    strip = np.concatenate([x for t in tiles for x in (t, gap)][:-1], axis=1)
    png = outdir / "side_by_side.png"
    imwrite(png, strip)
    written.append(png)
    (outdir / "report.txt").write_text("\n".join(rows) + "\n")
    written.append(outdir / "report.txt")
    for r in rows:
        print("  " + r)
    return written


def gui_demo() -> int:  # pragma: no cover - interactive
    import napari

    from ._sample_data import sample_camera

    viewer = napari.Viewer(title="napari-restore demo")
    for data, kwargs, _ in sample_camera():
        viewer.add_image(data, **kwargs)
    viewer.window.add_plugin_dock_widget("napari-restore", "Classic denoise")
    napari.run()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.headless or not has_display():
        outdir = Path(args.output)
        print("No display: running the headless demo on the bundled noisy camera sample.")
        written = headless_demo(outdir)
        print(f"Wrote {len(written)} files to {outdir.resolve()}:")
        for p in written:
            print(f"  {p}")
        return 0
    return gui_demo()


def cmd_apply(args: argparse.Namespace) -> int:
    import numpy as np
    import tifffile

    from .recipes import Recipe, apply_recipe

    recipe = Recipe.load(args.recipe)
    outdir = Path(args.output)
    if outdir.exists() and not outdir.is_dir():
        print(f"error: output {outdir} exists and is not a directory", file=sys.stderr)
        return 2
    outdir.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[str, str]] = []
    for name in args.inputs:
        src = Path(name)
        dst = outdir / (src.stem + ".tif")
        try:
            if dst.exists() and not args.overwrite:
                raise FileExistsError(f"{dst} exists (use --overwrite)")
            image: Any = np.load(src) if src.suffix == ".npy" else tifffile.imread(src)
            out = apply_recipe(recipe, image)
            tmp = dst.with_name(dst.name + ".partial")
            tifffile.imwrite(tmp, out, description=recipe.to_json(indent=None))
            os.replace(tmp, dst)
            print(f"{src} -> {dst}")
        except Exception as exc:  # report and go on with the other files
            failures.append((str(src), f"{type(exc).__name__}: {exc}"))
    for src, why in failures:
        print(f"FAILED {src}: {why}", file=sys.stderr)
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-restore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="open napari with the panels and a sample (headless: batch)")
    demo.add_argument("--headless", action="store_true", help="force the headless batch demo")
    demo.add_argument("-o", "--output", default="demo-output", help="headless output folder")
    demo.set_defaults(func=cmd_demo)
    info = sub.add_parser("info", help="print library versions and the torch device")
    info.set_defaults(func=cmd_info)
    apply = sub.add_parser("apply", help="apply a recipe JSON to TIFF/NPY files")
    apply.add_argument("recipe")
    apply.add_argument("inputs", nargs="+")
    apply.add_argument("-o", "--output", required=True)
    apply.add_argument("--overwrite", action="store_true")
    apply.set_defaults(func=cmd_apply)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``napari-restore`` console entry point: ``demo``, ``info`` and ``apply``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ._versions import torch_device, versions

__all__ = ["has_display", "main", "torch_device", "versions"]


def has_display() -> bool:
    """True when a GUI can open (X11/Wayland on Linux; always elsewhere)."""
    if os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def cmd_info(_args: argparse.Namespace) -> int:
    for k, v in versions().items():
        print(f"{k:>15}: {v}")
    return 0


def headless_demo(outdir: Path) -> list[Path]:
    """The headless demo (classic, BM3D auto σ, film grain, LB-CLAHE): see :mod:`._demo`."""
    from ._demo import headless_demo as run

    return run(outdir)


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
        print("No display: running the headless demo (classic denoise, BM3D with automatic σ, "
              "film grain, LB-CLAHE) on the bundled samples.")
        written = headless_demo(outdir)
        print(f"Wrote {len(written)} files to {outdir.resolve()}:")
        for p in written:
            print(f"  {p}")
        return 0
    return gui_demo()


def _tile_arg(text: str) -> Any:
    """``--tile`` value: off, auto, or ROWSxCOLS (e.g. 1024x1024)."""
    text = text.strip().lower()
    if text in ("off", "auto"):
        return text
    parts = text.replace(",", "x").split("x")
    try:
        rows, cols = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a tile: use off, auto or ROWSxCOLS such as 1024x1024") from None
    return (rows, cols)


def _with_tile(recipe_path: str, tile: Any) -> Any:
    """The recipe with ``--tile`` in place of its own ``tile`` (recorded with the outputs)."""
    if tile is None:
        return recipe_path
    import dataclasses

    from .processors import get_processor
    from .recipes import Recipe

    recipe = Recipe.load(recipe_path)
    if not any(p.name == "tile" for p in get_processor(recipe.processor).params):
        raise ValueError(f"--tile: {recipe.processor} cannot run in tiles (its result at one "
                         "pixel depends on the whole plane)")
    return dataclasses.replace(recipe, params={**recipe.params, "tile": tile})


def cmd_apply(args: argparse.Namespace) -> int:
    import signal

    from . import batch

    def on_term(signum: int, _frame: Any) -> None:  # leave no partial file: unwind, clean up
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    bar = _progress_bar()
    try:
        recipe = _with_tile(args.recipe, args.tile)
        with bar:
            report = batch.apply(
                recipe, args.inputs, args.output, workers=args.workers,
                scheduler=args.scheduler, planes_per_chunk=args.chunks,
                overwrite=args.overwrite, progress=bar.update,
                isolate=not (args.workers or args.scheduler),  # a cluster isolates its tasks
            )
    except (ValueError, TypeError, OSError, batch.WorkerStartError) as exc:  # one line
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: the batch removed its partial files on the way out
        print("interrupted: finished outputs are kept, partial files were removed",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    for f in report.files:
        if f.status == "done":
            rate = f.planes / f.seconds if f.seconds else float("inf")
            print(f"{f.input} -> {', '.join(f.outputs)} ({f.planes} planes, {rate:.1f} planes/s)")
        elif f.status == "skipped":
            print(f"{f.input}: skipped, {f.note} (--overwrite redoes it)")
    print(report.summary(), file=sys.stderr if report.failed else sys.stdout)
    return 0 if report.ok else 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {value}")
    return value


_APPLY_EPILOG = """output names:
  Each output keeps its input's name and format (a JPEG input gives a PNG output) and
  mirrors the input's path relative to the deepest folder holding all inputs: inputs from
  one folder give a flat OUTDIR, while a/x.tif and b/x.tif give OUTDIR/a/x.tif and
  OUTDIR/b/x.tif. Inputs that would still share an output (pair.png and pair.jpg, an input
  given twice) and an output that would be an input are refused before anything runs.
  Next to each output, NAME.json records the recipe, the input and the software versions.

existing outputs:
  Without --overwrite, an output written earlier from the same input with the same recipe
  is skipped (so re-running a command completes what is missing); any other existing file
  at an output's name fails that input. With --overwrite, only outputs this tool wrote
  (recognised by their NAME.json; for a Zarr output, its attributes too) are replaced; a
  directory, a link or any other file is never replaced or deleted.

exit status: 0 all done or skipped, 1 some input failed, 2 bad arguments (nothing ran).
Each input runs in a worker process, so a crash inside a library fails that input alone.
"""


class _progress_bar:
    """A rich progress bar (planes done, planes/s, ETA) when stdout is a terminal."""

    def __init__(self) -> None:
        self._rich: Any = None
        self._task: Any = None
        if sys.stdout.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._rich = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TextColumn("{task.speed} planes/s"),
                                  TimeRemainingColumn())

    def __enter__(self) -> _progress_bar:
        if self._rich is not None:
            self._rich.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)

    def update(self, done: int, total: int, name: str) -> None:
        if self._rich is None:
            return
        if self._task is None or self._name != name:
            self._task = self._rich.add_task(name, total=total)
            self._name = name
        self._rich.update(self._task, completed=done)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-restore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="open napari with the panels and a sample (headless: batch)")
    demo.add_argument("--headless", action="store_true", help="force the headless batch demo")
    demo.add_argument("-o", "--output", default="demo-output", help="headless output folder")
    demo.set_defaults(func=cmd_demo)
    info = sub.add_parser("info", help="print library versions and the torch device")
    info.set_defaults(func=cmd_info)
    apply = sub.add_parser(
        "apply", help="replay a recipe JSON over TIFF/OME-TIFF/Zarr/NPY/PNG/JPEG inputs with dask",
        epilog=_APPLY_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    apply.add_argument("recipe", help="recipe JSON (Save recipe… in a panel)")
    apply.add_argument("inputs", nargs="+", help="input files or .zarr folders")
    apply.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                       help="output folder (see 'output names' below)")
    apply.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                       help="start a dask LocalCluster with N >= 1 worker processes")
    apply.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="address of a running dask.distributed scheduler (tcp://host:port)")
    apply.add_argument("--tile", type=_tile_arg, default=None, metavar="TILE",
                       help="overlapping tiles for tileable processors: off, auto or ROWSxCOLS "
                            "(default: the recipe's own tile setting)")
    apply.add_argument("--chunks", type=_positive_int, default=1, metavar="N",
                       help="planes per dask chunk along the first stack axis (default 1)")
    apply.add_argument("--overwrite", action="store_true",
                       help="replace existing outputs that this tool wrote (never other files "
                            "or directories; see 'existing outputs' below)")
    apply.set_defaults(func=cmd_apply)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

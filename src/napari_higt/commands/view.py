"""``napari-higt view``: the workbench on a slide, or its rendering to a PNG."""

from __future__ import annotations

import argparse
import os

from napari_higt.commands import arguments as A

NAME = "view"
HELP = "open napari on a slide with the napari-higt widgets (or render it to a PNG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("slide", nargs="?", type=A.existing_file,
                        help="slide file (default: the bundled demo slide, else the CMU-1 sample)")
    parser.add_argument("--mpp", type=A.mpp, metavar="UM",
                        help="pixel size in µm, for slides without one")
    parser.add_argument("--headless", action="store_true",
                        help="render the workbench to a PNG instead of opening a window")
    parser.add_argument("--out", default="out/workbench.png", help="PNG path for --headless")


def run(args: argparse.Namespace) -> int:
    from napari_higt.errors import UserFacingError

    headless = args.headless or not os.environ.get("DISPLAY")
    if headless and not os.environ.get("DISPLAY"):
        raise UserFacingError(
            "no display: run under a virtual one, e.g. `xvfb-run -a napari-higt view "
            "--headless`, or use `bash scripts/run.sh`, which does that for you"
        )
    if headless:
        from napari_higt.ui.app import render_workbench

        out = render_workbench(args.out, args.slide, mpp=args.mpp)
        print(f"wrote {out}")
        return 0
    import napari

    from napari_higt.ui.app import open_workbench

    open_workbench(args.slide, mpp=args.mpp)
    napari.run()
    return 0

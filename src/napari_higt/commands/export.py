"""``napari-higt export``: annotated figure, QuPath GeoJSON and node CSV of a predicted slide."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = ("write the annotated figure (PNG/SVG/PDF), QuPath GeoJSON and node-score CSV of a "
        "slide whose feature file holds predictions (napari-higt predict)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("slide", help="the slide file")
    parser.add_argument("features", help="its feature file (.h5) with cached predictions")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--mpp", type=float, help="µm per px, for slides without a scale")
    parser.add_argument("--score", default="node_importance", help="score to paint")
    parser.add_argument("--level", default="x10", choices=["x10", "x5"])
    parser.add_argument("--formats", default="png,svg", help="comma list of png, svg, pdf")
    parser.add_argument("--opacity", type=float, default=0.5)
    parser.add_argument("--dpi", type=int, default=150)
    parser.add_argument("--region", help="x0,y0,x1,y1 in level-0 px (default: whole slide)")
    parser.add_argument("--markers", action="store_true", help="mark node centres")
    parser.add_argument("--object-type", default="tile", choices=["tile", "detection"])


def run(args: argparse.Namespace) -> int:
    from napari_higt.errors import UserFacingError
    from napari_higt.export.bundle import export_result
    from napari_higt.inference import load_cached_result
    from napari_higt.slide import Slide

    region = None
    if args.region:
        try:
            region = tuple(int(v) for v in args.region.split(","))
            assert len(region) == 4
        except (ValueError, AssertionError):
            raise UserFacingError(f"--region must be x0,y0,x1,y1, got {args.region!r}") from None
    result = load_cached_result(args.features)
    if result is None:
        raise UserFacingError(f"{args.features} holds no predictions: run `napari-higt predict "
                              "CHECKPOINT FEATURES...` first")
    with Slide(args.slide, mpp=args.mpp) as slide:
        files = export_result(slide, result, args.out, score=args.score, level=args.level,
                              formats=[f.strip() for f in args.formats.split(",") if f.strip()],
                              opacity=args.opacity, dpi=args.dpi, region=region,
                              markers=args.markers, object_type=args.object_type)
    for kind, path in files.items():
        print(f"{kind:8s} {path}")
    return 0

"""``napari-higt export``: annotated figure, QuPath GeoJSON and node CSV of a predicted slide."""

from __future__ import annotations

import argparse

from napari_higt.commands import arguments as A
from napari_higt.explain.registry import default_score, score_keys

NAME = "export"
HELP = ("write the annotated figure (PNG/SVG/PDF), QuPath GeoJSON and node-score CSV of a "
        "slide whose feature file holds predictions (napari-higt predict)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("slide", type=A.existing_file, help="the slide file")
    parser.add_argument("features", type=A.existing_file,
                        help="its feature file (.h5) with cached predictions")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--mpp", type=A.mpp, metavar="UM",
                        help="µm per px, for slides without a scale")
    parser.add_argument("--score", default=None, choices=score_keys("export"),
                        help="per-node score to paint (default: the viewer's default map, "
                             f"{default_score()})")
    parser.add_argument("--raw", action="store_true",
                        help="write raw score values instead of percentiles within the slide "
                             "and level (the column names say which)")
    parser.add_argument("--level", default="x10", choices=["x10", "x5"],
                        help="paint patches (x10) or regions (x5)")
    parser.add_argument("--formats", default="png,svg", type=A.formats(("png", "svg", "pdf")),
                        help="comma list of figure formats: png, svg, pdf")
    parser.add_argument("--opacity", type=A.opacity, default=1.0,
                        help="scales the score overlay's opacity, 0 to 1 (1 = as in the "
                        "viewer, where it rises with the score)")
    parser.add_argument("--dpi", type=A.number(int, 10, 2400), default=150,
                        help="figure resolution, 10 to 2400 dots per inch")
    parser.add_argument("--region", type=A.region,
                        help="x0,y0,x1,y1 in level-0 px (default: whole slide)")
    parser.add_argument("--markers", action="store_true", help="mark node centres")
    parser.add_argument("--object-type", default="tile", choices=["tile", "detection"],
                        help="QuPath object type of the GeoJSON features")
    parser.add_argument("--force", action="store_true",
                        help="export even when the feature file records another slide (or "
                             "another version of this one)")


def run(args: argparse.Namespace) -> int:
    from napari_higt.io import writable_folder

    writable_folder(args.out, "the export folder")
    from napari_higt.errors import FeatureError, warn_user
    from napari_higt.export.bundle import export_result
    from napari_higt.inference import load_cached_result
    from napari_higt.slide import Slide

    result = load_cached_result(args.features, args.slide, force=args.force)
    if result is None:
        raise FeatureError(f"{args.features} holds no predictions: run `napari-higt predict "
                           "CHECKPOINT FEATURES...` first")
    for note in result.notes[1:]:  # the first says where the scores come from
        warn_user(note)
    with Slide(args.slide, mpp=args.mpp) as slide:
        files = export_result(slide, result, args.out, score=args.score, level=args.level,
                              formats=args.formats, opacity=args.opacity, dpi=args.dpi,
                              region=args.region, markers=args.markers,
                              object_type=args.object_type, raw=args.raw)
    for kind, path in files.items():
        print(f"{kind:8s} {path}")
    return 0

"""``napari-higt demo``: the whole pipeline on the bundled demo slide, headless."""

from __future__ import annotations

import argparse

from napari_higt.commands import arguments as A

NAME = "demo"
HELP = ("run tissue detection, tiling, features, graph and HIGT inference on the bundled "
        "demo slide; write the annotated figure, QuPath GeoJSON, node CSV and a report")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--slide", type=A.existing_file,
                        help="another slide (default: the bundled demo mosaic)")
    parser.add_argument("--checkpoint", type=A.existing_file,
                        help="another checkpoint (default: the demo model)")
    parser.add_argument("--mpp", type=A.mpp, metavar="UM",
                        help="µm per px of the slide (default: the demo slide's assumed 2.0; "
                             "another --slide must record its scale or be given one)")
    parser.add_argument("--tissue-threshold", type=A.fraction, default=0.25, metavar="F",
                        help="keep tiles whose tissue fraction is above F")


#: What each stage of `napari_higt.demo.run_demo` counts. Only the features stage has a
#: rate worth showing (patches/s); the others are one step each, shown with their time.
_UNITS = {"tissue": "mask", "features": "patch", "model": "slide", "export": "stage"}
_NO_RATE = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}]"


def run(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from napari_higt.demo import run_demo

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            for old in bars.values():  # stages run one after another: one live bar
                old.close()
            unit = _UNITS.get(stage, "step")
            bar = bars[stage] = tqdm(total=total, desc=f"{stage:9s}", unit=unit, leave=True,
                                     bar_format=None if stage == "features" else _NO_RATE)
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:  # the stage is over: its bar stops its clock now
            bar.close()

    t0 = time.perf_counter()
    res = run_demo(args.out, slide=args.slide, checkpoint=args.checkpoint, mpp=args.mpp,
                   progress=progress, tissue_threshold=args.tissue_threshold)
    for bar in bars.values():
        bar.close()
    probs = ", ".join(f"{c} {p:.2f}" for c, p in res.probs.items())
    tag = " [demonstration model, constructed task]" if res.card and res.card.demonstration \
        else ""
    print(f"prediction: {res.pred} ({probs}){tag}")
    if res.card is not None:
        print(res.card.headline())
    for w in res.warnings:
        print(f"WARNING: {w}")
    for kind, path in res.files.items():
        print(f"{kind:8s} {path}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0

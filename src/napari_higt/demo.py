"""The first-run demo: the bundled HIGT checkpoint on the bundled demo slide, end to end.

`run_demo` runs the whole pipeline (tissue, tiling, features, graph, HIGT inference,
attention and BI maps) and writes the annotated figure (PNG and SVG), the QuPath GeoJSON,
the node-score CSV and a short Markdown report (prediction, timings per stage) to a folder.
The demo slide is a mosaic of real tissue whose scale is assumed (2.0 µm/px, see
``sample_data/demo_higt.json``); its figure says so.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_higt.errors import UserFacingError

__all__ = ["DemoResult", "run_demo", "demo_files"]


def demo_files() -> dict[str, Path]:
    """Paths of the bundled demo slide, checkpoint and its metadata (``sample_data/``)."""
    from napari_higt.datasets import sample_path

    try:
        return {"slide": sample_path("demo_mosaic.tif"),
                "checkpoint": sample_path("demo_higt.pt"),
                "meta": sample_path("demo_higt.json")}
    except FileNotFoundError as exc:
        raise UserFacingError(f"{exc}; recreate it with `python scripts/train_demo_model.py`"
                              ) from None


@dataclass
class DemoResult:
    """What the demo wrote and found."""

    out_dir: Path
    files: dict[str, Path]
    pred: str
    probs: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    card: Any = None  # the checkpoint's model card (`inference.card.ModelCard`)
    warnings: list[str] = field(default_factory=list)  # out-of-domain warnings


def run_demo(out_dir: str | os.PathLike, slide: str | os.PathLike | None = None,
             checkpoint: str | os.PathLike | None = None, mpp: float | None = None,
             progress: Callable[[str, int, int], Any] | None = None,
             tissue_threshold: float = 0.25) -> DemoResult:
    """Run the demo and write its outputs to ``out_dir``.

    Parameters
    ----------
    out_dir : output folder (created).
    slide, checkpoint : default to the bundled demo slide and checkpoint.
    mpp : µm per px; the bundled slide defaults to its assumed scale, another slide must
        record its own (or be given one here), as ``napari-higt preprocess`` requires.
    progress : ``progress(stage, done, total)``.
    tissue_threshold : tiles with more tissue than this fraction become graph nodes.

    Raises
    ------
    UserFacingError
        A missing or unreadable slide or checkpoint, or a slide without a scale (the message
        is `napari_higt.slide.Slide.require_mpp`'s, as in ``preprocess``).
    """
    from napari_higt.export.bundle import export_result
    from napari_higt.export.report import (
        card_markdown,
        prediction_markdown,
        score_legend_markdown,
    )
    from napari_higt.inference import load_checkpoint, run_inference
    from napari_higt.io import atomic_write_text, writable_folder
    from napari_higt.slide import Slide, tissue_mask

    files = demo_files() if slide is None or checkpoint is None else {}
    meta = json.loads(files["meta"].read_text()) if slide is None else None
    slide = Path(slide) if slide is not None else files["slide"]
    checkpoint = Path(checkpoint) if checkpoint is not None else files["checkpoint"]
    if mpp is None and meta is not None:
        mpp = meta["assumed_mpp"]  # the bundled mosaic's, and only its: others state theirs
    load_checkpoint(checkpoint)  # a bad checkpoint is reported now, not after the features
    with Slide(slide, mpp=mpp) as s:
        s.require_mpp()  # before any output: the same refusal as preprocess
    out_dir = writable_folder(out_dir, "the demo's output folder")
    report = progress or (lambda *a: None)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    with Slide(slide, mpp=mpp) as s:
        report("tissue", 0, 1)
        tm = tissue_mask(s)
        report("tissue", 1, 1)
        timings["tissue mask"] = time.perf_counter() - t
        result = run_inference(slide, checkpoint, out_dir / "features", mpp=mpp,
                               device="auto", progress=report,
                               tissue_threshold=tissue_threshold)
        timings["tiling + features"] = result.timings.get("features", 0.0)
        timings["graph + HIGT inference"] = result.timings.get("model", 0.0)
        t = time.perf_counter()
        report("export", 0, 1)
        written = export_result(s, result, out_dir, formats=("png", "svg"), markers=False,
                                report=False)  # report.md below says more
        report("export", 1, 1)
        timings["figure + GeoJSON + CSV"] = time.perf_counter() - t
        assumed = not s.mpp_from_file
        dims, used_mpp = s.dimensions, float(s.mpp[0]) if s.mpp else None
    counts = result.graph.counts()
    lines = [
        f"# napari-higt demo: {result.slide_id}",
        "",
        f"- prediction: {prediction_markdown(result)}",
        f"- slide: `{slide}` ({dims[0]} x {dims[1]} px, "
        f"{used_mpp:g} µm/px{' (assumed, not read from the file)' if assumed else ''}); "
        f"tissue {100 * tm.fraction:.0f} % of the slide",
        f"- graph: {counts['thumbnail']} thumbnail, {counts['x5']} x5 regions, "
        f"{counts['x10']} x10 patches",
        f"- checkpoint: `{checkpoint}` on {result.device}",
        *(f"- **WARNING**: {w}" for w in result.warnings),
        "",
        *card_markdown(result.card),
        "| stage | seconds |",
        "|---|---:|",
        *(f"| {k} | {v:.2f} |" for k, v in timings.items()),
        f"| total | {sum(timings.values()):.2f} |",
        "",
        *score_legend_markdown(result),
        "Files: " + ", ".join(f"`{p.name}`" for p in written.values()),
    ]
    written["report"] = atomic_write_text(out_dir / "report.md", "\n".join(lines) + "\n")
    return DemoResult(out_dir, written, result.pred, result.probs, timings, result.card,
                      list(result.warnings))

"""``napari-higt preprocess``: slides -> per-slide feature files (tiling + features)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from napari_higt.commands import arguments as A
from napari_higt.levels import PATCH_SIZE

NAME = "preprocess"
HELP = (
    "Tile slides at x5 and x10, extract patch features and write one <slide_id>.h5 per slide "
    "(the input of the hierarchical graph). Slides already done with the same settings are "
    "skipped, so a rerun resumes an interrupted cohort; two runs on one --out share the work "
    "(a slide one of them is processing is waited for, not redone)."
)
_TOPIC = "napari-higt-preprocess-progress"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("slides", nargs="+", metavar="SLIDE",
                        help="slide files (SVS, tiled TIFF, ...)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for the .h5 feature files")
    parser.add_argument("--extractor", default="handcrafted", metavar="NAME",
                        help="feature extractor: handcrafted (default), cnn, hmgdm, timm")
    parser.add_argument("--weights", metavar="FILE",
                        help="local weights file for --extractor cnn (e.g. KimiaNet DenseNet-121) "
                             "or timm (.safetensors, or a .pth/.bin state dict); never downloaded")
    parser.add_argument("--arch", metavar="NAME",
                        help="trunk of --extractor cnn (densenet121, the default, or resnet50), "
                             "or any timm architecture for --extractor timm")
    parser.add_argument("--preset", metavar="NAME",
                        help="encoder preset of --extractor timm: uni, uni2-h, virchow2, "
                             "h-optimus-0, h-optimus-1, prov-gigapath, phikon (architecture and "
                             "preprocessing of the published model; bring its --weights)")
    parser.add_argument("--encoder", metavar="FILE",
                        help="H-MGDM encoder checkpoint for --extractor hmgdm "
                             "(napari-higt pretrain output)")
    parser.add_argument("--extractor-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="extra extractor setting (repeatable), e.g. input_size=224")
    parser.add_argument("--mpp", type=A.mpp, metavar="UM",
                        help="level-0 µm per pixel of slides that record neither their pixel "
                             "size nor their magnification (slides that do keep their own scale "
                             "unless --force-mpp)")
    parser.add_argument("--force-mpp", action="store_true",
                        help="use --mpp for every slide, overriding the scale in the files")
    parser.add_argument("--workers", type=A.positive_int, default=1, metavar="N",
                        help="slides processed in parallel (dask LocalCluster when > 1)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="dask scheduler of an existing cluster (tcp://host:8786); its workers "
                             "must see the slide paths and --out")
    parser.add_argument("--batch-size", type=A.positive_int, default=32, metavar="B",
                        help="tiles per extractor call (default 32)")
    parser.add_argument("--threads", type=A.positive_int, default=2, metavar="T",
                        help="tile-reading threads per slide (default 2)")
    parser.add_argument("--patch-size", type=A.number(int, 16, 8192), default=PATCH_SIZE,
                        metavar="PX",
                        help=f"tile side in px at x10 and x5 (default {PATCH_SIZE}, as in HIGT)")
    parser.add_argument("--tissue-threshold", type=A.fraction, default=0.25, metavar="F",
                        help="keep tiles whose tissue fraction is above F (default 0.25)")
    parser.add_argument("--stain", choices=("none", "macenko", "reinhard"), default="none",
                        help="stain normalisation of every tile before the extractor "
                             "(torchstain; default none); recorded in the feature file")
    parser.add_argument("--stain-reference", metavar="IMAGE",
                        help="reference tile of --stain (default: sample_data/stain_reference.png)")
    parser.add_argument("--layout", choices=("higt", "trident"), default="higt",
                        help="higt: thumbnail/x5/x10 groups (default); trident: the x10 level as "
                             "a TRIDENT-compatible file (root features + coords with its attrs)")
    parser.add_argument("--overwrite", action="store_true",
                        help="recompute files that are up to date or from another extractor")


def _parse_value(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(v.lower(), v)


def extractor_config(args: argparse.Namespace) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    for item in args.extractor_arg:
        if "=" not in item:
            from napari_higt.errors import FeatureError

            raise FeatureError(f"--extractor-arg expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        cfg[k.strip().replace("-", "_")] = _parse_value(v.strip())
    if args.weights:
        cfg["weights"] = args.weights
    if args.encoder:
        cfg["encoder"] = args.encoder
    if args.arch:
        cfg["arch"] = args.arch
    if getattr(args, "preset", None):
        cfg["preset"] = args.preset
    return cfg


def _one(slide: str, kw: dict[str, Any], on_progress=None, wait: bool = True) -> dict[str, Any]:
    """Process one slide; never raises: failures come back as a row of the summary.

    The slide is claimed first (a lock file beside its output): with ``wait=False`` a slide
    another run is processing comes back as status "claimed" at once, else it is waited for.
    """
    from napari_higt.errors import UserFacingError
    from napari_higt.features.pipeline import run_slide
    from napari_higt.io import file_lock

    t0 = time.perf_counter()
    sid = Path(slide).stem
    try:
        with file_lock(Path(kw["out_dir"]) / f".{sid}.h5.lock", wait=wait) as held:
            if not held:
                return {"slide": sid, "status": "claimed", "seconds": 0.0}
            r = run_slide(slide, progress=on_progress, **kw)
    except UserFacingError as exc:
        return {"slide": sid, "status": "failed", "error": str(exc),
                "seconds": time.perf_counter() - t0}
    except Exception as exc:  # a bug or an unexpected file: report, keep going
        import traceback

        return {"slide": sid, "status": "failed", "seconds": time.perf_counter() - t0,
                "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    return {"slide": r.slide_id, "status": r.status, "counts": r.counts, "dim": r.dim,
            "seconds": r.seconds, "path": str(r.path), "warnings": r.warnings}


def _dask_one(slide: str, kw: dict[str, Any]) -> dict[str, Any]:
    """Runs on a dask worker; forwards batch progress to the client as worker events."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        worker = None
    last = [0.0]

    def on_progress(done: int, total: int) -> None:
        now = time.monotonic()
        if worker is not None and (now - last[0] > 0.5 or done == total):
            last[0] = now
            worker.log_event(_TOPIC, {"slide": Path(slide).stem, "done": done, "total": total})

    return _one(slide, kw, on_progress)


def _summary(rows: list[dict[str, Any]]) -> str:
    head = ("slide", "status", "thumb", "x5", "x10", "dim", "time s", "note")
    table = [head]
    for r in rows:
        c = r.get("counts", {})
        # a failure's message is printed once, below the table (on stderr)
        note = "see the error below" if r.get("error") else "; ".join(r.get("warnings", []))
        table.append((r["slide"], r["status"], str(c.get("thumbnail", "")), str(c.get("x5", "")),
                      str(c.get("x10", "")), str(r.get("dim", "") or ""),
                      f"{r.get('seconds', 0):.1f}", note))
    widths = [max(len(t[i]) for t in table) for i in range(len(head) - 1)]
    lines = []
    for k, t in enumerate(table):
        lines.append("  ".join(t[i].ljust(widths[i]) for i in range(len(widths))) + "  " + t[-1])
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 4)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from napari_higt.io import writable_folder

    writable_folder(args.out, "the output folder (--out)")
    from tqdm.auto import tqdm

    from napari_higt.features.base import get_extractor

    from napari_higt.features.stain import StainNormalizer

    cfg = extractor_config(args)
    stain = None if args.stain == "none" else args.stain
    # fail fast on a bad extractor or stain setting (missing weights, ...) before any slide
    ext = get_extractor(args.extractor, **cfg)
    norm = StainNormalizer(stain, args.stain_reference) if stain else None
    kw = dict(out_dir=args.out, extractor=args.extractor, extractor_config=cfg,
              mpp=args.mpp if args.force_mpp else None,
              default_mpp=None if args.force_mpp else args.mpp,
              tissue_threshold=args.tissue_threshold, batch_size=args.batch_size,
              num_threads=args.threads, overwrite=args.overwrite, patch_size=args.patch_size,
              stain=stain, stain_reference=args.stain_reference, layout=args.layout)
    slides = [str(s) for s in args.slides]
    rows: list[dict[str, Any]] = []
    if args.workers <= 1 and not args.scheduler:
        # one extractor for all slides: a foundation model's weights load once
        local = dict(kw, extractor=ext, extractor_config=None, stain=norm)
        bar = tqdm(total=len(slides), desc="slides", unit="slide", position=0)

        def one(s: str, wait: bool) -> dict[str, Any]:
            inner = tqdm(total=0, desc=Path(s).stem[:30], unit="patch", position=1, leave=False)

            def on_progress(done: int, total: int, _b=inner) -> None:
                _b.total = total
                _b.update(done - _b.n)  # update() keeps tqdm's patches/s rate

            row = _one(s, local, on_progress, wait=wait)
            inner.close()
            bar.update(row["status"] != "claimed")
            return row

        rows = [one(s, wait=False) for s in slides]
        for i, r in enumerate(rows):  # another run is on these: wait for it, then reuse
            if r["status"] == "claimed":
                bar.write(f"{r['slide']}: another preprocess run is writing it; waiting")
                rows[i] = one(slides[i], wait=True)
        bar.close()
    else:
        rows = _run_dask(slides, kw, args, tqdm)
    print(_summary(rows))
    failed = [r for r in rows if r["status"] == "failed"]
    for r in failed:
        print(f"napari-higt preprocess: error: {r['slide']}: {' '.join(r['error'].split())}",
              file=sys.stderr)
        if "traceback" in r:
            print(r["traceback"], file=sys.stderr)
    n_done = sum(r["status"] == "done" for r in rows)
    n_skip = sum(r["status"] == "skipped" for r in rows)
    print(f"{n_done} done, {n_skip} up to date, {len(failed)} failed -> {args.out}")
    return 1 if failed else 0


def _run_dask(slides: list[str], kw: dict[str, Any], args: argparse.Namespace, tqdm) -> list[dict]:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    bars: dict[str, Any] = {}

    def on_event(event) -> None:
        _, msg = event
        b = bars.get(msg["slide"])
        if b is None:
            b = bars[msg["slide"]] = tqdm(total=msg["total"], desc=msg["slide"][:30],
                                          unit="patch", position=len(bars) + 1, leave=False)
        b.total = msg["total"]
        b.update(msg["done"] - b.n)  # update() keeps tqdm's patches/s rate
        if msg["done"] >= msg["total"]:  # the slide is done: its bar goes
            b.close()

    rows: list[dict[str, Any]] = []
    try:
        client.subscribe_topic(_TOPIC, on_event)
        futures = [client.submit(_dask_one, s, kw, pure=False, key=f"preprocess-{i}-{Path(s).stem}")
                   for i, s in enumerate(slides)]
        order = {f.key: i for i, f in enumerate(futures)}
        bar = tqdm(total=len(slides), desc="slides", unit="slide", position=0)
        done: dict[int, dict] = {}
        for fut in as_completed(futures):
            try:
                done[order[fut.key]] = fut.result()
            except Exception as exc:  # worker died, ...
                sid = Path(slides[order[fut.key]]).stem
                done[order[fut.key]] = {"slide": sid, "status": "failed",
                                        "error": f"{type(exc).__name__}: {exc}"}
            bar.update(1)
        bar.close()
        rows = [done[i] for i in range(len(slides))]
    finally:
        for b in bars.values():
            b.close()
        try:
            client.unsubscribe_topic(_TOPIC)
        except Exception:
            pass
        client.close()
        if cluster is not None:
            cluster.close()
    return rows

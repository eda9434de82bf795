"""Explanation faithfulness on mosaic slides of REAL tissue whose label-defining patches are known.

THE LABELS ARE CONSTRUCTED: the slides, layouts and both tasks (``patch``, ``region``) are
those of ``benchmarks/bench_mosaic.py`` (tissue A = CMU-1 crops, B = TCGA lung crops; the
class is how the B patches are arranged). The x10 patches of tissue B are the ones that
define the label; every other patch is tissue A.

Every mosaic is written twice: as it is, and with each B cell replaced by an A tile (the
"background" slide; the A cells hold the very same tiles). Both go through the whole pipeline
(tiling, handcrafted features, graph). Then, per task: ``--folds``-fold stratified CV (seed
``--seed``, 0); in each fold every model trains on the training slides for ``--epochs`` epochs and its
LAST-epoch weights (chosen without the held-out slides) explain the held-out slides:

* localisation: AUROC of the map's x10 values for B vs A patches;
* deletion: probability of the class predicted on the intact slide as the top k % of x10
  patches by the map (k = 0, 5, ..., 50) take their background features; a region (and the
  thumbnail) moves to its background features in proportion to the share of its changed
  patches that is removed (`explain.faithfulness.removal_weights`); area under the curve;
* insertion: the mirror, from the background slide, restoring the top k %;
* random: the same curves for random orders (``--random`` draws, averaged per slide);
* oracle: tissue B first (the ceiling of the curves for this model and slide).

The background twin is not neutral: it is a slide of tissue A only, which a model calls one
of the two classes, so on slides of that class removing tissue B barely moves the
prediction and deletion cannot tell any order from random there (the oracle neither). The
script therefore also reports the *evidence-bearing* slides: those whose twin lowers the
predicted-class probability by at least ``--gap`` (0.1). That choice reads only the two ends
all orders share (intact slide, twin), never a map or a random order.

Maps: every patch-level score HIGT explains itself with (`explain.reduce.explain_forward`,
as the viewer gets them; the viewer's default is `explain.registry.DEFAULT_SCORE`), each
ablation's default map and RAConv attention, ABMIL's attention, gradient x input and
integrated gradients on the node features (`explain.attribution`, baseline: the slide's mean
node of the level; signed, and their magnitude), random. Mean ± sd over all held-out slides
(every slide is held out once); Δ is the paired difference to random on the same slide.

    python benchmarks/bench_explain.py [--quick] [--tasks patch region] [--slides 64]
                                       [--folds 2] [--epochs 25] [--lr 2e-3] [--hidden 32]
                                       [--gap 0.1] [--out DIR] [--json F]

The slides, their features and the trained checkpoints are kept under ``--out`` (keyed by
task, grid, patch size, slide count and the training settings), so a rerun with the same
settings only explains (minutes instead of the slides' and the training's time).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_mosaic import (  # noqa: E402
    MODELS as MOSAIC_MODELS,
    b_count_range,
    build_slide,
    default_tiles,
    slide_layout,
)

MODEL_NAMES = ["HIGT", "HIGT w/o RAConv+ (RAConv)", "HIGT w/o SSA (full attention)",
               "HIGT w/o BI (region->patch only)", "HIGT w/o Fusion", "ABMIL"]
MARGIN = 2  # glass cells around the mosaic (bench_mosaic.build_slide's default)
ORACLE = "oracle: tissue B first"


# ---------------------------------------------------------------------------- slides
def make_slides(task: str, n: int, g: int, size: int, tiles, work: Path, rng) -> list[dict]:
    """Write ``n`` mosaics and their background twins; label and layout per slide."""
    from napari_higt.features.pipeline import run_slide

    k_lo, k_hi = b_count_range(task, g)
    slides = []
    for i in range(n):
        label = "clustered" if i % 2 == 0 else "scattered"
        k = int(rng.integers(k_lo, k_hi + 1))
        layout = slide_layout(task, label, g, k, rng)
        sid = f"mosaic_{i:03d}"
        paths = {which: work / which / f"{sid}.tif" for which in ("slides", "background")}
        lay_path = work / "slides" / f"{sid}.layout.npy"
        twin = copy.deepcopy(rng)  # the same tile draws, so the A cells get the same tiles
        if not (lay_path.exists() and all(p.exists() for p in paths.values())):
            for p in paths.values():
                p.parent.mkdir(parents=True, exist_ok=True)
            build_slide(paths["slides"], layout, tiles, size, rng)
            build_slide(paths["background"], np.zeros_like(layout), tiles, size, twin)
            np.save(lay_path, layout)
        else:
            layout = np.load(lay_path)
        run_slide(paths["slides"], work / "features", "handcrafted", patch_size=size,
                  num_threads=1)
        slides.append({"slide_id": sid, "label": label, "layout": layout,
                       "background": paths["background"]})
    (work / "labels.csv").write_text(
        "slide_id,label\n" + "".join(f"{s['slide_id']},{s['label']}\n" for s in slides))
    return slides


def background_features(twin: Path, data, layout: np.ndarray, size: int):
    """(N, C) features of the slide's nodes read from its background twin.

    Read as the pipeline reads them (`slide.tiling.level_grid` at the slide's own tile
    coordinates, the same extractor), but only for the tiles that overlap a B cell and the
    thumbnail: every other tile holds the same pixels in both slides."""
    import torch

    from napari_higt.features.base import get_extractor
    from napari_higt.levels import LEVEL_IDS, TILED_LEVELS
    from napari_higt.slide import Slide
    from napari_higt.slide.tiling import level_grid, read_tiles, thumbnail_tile

    ext = get_extractor("handcrafted")
    x = data.x.clone()
    g = layout.shape[0]
    with Slide(twin) as s:
        x[data.level == 0] = torch.from_numpy(ext(thumbnail_tile(s, size)[None]))
        for name in TILED_LEVELS:
            nodes = (data.level == LEVEL_IDS[name]).nonzero().view(-1).numpy()
            grid = level_grid(s, name, data.coords[nodes].numpy(), patch_size=size)
            cells = int(round(grid.size0 / size))  # x10 cells on a side of one tile
            lo = data.coords[nodes].numpy() // size - MARGIN  # (col, row) of the first cell
            hit = np.array([layout[max(r, 0):max(r + cells, 0), max(c, 0):max(c + cells, 0)]
                            .any() for c, r in lo]) if len(lo) else np.zeros(0, bool)
            if hit.any() and g:
                x[nodes[hit]] = torch.from_numpy(ext(read_tiles(s, grid, np.flatnonzero(hit))))
    return x


def ground_truth(data, x_bg, layout: np.ndarray, size: int) -> dict:
    """x10 unit nodes, which are tissue B (from the layout), the background features and which
    patches the replacement changes."""
    units = (data.level == 2).nonzero().view(-1).numpy()
    cell = data.coords[units].numpy() // size - MARGIN  # (col, row)
    is_b = layout[cell[:, 1], cell[:, 0]]
    changed = (data.x[units] != x_bg[units]).any(1).numpy()
    return {"units": units, "is_b": is_b, "changed": changed, "x_bg": x_bg}


# ---------------------------------------------------------------------------- maps
def model_maps(name: str, model, data, steps: int) -> dict[str, np.ndarray]:
    """Every map of one model on one slide, (N,) in node order: the full HIGT's own scores
    (its patch-level ones), an ablation's default map and RAConv attention, ABMIL's
    attention; gradients for all (signed: evidence for the predicted class; and magnitude)."""
    from napari_higt.explain.attribution import gradient_x_input, integrated_gradients
    from napari_higt.explain.reduce import explain_forward
    from napari_higt.explain.registry import score_spec

    _, scores, _ = explain_forward(model, data, data.level.numpy())  # as the viewer gets them
    # the patch-level maps (localisation and the curves rank x10 patches)
    scores = {k: v for k, v in scores.items() if "x10" in score_spec(k).levels}
    if name == "ABMIL":
        maps = {"attention (mil_attention)": scores["mil_attention"]}
    elif name == "HIGT":
        maps = dict(scores)
    else:  # an ablation: its default map and RAConv attention
        maps = {k: scores[k] for k in ("node_importance", "node_attention") if k in scores}
    ig = integrated_gradients(model, data, steps=steps)
    if name in ("HIGT", "ABMIL"):
        gxi = gradient_x_input(model, data)
        maps.update({"gradient x input": gxi, "|gradient x input|": np.abs(gxi)})
    maps.update({"integrated gradients": ig, "|integrated gradients|": np.abs(ig)})
    return maps


def evaluate_slide(name: str, model, data, gt: dict, args) -> tuple[list[dict], dict]:
    """Localisation, deletion and insertion of every map (and random) on one slide."""
    from napari_higt.explain.attribution import predicted_class, random_scores
    from napari_higt.explain.faithfulness import (
        DEFAULT_FRACTIONS, curve_auc, deletion_insertion_curves, localisation_auroc,
        model_removal_fn, ranking)

    target = predicted_class(model, data)
    prob = model_removal_fn(model, data, gt["x_bg"], gt["units"], target,
                            mass=gt["changed"].astype(float), batch_size=64)
    units, is_b = gt["units"], gt["is_b"]
    maps = {f"random {r}": random_scores(len(data.x), 1000 + r) for r in range(args.random)}
    oracle = np.zeros(len(data.x))
    oracle[units] = is_b  # the ceiling: the model's curves when tissue B goes first
    maps[ORACLE] = oracle
    maps.update(model_maps(name, model, data, args.ig_steps))
    s10 = {m: np.asarray(v, dtype=np.float64)[units] for m, v in maps.items()}
    dele, ins = deletion_insertion_curves(prob, [ranking(v, k) for k, v in
                                                 enumerate(s10.values())])
    res = {m: (localisation_auroc(v, is_b), curve_auc(DEFAULT_FRACTIONS, dele[k]),
               curve_auc(DEFAULT_FRACTIONS, ins[k])) for k, (m, v) in enumerate(s10.items())}
    r = args.random
    base = dict(zip(("loc", "del", "ins"), np.mean([res[m] for m in list(res)[:r]], 0)))
    curves = {"random": (dele[:r].mean(0), ins[:r].mean(0))}
    rows = [{"map": "random", **{k: float(v) for k, v in base.items()},
             "d_del": 0.0, "d_ins": 0.0}]
    for k, m in enumerate(list(res)[r:], start=r):
        loc, de, i = res[m]
        rows.append({"map": m, "loc": loc, "del": de, "ins": i,
                     "d_del": de - base["del"], "d_ins": i - base["ins"]})
        curves[m] = (dele[k], ins[k])
    # map-independent ends of the curves: the intact slide and its background twin
    p_ends = {"p_intact": float(dele[0, 0]), "p_bg": float(ins[0, 0])}
    return rows, {"target": target, "curves": curves, **p_ends}


# ---------------------------------------------------------------------------- models
def train_models(ds, tr, va, fold: int, names: list[str], args, run_dir: Path) -> dict:
    """One model per name trained on ``tr`` (last epoch), loaded back from its checkpoint."""
    from napari_higt.inference.checkpoint import model_from_checkpoint
    from napari_higt.training.config import TrainConfig
    from napari_higt.training.fold import train_fold
    from napari_higt.training.runs import fold_checkpoint

    out = {}
    for name in names:
        mcfg = {**MOSAIC_MODELS[name], "hidden": args.hidden, "n_blocks": args.blocks}
        cfg = TrainConfig(model=mcfg, epochs=args.epochs, lr=args.lr, folds=args.folds,
                          batch_size=args.batch_size, seeds=[args.seed], device="cpu")
        fdir = run_dir / name.split(" (")[0].replace(" ", "_").replace("/", "") / f"fold{fold}"
        train_fold(ds, tr, va, cfg, seed=args.seed, fold=fold, n_folds=args.folds, fold_dir=fdir,
                   resume=True)
        out[name] = model_from_checkpoint(fold_checkpoint(fdir, "last"))
    return out


def run_task(task: str, tiles, args) -> tuple[list[dict], dict]:
    import torch

    from napari_higt.training.dataset import SlideGraphDataset
    from napari_higt.training.metrics import auc_score
    from napari_higt.training.splits import make_splits

    work = args.out / f"{task}_g{args.grid}_p{args.patch}_n{args.slides}"
    rng = np.random.default_rng({"patch": 4321, "region": 8765}[task])
    t = time.perf_counter()
    slides = make_slides(task, args.slides, args.grid, args.patch, tiles, work, rng)
    print(f"[{task}] {len(slides)} mosaics + background twins through the pipeline in "
          f"{time.perf_counter() - t:.0f} s", flush=True)
    ds = SlideGraphDataset.from_folder(work / "features", work / "labels.csv")
    if list(ds.slide_ids) != [s["slide_id"] for s in slides]:
        raise SystemExit(f"{work}: the feature files do not match the slides")
    records, curves, heldout = [], {}, {n: ([], []) for n in args.models}
    for fold, (tr, va) in enumerate(make_splits(ds.y, args.folds, args.seed)):
        t = time.perf_counter()
        runs = work / (f"runs_e{args.epochs}_h{args.hidden}_b{args.blocks}_"
                       f"bs{args.batch_size}_lr{args.lr}"
                       + (f"_s{args.seed}" if args.seed else ""))
        models = train_models(ds, tr, va, fold, args.models, args, runs)
        t_train = time.perf_counter() - t
        for i in va:
            data = ds[int(i)]
            sl = slides[int(i)]
            x_bg = background_features(sl["background"], data, sl["layout"], args.patch)
            gt = ground_truth(data, x_bg, sl["layout"], args.patch)
            if not np.array_equal(gt["changed"], gt["is_b"]):
                print(f"  note: {data.slide_id}: {int((gt['changed'] != gt['is_b']).sum())} "
                      "patches where 'changed by the replacement' and 'tissue B' disagree")
            for name, model in models.items():
                with torch.no_grad():
                    p = torch.softmax(model(data).logits, -1)[0].numpy()
                heldout[name][0].append(int(ds.y[i]))
                heldout[name][1].append(p)
                rows, extra = evaluate_slide(name, model, data, gt, args)
                for r in rows:
                    records.append({"task": task, "fold": fold, "slide": data.slide_id,
                                    "label": ds.class_names[int(ds.y[i])],
                                    "pred": ds.class_names[extra["target"]],
                                    "model": name, "p_intact": extra["p_intact"],
                                    "p_bg": extra["p_bg"], **r})
                for m, (dc, ic) in extra["curves"].items():
                    curves.setdefault(f"{task}|{name}|{m}", []).append((dc, ic))
        print(f"[{task}] fold {fold}: trained {len(models)} models in {t_train:.0f} s, "
              f"explained {len(va)} held-out slides in {time.perf_counter() - t - t_train:.0f} s",
              flush=True)
    auc = {n: auc_score(np.array(y), np.stack(p)) for n, (y, p) in heldout.items()}
    mean_curves = {k: [np.mean([c[0] for c in v], 0).tolist(), np.mean([c[1] for c in v],
                                                                         0).tolist()]
                   for k, v in curves.items()}
    return records, {"heldout_auc": auc, "curves": mean_curves}


# ---------------------------------------------------------------------------- report
def _rank(m: str) -> tuple[int, str]:
    """Table order: random, the oracle, then the maps by name."""
    return ({"random": 0, ORACLE: 1}.get(m, 2), m.strip("|"))


def evidence_bearing(records: list[dict], gap: float) -> list[dict]:
    """The records of slides whose background twin lowers the predicted-class probability by
    at least ``gap``: slides where removing tissue B can show in a deletion curve at all.

    The choice reads only the two ends every order shares (intact slide, background twin),
    never a map or a random order, so the paired comparison with random stays fair."""
    return [r for r in records if r["p_intact"] - r["p_bg"] >= gap]


def summarise(records: list[dict]) -> list[dict]:
    """Mean ± sd over held-out slides per (task, model, map)."""
    keys = sorted({(r["task"], r["model"], r["map"]) for r in records},
                  key=lambda k: (k[0], MODEL_NAMES.index(k[1]), _rank(k[2])))
    out = []
    for task, model, m in keys:
        rs = [r for r in records if (r["task"], r["model"], r["map"]) == (task, model, m)]
        row = {"task": task, "model": model, "map": m, "n": len(rs)}
        for f in ("loc", "del", "ins", "d_del", "d_ins"):
            v = np.array([r[f] for r in rs], dtype=float)
            row[f] = (float(np.nanmean(v)), float(np.nanstd(v)))
        row["beats_random"] = float(np.mean([r["d_del"] < 0 and r["d_ins"] > 0 for r in rs]))
        if m != "random":  # paired two-sided Wilcoxon signed-rank test against random
            from scipy.stats import wilcoxon

            for f in ("d_del", "d_ins"):
                v = np.array([r[f] for r in rs], dtype=float)
                row[f"p_{f}"] = float(wilcoxon(v).pvalue) if np.any(v != 0) else 1.0
        out.append(row)
    return out


def print_table(summary: list[dict], heldout: dict, tasks: list[str]) -> None:
    """One markdown table: a row per (model, map), per task localisation, deletion and
    insertion (mean ± sd over held-out slides; Δ = paired difference to random)."""
    def ms(v):
        return f"{v[0]:.2f} ± {v[1]:.2f}"

    by = {(r["task"], r["model"], r["map"]): r for r in summary}
    rows = sorted({(r["model"], r["map"]) for r in summary},
                  key=lambda k: (MODEL_NAMES.index(k[0]), _rank(k[1])))
    head = ["model", "map"]
    for t in tasks:
        head += [f"{t}: localisation AUROC", f"{t}: deletion AUC ↓ (Δ vs random)",
                 f"{t}: insertion AUC ↑ (Δ vs random)"]
    print("| " + " | ".join(head) + " |")
    print("|---|---|" + "---:|" * (3 * len(tasks)))
    for model, m in rows:
        cells = [model, m]
        for t in tasks:
            r = by.get((t, model, m))
            if r is None:
                cells += [""] * 3
                continue
            rand = m == "random"
            cells += [ms(r["loc"]),
                      ms(r["del"]) + ("" if rand else f" ({r['d_del'][0]:+.3f} ± "
                                                      f"{r['d_del'][1]:.3f})"),
                      ms(r["ins"]) + ("" if rand else f" ({r['d_ins'][0]:+.3f} ± "
                                                      f"{r['d_ins'][1]:.3f})")]
        print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    print()
    print("held-out AUC of the last-epoch models: " + "; ".join(
        f"{t}: " + ", ".join(f"{n} {a:.2f}" for n, a in heldout[t].items()) for t in tasks))


def most_faithful(summary: list[dict], model: str = "HIGT") -> str:
    """The map of ``model`` with the largest gain over random, deletion and insertion
    together (``Δins - Δdel``), averaged over the tasks."""
    gain: dict[str, list[float]] = {}
    for r in summary:
        if r["model"] == model and r["map"] not in ("random", ORACLE):
            gain.setdefault(r["map"], []).append(r["d_ins"][0] - r["d_del"][0])
    return max(gain, key=lambda m: np.mean(gain[m]))


def against_default(records: list[dict], default: str, model: str = "HIGT"
                    ) -> list[tuple[str, float, float, float]]:
    """Every map of ``model`` against ``default`` on the same slides, all tasks together:
    (map, its mean gain, the default's mean gain, paired Wilcoxon p of the difference), the
    gain being ``Δins - Δdel`` per slide. A ranking is only as good as this test."""
    from scipy.stats import wilcoxon

    gain: dict[str, dict[tuple[str, str], float]] = {}
    for r in records:
        if r["model"] == model and r["map"] != "random":
            gain.setdefault(r["map"], {})[(r["task"], r["slide"])] = r["d_ins"] - r["d_del"]
    if default not in gain:
        return []
    ref = gain[default]
    out = []
    for m, g in sorted(gain.items(), key=lambda kv: _rank(kv[0])):
        if m == default:
            continue
        keys = sorted(set(g) & set(ref))
        diff = np.array([g[k] - ref[k] for k in keys])
        p = float(wilcoxon(diff).pvalue) if np.any(diff != 0) else 1.0
        out.append((m, float(np.mean([g[k] for k in keys])),
                    float(np.mean([ref[k] for k in keys])), p))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 12 slides, 8 x 8 grid, 2 folds, 4 epochs, HIGT and "
                         "ABMIL, one task")
    ap.add_argument("--tasks", nargs="+", choices=("patch", "region"),
                    default=["patch", "region"])
    ap.add_argument("--slides", type=int, default=64)
    ap.add_argument("--grid", type=int, default=10)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=2, help="HIViT blocks (2, as the demo model)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch-size", type=int, default=2, help="slides per step (2)")
    ap.add_argument("--ig-steps", type=int, default=16)
    ap.add_argument("--random", type=int, default=3, help="random orders per slide (3)")
    ap.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=MODEL_NAMES)
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the CV split and of the training (0); the slides stay the same")
    ap.add_argument("--gap", type=float, default=0.1,
                    help="evidence-bearing slides: the background twin lowers the predicted-"
                         "class probability by at least this much (0.1)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp"))
                    / "napari-higt-explain")
    ap.add_argument("--json", type=Path, help="also write every record and the table here")
    args = ap.parse_args()
    if args.quick:
        args.slides, args.grid, args.folds, args.epochs = 12, 8, 2, 4
        args.models, args.random, args.ig_steps = ["HIGT", "ABMIL"], 2, 8
        args.tasks = args.tasks[:1]
    import torch

    torch.set_num_threads(args.threads)
    t0, c0 = time.perf_counter(), time.process_time()
    print("NOTE: the slide labels of this benchmark are CONSTRUCTED (arrangement of two real "
          "tissue types), not clinical labels.", flush=True)
    tiles, src = default_tiles(args.patch, 400, np.random.default_rng(1234))
    print(f"tiles: {src}", flush=True)
    records, extra = [], {}
    for task in args.tasks:
        rec, extra[task] = run_task(task, tiles, args)
        records += rec
    summary = summarise(records)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print()
    print(f"Explanation faithfulness, CONSTRUCTED labels; {args.slides} slides per task, "
          f"{args.grid} x {args.grid} x10 patches, {args.folds}-fold CV (seed {args.seed}), "
          f"{args.epochs} epochs (last-epoch weights), hidden {args.hidden}, lr {args.lr}, "
          f"IG {args.ig_steps} steps, {args.random} random orders per slide, CPU")
    print()
    print_table(summary, {t: e["heldout_auc"] for t, e in extra.items()}, args.tasks)
    print()
    print("paired Wilcoxon signed-rank p vs random (deletion, insertion), slides beating "
          "random on both:")
    for r in summary:
        if r["map"] != "random" and r["model"] in ("HIGT", "ABMIL"):
            print(f"  {r['task']:6s} {r['model']:5s} {r['map']:26s} p = {r['p_d_del']:.2g}, "
                  f"{r['p_d_ins']:.2g}; {100 * r['beats_random']:.0f} %")
    sub_records = evidence_bearing(records, args.gap)
    sub = summarise(sub_records) if sub_records else []
    print()
    print(f"evidence-bearing slides only (the background twin lowers the predicted-class "
          f"probability by >= {args.gap}): Δ deletion, Δ insertion vs random (mean, paired "
          "Wilcoxon p)")
    for task in args.tasks:
        for model in ("HIGT", "ABMIL"):
            n = len({r["slide"] for r in sub_records
                     if r["task"] == task and r["model"] == model})
            tot = len({r["slide"] for r in records
                       if r["task"] == task and r["model"] == model})
            if tot:
                print(f"  {task:6s} {model:5s} {n} of {tot} held-out slides")
    for r in sub:
        if r["map"] != "random" and r["model"] in ("HIGT", "ABMIL"):
            print(f"  {r['task']:6s} {r['model']:5s} {r['map']:26s} "
                  f"{r['d_del'][0]:+.3f} (p = {r['p_d_del']:.2g}), "
                  f"{r['d_ins'][0]:+.3f} (p = {r['p_d_ins']:.2g})")
    if "HIGT" in args.models:
        print(f"most faithful map for HIGT by point estimate (largest Δins - Δdel, mean over "
              f"tasks; see the p values before trusting a ranking): {most_faithful(summary)}")
        from napari_higt.explain.registry import DEFAULT_SCORE

        print(f"each HIGT map against the viewer's default ({DEFAULT_SCORE}), gain = Δins - "
              "Δdel per slide, all tasks: mean gain (the default's), paired Wilcoxon p")
        for m, g, ref, p in against_default(records, DEFAULT_SCORE):
            print(f"  {m:26s} {g:+.3f} ({ref:+.3f}), p = {p:.2g}")
    load = os.getloadavg()[1] if hasattr(os, "getloadavg") else float("nan")
    print(f"wall time {wall:.0f} s, CPU time of this process {cpu:.0f} s (load average over the "
          f"last 5 min: {load:.1f} on {os.cpu_count()} cores)")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "evidence_bearing": sub,
                                         "records": records,
                                         "extra": extra, "wall_s": wall, "cpu_s": cpu,
                                         "args": {k: str(v) for k, v in vars(args).items()}},
                                        indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

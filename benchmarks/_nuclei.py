"""Nucleus-type linear probe on CRCHistoPhenotypes (real labels) for bench_ssl.py --nuclei.

Data: ``<root>/nuclei.csv`` (``split,image,x,y,label``; x, y are nucleus centres in pixels,
**1-based** as published) and ``<root>/images/<image>.png`` (500 x 500 px H&E at 20x,
0.5 µm/px). Read from ``../shared/data``; nothing is copied into the repository.

Protocol (one run, every row on the same crops):
- probe crops: a ``crop`` x ``crop`` px patch centred on each labelled nucleus
  (`napari_higt.features.crops.crop_at_points`, reflection at the image border); the train
  split is subsampled to ``per_class`` nuclei per class, the validation split to
  ``val_per_class`` (all of a class when it has fewer);
- H-MGDM is pretrained, per seed, on ``pretrain`` crops of the same size at random positions
  of the train-split images (no labels and no nucleus positions used), then frozen;
- each representation gets a logistic regression (standardised inputs; C picked from
  0.01 .. 10 by 3-fold cross-validation on the train crops grouped by image), fitted on the
  train crops and scored once on the validation crops: accuracy, macro F1, recall per class;
- rows with a seed (H-MGDM pretrained, the same encoder at random init, a timm trunk at
  random init) give mean ± sd over the seeds; the others are deterministic.
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

CLASSES = ("epithelial", "inflammatory", "fibroblast", "others")


def read_nuclei(root: Path) -> dict[str, list[tuple[str, float, float, int]]]:
    """``{split: [(image, x, y, class index), ...]}`` from ``nuclei.csv`` (1-based x, y)."""
    out: dict[str, list] = defaultdict(list)
    with open(root / "nuclei.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            out[r["split"]].append((r["image"], float(r["x"]), float(r["y"]),
                                    CLASSES.index(r["label"])))
    return dict(out)


def _image(root: Path, name: str, cache: dict) -> np.ndarray:
    if name not in cache:
        from PIL import Image

        with Image.open(root / "images" / f"{name}.png") as im:
            cache[name] = np.asarray(im.convert("RGB"))
    return cache[name]


def subsample(rows: list, per_class: int | None, rng) -> list:
    """At most ``per_class`` rows of each class, drawn without replacement."""
    by = defaultdict(list)
    for r in rows:
        by[r[3]].append(r)
    keep = []
    for k in sorted(by):
        rs = by[k]
        if per_class is not None and len(rs) > per_class:
            rs = [rs[i] for i in sorted(rng.choice(len(rs), per_class, replace=False))]
        keep += rs
    return keep


def nucleus_crops(root: Path, rows: list, size: int, cache: dict):
    """Crops centred on the nuclei of ``rows``: (crops, labels, image names)."""
    from napari_higt.features.crops import crop_at_points

    crops, labels, groups = [], [], []
    by_image = defaultdict(list)
    for r in rows:
        by_image[r[0]].append(r)
    for name in sorted(by_image):
        rs = by_image[name]
        xy = np.array([(r[1], r[2]) for r in rs])
        c, kept = crop_at_points(_image(root, name, cache), xy, size, one_based=True)
        crops.append(c)
        labels += [rs[i][3] for i in kept]
        groups += [name] * len(kept)
    return np.concatenate(crops), np.array(labels), np.array(groups)


def random_crops(root: Path, images: list[str], n: int, size: int, rng, cache: dict,
                 min_tissue: float = 0.5) -> np.ndarray:
    """``n`` crops at random positions of ``images`` with at least ``min_tissue`` tissue."""
    from napari_higt.graph.entities import patch_tissue_mask

    out = []
    tries = 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        img = _image(root, images[int(rng.integers(len(images)))], cache)
        y, x = (int(rng.integers(0, img.shape[i] - size + 1)) for i in (0, 1))
        c = img[y:y + size, x:x + size]
        if patch_tissue_mask(c).mean() >= min_tissue:
            out.append(c)
    return np.stack(out)


def probe(train_x, train_y, groups, val_x, val_y) -> dict:
    """Logistic-regression probe: fit on train (C by grouped 3-fold CV), score on val."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, recall_score
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    search = GridSearchCV(pipe, {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]},
                          cv=GroupKFold(3), scoring="f1_macro", n_jobs=1)
    search.fit(np.nan_to_num(train_x), train_y, groups=groups)
    p = search.predict(np.nan_to_num(val_x))
    return {"acc": accuracy_score(val_y, p), "f1": f1_score(val_y, p, average="macro"),
            "recall": recall_score(val_y, p, average=None, labels=list(range(len(CLASSES)))),
            "C": search.best_params_["logisticregression__C"]}


def centre_readout(model, graphs, size: int) -> np.ndarray:
    """Per crop: the encoder's latent of the entity under the centre pixel ‖ mean of all."""
    import torch
    from torch_geometric.data import Batch

    c = size // 2
    out = []
    model.eval()
    with torch.no_grad():
        for k in range(0, len(graphs), 128):
            chunk = graphs[k:k + 128]
            data = Batch.from_data_list([_strip(g) for g in chunk])
            mu = model.encode(data).float().numpy()
            ptr = data.ptr.numpy()
            for j, g in enumerate(chunk):
                m = mu[ptr[j]:ptr[j + 1]]
                out.append(np.concatenate([m[_centre_entity(g, c)], m.mean(0)]))
    return np.stack(out)


def _strip(g):
    g = g.clone()
    for key in ("label_image", "centroid"):
        if key in g:
            del g[key]
    return g


def _centre_entity(g, c: int) -> int:
    lab = int(np.asarray(g.label_image)[c, c])
    if lab >= 0:
        return lab
    d = np.linalg.norm(g.centroid.numpy() - np.array([c, c]), axis=1)
    return int(np.argmin(d))


def raw_entity_readout(graphs, size: int) -> np.ndarray:
    """The encoder's input: the centre entity's 40 handcrafted features ‖ their mean."""
    c = size // 2
    return np.stack([np.concatenate([g.x[_centre_entity(g, c)].numpy(), g.x.numpy().mean(0)])
                     for g in graphs])


def mean_embed(model, graphs) -> np.ndarray:
    """The H-MGDM extractor's patch embedding (mean ‖ max of entity latents)."""
    import torch
    from torch_geometric.data import Batch

    model.eval()
    with torch.no_grad():
        return np.concatenate([model.embed(Batch.from_data_list([_strip(g) for g in
                                                                 graphs[k:k + 128]])).numpy()
                               for k in range(0, len(graphs), 128)])


def fmt_table(results: dict, n_train: int, n_val: int) -> str:
    """Markdown table: mean ± sd over seeds (a single value for deterministic rows)."""
    def ms(v):
        v = np.asarray(v, float)
        return f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v[0]:.3f}"

    head = ("| features | dim | seeds | accuracy | macro F1 | "
            + " | ".join(f"recall {c}" for c in CLASSES) + " |")
    lines = [head, "|" + "---|" * 3 + "---:|" * (2 + len(CLASSES))]
    for name, r in results.items():
        rec = np.stack(r["recall"])
        lines.append(f"| {name} | {r['dim']} | {len(r['acc'])} | {ms(r['acc'])} | "
                     f"{ms(r['f1'])} | " + " | ".join(ms(rec[:, i]) for i in range(len(CLASSES)))
                     + " |")
    lines.append(f"\n{n_train} train crops (balanced), {n_val} validation crops")
    return "\n".join(lines)


class Timer:
    """Wall-time of named steps, printed as they end."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def lap(self, what: str) -> None:
        now = time.perf_counter()
        print(f"  [{now - self.t0:7.1f} s] {what}", flush=True)


def _seeded(results: dict, name: str, feats_fn, seeds, data) -> None:
    for s in seeds:
        tr, va = feats_fn(s)
        _add(results, name, tr, va, data)


def _add(results: dict, name: str, tr, va, data) -> None:
    r = probe(tr, data["ytr"], data["gtr"], va, data["yva"])
    row = results.setdefault(name, {"acc": [], "f1": [], "recall": [], "dim": tr.shape[1]})
    for k in ("acc", "f1", "recall"):
        row[k].append(r[k])
    print(f"    {name:44s} acc {r['acc']:.3f}  macro-F1 {r['f1']:.3f}  (C={r['C']})",
          flush=True)


def run(args) -> int:
    """The ``--nuclei`` benchmark (see the module docstring); prints the table."""
    import torch

    torch.set_num_threads(args.threads)
    from napari_higt.features import get_extractor
    from napari_higt.graph.entity_batch import entity_graphs
    from napari_higt.models.hmgdm import HMGDM, HMGDMConfig
    from napari_higt.training.pretrain import PretrainConfig, pretrain_hmgdm

    root = Path(args.nuclei)
    if not (root / "nuclei.csv").is_file():
        raise SystemExit(f"{root}/nuclei.csv not found (CRCHistoPhenotypes folder expected)")
    timer = Timer()
    rng = np.random.default_rng(args.data_seed)
    rows = read_nuclei(root)
    cache: dict = {}
    tr_rows = subsample(rows["train"], args.per_class, rng)
    va_rows = subsample(rows["validation"], args.val_per_class, rng)
    xtr, ytr, gtr = nucleus_crops(root, tr_rows, args.crop, cache)
    xva, yva, _ = nucleus_crops(root, va_rows, args.crop, cache)
    train_images = sorted({r[0] for r in rows["train"]})
    xpre = random_crops(root, train_images, args.pretrain, args.crop, rng, cache)
    print(f"CRCHistoPhenotypes: {args.crop} px crops at 20x (0.5 µm/px) centred on labelled "
          f"nuclei; train {len(xtr)} ({', '.join(f'{c} {int((ytr == i).sum())}' for i, c in enumerate(CLASSES))}), "
          f"validation {len(xva)} ({', '.join(f'{c} {int((yva == i).sum())}' for i, c in enumerate(CLASSES))}); "
          f"H-MGDM pretrained on {len(xpre)} random unlabelled crops of the {len(train_images)} "
          "train images")
    data = {"ytr": ytr, "gtr": gtr, "yva": yva}
    entity = {"n_segments": args.n_segments, "compactness": args.compactness,
              "min_tissue": 0.2, "features": "handcrafted", "crop_size": 16}
    graph_kw = dict(n_jobs=args.jobs, cache_dir=args.cache, **entity)
    gpre = entity_graphs(list(xpre), keep_label_image=False, **graph_kw)
    gtr_ = entity_graphs(list(xtr), **graph_kw)
    gva_ = entity_graphs(list(xva), **graph_kw)
    timer.lap(f"entity graphs ({np.mean([g.num_nodes for g in gtr_]):.1f} entities per crop); "
              f"H-MGDM hidden {args.hidden}, latent {args.latent}, KL weight {args.w_kl}")

    results: dict = {}
    mcfg = HMGDMConfig(hidden=args.hidden, latent=args.latent, enc_layers=2, heads=4,
                       dec_depth=1, entity=entity, w_kl=args.w_kl)
    models = {}
    for s in args.seeds:
        res = pretrain_hmgdm(gpre, mcfg, PretrainConfig(epochs=args.epochs, batch_size=32,
                                                        device="cpu", seed=s))
        torch.manual_seed(s)
        rand = HMGDM(mcfg)
        rand.fit_normalizer(gpre)
        models[s] = (res.model, rand)
        h = res.history
        timer.lap(f"H-MGDM seed {s}: {args.epochs} epochs in {res.wall_time:.0f} s, loss "
                  f"{h[0]['loss']:.3f} -> {h[-1]['loss']:.3f}")
    for kind, idx in (("H-MGDM pretrained", 0), ("same encoder, random weights", 1)):
        _seeded(results, f"{kind}: centre entity ‖ mean",
                lambda s: (centre_readout(models[s][idx], gtr_, args.crop),
                           centre_readout(models[s][idx], gva_, args.crop)), args.seeds, data)
        _seeded(results, f"{kind}: mean ‖ max (extractor)",
                lambda s: (mean_embed(models[s][idx], gtr_), mean_embed(models[s][idx], gva_)),
                args.seeds, data)
    timer.lap("H-MGDM probes")
    _add(results, "encoder input: raw entity features, centre ‖ mean",
         raw_entity_readout(gtr_, args.crop), raw_entity_readout(gva_, args.crop), data)
    hc = get_extractor("handcrafted", work_size=args.crop)
    _add(results, "handcrafted extractor (64-dim)", hc(xtr), hc(xva), data)
    _seeded(results, f"timm {args.timm_arch}, random weights",
            lambda s: _timm_random(args, s, xtr, xva), args.seeds, data)
    _add(results, "mean RGB", xtr.reshape(len(xtr), -1, 3).mean(1),
         xva.reshape(len(xva), -1, 3).mean(1), data)
    timer.lap("baselines")
    print()
    print(fmt_table(results, len(xtr), len(xva)))
    best_other = max(np.mean(r["f1"]) + np.std(r["f1"]) for k, r in results.items()
                     if not k.startswith("H-MGDM pretrained"))
    ours = max(np.mean(r["f1"]) - np.std(r["f1"]) for k, r in results.items()
               if k.startswith("H-MGDM pretrained"))
    print(f"\nH-MGDM pretrained above every other row by more than the seed spread (macro F1): "
          f"{'yes' if ours > best_other else 'no'} ({ours:.3f} vs {best_other:.3f})")
    return 0


def _timm_random(args, seed: int, xtr, xva):
    """A timm ImageNet architecture at random init (saved to a local file, then loaded)."""
    import tempfile

    import torch
    from safetensors.torch import save_file

    from napari_higt.features import get_extractor
    from napari_higt.features.timm_extractor import build_timm_model

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "random.safetensors"
        save_file({k: v.contiguous() for k, v in build_timm_model(args.timm_arch).state_dict()
                   .items()}, str(path))
        ext = get_extractor("timm", arch=args.timm_arch, weights=str(path),
                            input_size=args.crop, device="cpu")
    return ext(xtr), ext(xva)
